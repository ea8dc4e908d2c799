"""Commands: apply, status, controller and verify against Kubernetes.

Each command has its own ``_register_<name>`` and ``_run_<name>`` functions; ``register`` only
wires them up. Heavy imports (the Calico model, the evaluator, lightkube) happen inside the
``_run_`` functions.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from egressguard.cli._common import (
    add_state_dir_option,
    emit_json,
    load_config_or_report,
    new_parser,
    state_root,
)

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add this group's subcommands to sub."""
    _register_apply(sub)
    _register_status(sub)
    _register_controller(sub)
    _register_verify(sub)


# --------------------------------------------------------------------------------------------
# shared by apply, status and controller


def _add_cluster_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubeconfig",
        default=None,
        metavar="PATH",
        help="kubeconfig file (default: the pod's service account, else $KUBECONFIG, else "
        "~/.kube/config)",
    )
    parser.add_argument("--context", default=None, metavar="NAME", help="kubeconfig context")


def _loader(config: Any, state_root: str, *, ca_file: str | None, quiet: bool) -> Any:
    from pathlib import Path

    from egressguard.adapters.http import HttpxFetcher, NullProgress, auto_progress
    from egressguard.adapters.state import DirectoryStateStore
    from egressguard.app.apply import TrackingLoader

    fetcher = HttpxFetcher(progress=NullProgress() if quiet else auto_progress(), ca_file=ca_file)
    state = DirectoryStateStore(Path(state_root) / config.name)
    return TrackingLoader(fetcher=fetcher, state=state)


# --------------------------------------------------------------------------------------------
# apply

_APPLY_DESCRIPTION = """\
Build the blocklist of a config (exactly as `egressguard build` does) and bring the cluster to
it with server-side apply (field manager "egressguard"): objects that are missing are
created, objects whose content changed are updated, objects this blocklist owns but no longer
renders are pruned, and unchanged objects cost no request at all. Re-applying an unchanged
build writes nothing; a source that changed rewrites only the shards that hold a changed
entry, plus the blocking policy, whose annotation names the source versions.

The cluster's API group is discovered: projectcalico.org/v3 when served (Calico API server or
v3 CRDs), else crd.projectcalico.org/v1. Objects are owned by the labels
app.kubernetes.io/managed-by=egressguard and egressguard.io/blocklist=<name>; an object of the
same name without them is never overwritten unless --adopt.

Safety (DESIGN §6): the shrink guard compares against what is live in the cluster (and, per
source, against this machine's last apply while the cluster still holds exactly that). A
refused build is reported and nothing is applied (exit 3); --force applies it anyway. A
source that fails falls back to its last good copy in the state directory.

--dry-run (or --dry-run=client) plans and sends no write. --dry-run=server sends every write
with dryRun=All: the API server validates and admits it but persists nothing. --diff prints a
unified diff (live -> desired) of every object that would be written.

Exit status: 0 applied (or planned); 1 config problems; 2 usage errors; 3 refused by a
safety check or by ownership; 4 a source without any copy, or the Kubernetes API failed."""

_APPLY_EPILOG = """\
examples:
  egressguard apply -c blocklist.yaml
  egressguard apply -c blocklist.yaml --dry-run --diff            # what would change, no write
  egressguard apply -c blocklist.yaml --dry-run=server            # let the API server validate
  egressguard apply -c blocklist.yaml --context aks-prod -o json | jq .summary
  egressguard apply -c blocklist.yaml --force                     # accept a refused shrink

output (the build summary goes to stderr first, as for build):
  Tier/egressguard unchanged
  GlobalNetworkSet/egress-blocklist-v4 configured
  GlobalNetworkPolicy/egressguard.egress-blocklist configured
  applied: 2 written, 1 unchanged (projectcalico.org/v3)"""


def _register_apply(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = new_parser(
        sub,
        "apply",
        help="build a blocklist and server-side apply what changed to the cluster",
        description=_APPLY_DESCRIPTION,
        epilog=_APPLY_EPILOG,
    )
    parser.add_argument(
        "-c", "--config", required=True, metavar="CONFIG", help="the Blocklist config (YAML)"
    )
    parser.add_argument(
        "--dry-run",
        nargs="?",
        const="client",
        choices=("client", "server"),
        default=None,
        help="client (the default when given): plan only, no write; server: send the writes "
        "with dryRun=All",
    )
    parser.add_argument(
        "--diff", action="store_true", help="print a unified diff of every object written"
    )
    parser.add_argument(
        "--force", action="store_true", help="apply even when a safety check refuses the build"
    )
    parser.add_argument(
        "--adopt",
        action="store_true",
        help="take over objects of the same name that egressguard does not own",
    )
    _add_cluster_options(parser)
    add_state_dir_option(parser)
    parser.add_argument(
        "--ca-file", metavar="PEM", help="extra CA certificates to trust for HTTPS sources"
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="text (default): one line per object on stdout, the build summary on stderr; "
        "json: one document with the build, the plan and what was done",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no build summary on stderr")
    parser.set_defaults(handler=_run_apply)


def _run_apply(args: argparse.Namespace) -> int:
    from pathlib import Path

    from egressguard.adapters.kube import connect
    from egressguard.adapters.records import DirectoryRecordStore
    from egressguard.app import apply as apply_mod
    from egressguard.app.build import BuildRefused

    config = load_config_or_report(args.config, args.output)
    if config is None:
        return 1
    root = Path(state_root(args.state_dir)) / config.name
    loader = _loader(config, str(root.parent), ca_file=args.ca_file, quiet=args.quiet)
    records = DirectoryRecordStore(root)
    with connect(args.kubeconfig, context=args.context) as client:
        try:
            outcome = apply_mod.apply(
                config,
                loader=loader,
                client=client,
                records=records,
                force=args.force,
                dry_run=args.dry_run,
                adopt=args.adopt,
                identity=_operator(),
            )
        except BuildRefused as refused:
            if not args.quiet:
                for line in refused.result.summary_lines():
                    print(line, file=sys.stderr)
            if args.output == "json":
                doc = refused.result.to_json()
                doc.pop("changes", None)
                emit_json({"ok": False, "applied": False, "build": doc})
            raise
    if not args.quiet:
        for line in outcome.build.summary_lines():
            if not line.lstrip().startswith("changes:"):
                print(line, file=sys.stderr)
    diff = apply_mod.diff_text(outcome) if args.diff else None
    if args.output == "json":
        doc = outcome.to_json()
        if diff is not None:
            doc["diff"] = diff
        emit_json(doc)
    else:
        if diff:
            sys.stdout.write(diff)
        for line in outcome.lines():
            print(line)
        summary = outcome.plan.summary()
        written = summary["create"] + summary["update"] + summary["prune"]
        verb = {None: "applied", "client": "dry run", "server": "dry run (server)"}[args.dry_run]
        what = "would write" if args.dry_run else "written"
        api = outcome.plan.api_version
        print(
            f"{verb}: {written} {what}, {summary['unchanged']} unchanged ({api})", file=sys.stderr
        )
    if outcome.result.error is not None:
        raise outcome.result.error
    return 0


def _identity(given: str | None) -> str:
    """``--identity``, else ``$POD_NAME`` (the Deployment sets it), else host and process id:
    two controllers on one host must not share an identity, or both would think they lead."""
    import os
    import platform

    host = platform.node() or "egressguard"
    return given or os.environ.get("POD_NAME") or f"{host}-{os.getpid()}"


def _operator() -> str:
    """Who ran ``apply``, for the applied record: user@host."""
    import getpass
    import platform

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{platform.node() or 'localhost'}"


# --------------------------------------------------------------------------------------------
# status

_STATUS_DESCRIPTION = """\
Show what a blocklist has in the cluster and where it came from:

  objects    every Tier, GlobalNetworkSet shard and GlobalNetworkPolicy the blocklist owns
             (by its ownership labels), with entry counts, address ranges and content hashes
  sources    per source: the version applied (content hash and the feed's own date, from the
             egressguard.io/sources annotation the build puts on the blocking policy), whether
             that is the newest copy in the local state directory, when the provider last
             confirmed the data (last refresh) and the last refresh attempt with its outcome

With -c the sources come from the config and the local state directory; with --blocklist NAME
only the cluster is read. A controller keeps its own state directory: run status inside its
pod (kubectl exec ... egressguard status -c /etc/egressguard/blocklist.yaml) for its view.

Exit status: 0 (also when nothing is applied); 1 config problems; 2 usage errors; 4 the
Kubernetes API failed."""

_STATUS_EPILOG = """\
examples:
  egressguard status -c blocklist.yaml
  egressguard status --blocklist egress-blocklist --context aks-prod
  egressguard status -c blocklist.yaml -o json | jq '.sources[] | {name, current, lastRefresh}'

output:
  blocklist egress-blocklist: 3 objects applied (projectcalico.org/v3); IPv4 3,347 CIDRs, ...
  last apply from this machine: 2026-11-27T18:27:22Z (1s ago) by root@vm

  KIND                 NAME                          ENTRIES  RANGE      CONTENT HASH
  Tier                 egressguard                   -        -          sha256:d4258e327df1
  GlobalNetworkSet     egress-blocklist-v4           3,347    0.0.0.0/0  sha256:3bf4535b3c57
  GlobalNetworkPolicy  egressguard.egress-blocklist  -        -          sha256:a82328612b83

  SOURCE          APPLIED VERSION                                  CURRENT  LAST REFRESH  ...
  firehol-level1  sha256:1b894ee5e7b5 (2022-01-24T00:51:32+00:00)  yes      2026-11-27T18:...
  spamhaus-drop   sha256:8ae06516c72f (2025-04-15T02:07:54+00:00)  yes      2026-11-27T18:..."""


def _register_status(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = new_parser(
        sub,
        "status",
        help="show the applied objects, their source versions and when each source refreshed",
        description=_STATUS_DESCRIPTION,
        epilog=_STATUS_EPILOG,
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("-c", "--config", metavar="CONFIG", help="the Blocklist config (YAML)")
    which.add_argument(
        "--blocklist", metavar="NAME", help="a blocklist name: read only the cluster"
    )
    _add_cluster_options(parser)
    add_state_dir_option(parser)
    parser.add_argument(
        "-o", "--output", choices=("text", "json"), default="text", help="text (default) or json"
    )
    parser.set_defaults(handler=_run_status)


def _run_status(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from egressguard.adapters.kube import connect
    from egressguard.adapters.records import DirectoryRecordStore
    from egressguard.adapters.state import DirectoryStateStore
    from egressguard.app import status as status_mod

    config = None
    state = None
    records = None
    if args.config is not None:
        config = load_config_or_report(args.config, args.output)
        if config is None:
            return 1
        root = Path(state_root(args.state_dir)) / config.name
        state = DirectoryStateStore(root)
        records = DirectoryRecordStore(root)
        blocklist = config.name
    else:
        blocklist = args.blocklist
        if args.state_dir is not None:
            records = DirectoryRecordStore(Path(args.state_dir) / blocklist)
    with connect(args.kubeconfig, context=args.context) as client:
        report = status_mod.collect(
            client, blocklist, config=config, state=state, records=records, now=time.time()
        )
    if args.output == "json":
        emit_json(report.to_json())
    else:
        sys.stdout.write(status_mod.format_text(report))
    return 0


# --------------------------------------------------------------------------------------------
# controller

_CONTROLLER_DESCRIPTION = """\
Keep a blocklist current in the cluster (docs/controller.md). While this replica leads:
refresh each source on its schedule (the source's interval, with jitter; failures retried
with backoff), rebuild, and server-side apply what changed; every --resync it rebuilds and
applies anyway, which repairs drift. The same safety rules as build and apply hold: a failed
source uses its last good copy, and a build refused by a safety check is logged and counted,
never applied; the controller keeps running.

Several replicas are safe: they elect a leader on a coordination.k8s.io/v1 Lease
(--lease-name in --lease-namespace, identity --identity); only the leader refreshes sources
and writes. Followers wait and take over when the leader stops renewing, or at once when it
releases the Lease on SIGTERM.

HTTP on --listen: /healthz (200 while the loop and the election make progress), /readyz (200
once this replica has applied successfully as leader, or follows a known leader), /metrics
(Prometheus text format: source freshness and failures, set sizes, builds, apply errors,
leadership). Logs are JSON lines on stderr (--log-format text for people).

SIGTERM or SIGINT: stop starting work, let an in-flight write finish, release the Lease, exit 0.
Changes to the config take effect on restart (kubectl rollout restart)."""

_CONTROLLER_EPILOG = """\
examples:
  egressguard controller -c /etc/egressguard/blocklist.yaml          # in the Deployment
  egressguard controller -c blocklist.yaml --no-leader-election --listen 127.0.0.1:8080 \\
      --log-format text                                            # one replica, on a laptop
  curl -s localhost:8080/metrics | grep egressguard_source_up

environment:
  POD_NAME        default --identity (the Deployment sets it from the downward API)
  POD_NAMESPACE   default --lease-namespace (else the kubeconfig context's namespace)

log line:
  {"time":"2026-01-02T10:00:00.123+00:00","level":"info","logger":"egressguard.app.controller",
   "msg":"source spamhaus-drop: fresh","event":"source.refresh","source":"spamhaus-drop",...}"""


def _register_controller(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = new_parser(
        sub,
        "controller",
        help="run the long-lived controller: refresh sources, rebuild, apply, with leader election",
        description=_CONTROLLER_DESCRIPTION,
        epilog=_CONTROLLER_EPILOG,
    )
    parser.add_argument(
        "-c", "--config", required=True, metavar="CONFIG", help="the Blocklist config (YAML)"
    )
    _add_cluster_options(parser)
    add_state_dir_option(parser)
    parser.add_argument(
        "--ca-file", metavar="PEM", help="extra CA certificates to trust for HTTPS sources"
    )
    parser.add_argument(
        "--listen",
        default="0.0.0.0:8080",
        metavar="HOST:PORT",
        help="address of /healthz, /readyz and /metrics (default: 0.0.0.0:8080; port 0 picks "
        "a free port)",
    )
    parser.add_argument(
        "--resync",
        default="10m",
        metavar="DURATION",
        help="rebuild and apply at least this often, to repair drift (default: 10m)",
    )
    election = parser.add_argument_group("leader election")
    election.add_argument(
        "--no-leader-election",
        action="store_true",
        help="run alone: always lead (only with a single replica)",
    )
    election.add_argument(
        "--identity", metavar="ID", help="this replica's name (default: $POD_NAME, else host-pid)"
    )
    election.add_argument(
        "--lease-namespace",
        metavar="NS",
        help="namespace of the Lease (default: $POD_NAMESPACE, else the context's namespace)",
    )
    election.add_argument(
        "--lease-name",
        default="egressguard-controller",
        metavar="NAME",
        help="name of the Lease (default: egressguard-controller)",
    )
    election.add_argument(
        "--lease-duration",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="how long a lease is valid without renewal (default: 15)",
    )
    election.add_argument(
        "--renew-deadline",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="a leader that cannot renew for this long stops leading (default: 10)",
    )
    election.add_argument(
        "--retry-period",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how often to try to acquire or renew (default: 2)",
    )
    logs = parser.add_argument_group("logging")
    logs.add_argument(
        "--log-format",
        choices=("json", "text"),
        default="json",
        help="json (default): one object per line; text: for people",
    )
    logs.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="default: info",
    )
    parser.set_defaults(handler=_run_controller)


def _listen_address(text: str) -> tuple[str, int]:
    from egressguard.errors import UsageError

    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--listen {text!r}: expected HOST:PORT, e.g. 0.0.0.0:8080")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - probes reach the pod IP


def _setup_logging(fmt: str, level: str) -> None:
    import logging

    from egressguard.app.controller import JsonFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # one line per HTTP request of the API client would drown the controller's own events
    for noisy in ("httpx", "httpx2", "httpcore", "lightkube"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def _run_controller(args: argparse.Namespace) -> int:
    import logging
    import os
    import signal
    import threading
    from pathlib import Path

    from egressguard import __version__
    from egressguard.adapters.kube import connect
    from egressguard.adapters.metrics import MetricsServer
    from egressguard.adapters.records import DirectoryRecordStore
    from egressguard.app.config import parse_duration
    from egressguard.app.controller import Controller, ControllerSettings
    from egressguard.app.leader import ElectionConfig, LeaderElector
    from egressguard.errors import UsageError

    host, port = _listen_address(args.listen)
    try:
        resync = parse_duration(args.resync)
        election = None
        if not args.no_leader_election:
            ElectionConfig(  # check the timing before connecting
                "ns",
                args.lease_name,
                "check",
                lease_duration=args.lease_duration,
                renew_deadline=args.renew_deadline,
                retry_period=args.retry_period,
            )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    _setup_logging(args.log_format, args.log_level)
    log = logging.getLogger("egressguard.cli.controller")
    config = load_config_or_report(args.config, "text")
    if config is None:
        return 1
    identity = _identity(args.identity)
    root = state_root(args.state_dir)
    loader = _loader(config, root, ca_file=args.ca_file, quiet=True)
    records = DirectoryRecordStore(Path(root) / config.name)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info(
            "received %s: shutting down",
            signal.Signals(signum).name,
            extra={"event": "shutdown", "signal": signal.Signals(signum).name},
        )
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with connect(args.kubeconfig, context=args.context) as client:
        elector = None
        if not args.no_leader_election:
            namespace = args.lease_namespace or os.environ.get("POD_NAMESPACE") or client.namespace
            election = ElectionConfig(
                namespace,
                args.lease_name,
                identity,
                lease_duration=args.lease_duration,
                renew_deadline=args.renew_deadline,
                retry_period=args.retry_period,
            )
            elector = LeaderElector(client, election)
        controller = Controller(
            config,
            loader=loader,
            client=client,
            records=records,
            elector=elector,
            identity=identity,
            settings=ControllerSettings(resync=resync),
            version=__version__,
        )
        server = MetricsServer(
            controller.render_metrics,
            host=host,
            port=port,
            probes={"/healthz": controller.health, "/readyz": controller.ready},
        )
        server.start()
        bound_host, bound_port = server.address
        log.info(
            "controller %s started for blocklist %s; http://%s:%d/metrics",
            identity,
            config.name,
            bound_host,
            bound_port,
            extra={
                "event": "started",
                "identity": identity,
                "blocklist": config.name,
                "listen": f"{bound_host}:{bound_port}",
                "state_dir": str(Path(root) / config.name),
                "lease": (
                    f"{election.namespace}/{election.name}" if election is not None else None
                ),
            },
        )
        try:
            clean = controller.run(stop)
        finally:
            server.stop()
        log.info(
            "controller stopped",
            extra={"event": "stopped", "identity": identity, "clean": clean},
        )
    return 0


# --------------------------------------------------------------------------------------------
# verify

_VERIFY_DESCRIPTION = """\
Prove in a real cluster that the blocklist blocks. For each namespace, egressguard renders a
short-lived probe Job whose pod tries sampled destinations and prints what it observed:

  blocked samples   addresses drawn from your own blocklist: the network sets (and inline nets)
                    that a Deny egress rule selects; --samples per set, reproducible with --seed,
                    never an --allowed address
  allowed           only the destinations you name with --allowed; egressguard never invents a
                    public address to connect to

The expected verdict of every probe comes from the policy evaluator, for a pod with the probe
pod's labels (plus --pod-label) in that namespace, with the deciding rule as the reason.

Without --run, the Jobs are printed (YAML, ready for kubectl apply) with the plan as comments;
-o table prints the plan, -o json both. With --run, egressguard creates the Jobs, waits (at
most --wait seconds), reads each pod's log, deletes the Jobs (unless --keep) and prints expected
vs observed. Exit 0 only when every probe behaved as expected.

What counts as expected. Calico's Deny drops packets (Felix's default deny action), so a
blocked probe must TIME OUT: keep --timeout short (default 3 s). An allowed probe must reach
its destination: a completed TCP handshake, or a refusal (the destination answered). If Felix
is configured to REJECT, pass --deny-action reject. A timeout alone proves only that something
dropped the packet; allowed destinations show that the drop is selective.

The probe pod runs `egressguard verify probe` from --image as a non-root user with a read-only
root filesystem, no capabilities and no service-account token; the Job has backoffLimit 0, an
activeDeadlineSeconds and a ttlSecondsAfterFinished of one hour. RBAC needed for --run:
create/get/delete jobs (batch) and list pods, get pods/log in each namespace."""

_VERIFY_EPILOG = """\
examples:
  egressguard verify -f examples/blog                      print the probe Job for 'default'
  egressguard verify -f examples/blog -o table             the plan: probes, expected, why
  egressguard verify -f examples/blog -n web -n batch --allowed 198.51.100.7 \\
      --port 443 --port udp/53 | kubectl apply -f -
  egressguard verify -f examples/blog --allowed 198.51.100.7 --run
  egressguard verify -f manifests/ --run --context aks-prod --wait 180 -o json

output (--run):
  NAMESPACE  PROBE                 SOURCE                    EXPECTED  OBSERVED       RESULT
  default    tcp 217.160.0.92:443  GlobalNetworkSet egress…  Blocked   timeout (3.0s) pass
  default    tcp 198.51.100.7:443  --allowed                 Allowed   connected      pass
  default: Job egressguard-verify-3f2a9c01d4 completed; 2/2 as expected, 0 not, 0 without result
  verified: every probe as expected"""


def _register_verify(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = new_parser(
        sub,
        "verify",
        help="probe sampled blocked and allowed destinations from Jobs in the cluster",
        description=_VERIFY_DESCRIPTION,
        epilog=_VERIFY_EPILOG,
    )
    parser.add_argument(
        "-f",
        "--filename",
        dest="paths",
        nargs="+",
        action="extend",
        metavar="FILE_OR_DIR",
        help="manifests (YAML files or directories) with the network sets and policies",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        dest="namespaces",
        action="append",
        metavar="NS",
        help="a namespace to probe from (repeatable; default: default)",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=3,
        metavar="N",
        help="addresses to sample per blocked network set (default: 3; 0: only --allowed)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, metavar="S", help="seed of the sampling (default: 0)"
    )
    parser.add_argument(
        "--allowed",
        action="append",
        default=[],
        metavar="IP",
        help="a destination that must stay reachable (repeatable); only addresses you name "
        "are ever probed as allowed",
    )
    parser.add_argument(
        "--port",
        dest="ports",
        action="append",
        metavar="[PROTO/]PORT",
        help="port to probe every destination on: 443, tcp/80, udp/53 (repeatable; "
        "default: tcp/443)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="per probe (default: 3); a blocked probe takes this long, so keep it short",
    )
    parser.add_argument(
        "--family",
        choices=("4", "6", "all"),
        default="all",
        help="address family of the sampled addresses (default: all); use 4 in an "
        "IPv4-only cluster",
    )
    parser.add_argument(
        "--pod-label",
        dest="pod_labels",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an extra label of the probe pod, so policies that select by label select it "
        "(repeatable)",
    )
    parser.add_argument(
        "--deny-action",
        choices=("drop", "reject"),
        default="drop",
        help="what Felix does on Deny (default: drop, Felix's default)",
    )
    parser.add_argument(
        "--image",
        default=None,
        metavar="IMAGE",
        help="the image that runs `egressguard verify probe` "
        "(default: ghcr.io/egressguard/egressguard:0.1.0)",
    )
    parser.add_argument(
        "--run-id",
        default=None,
        metavar="ID",
        help="names the Jobs egressguard-verify-ID (default: a digest of the plan, or random "
        "with --run)",
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=("yaml", "json", "table"),
        default=None,
        help="yaml (default without --run): the Jobs, plan as comments; table (default with "
        "--run); json",
    )
    run = parser.add_argument_group("running in the cluster")
    run.add_argument("--run", action="store_true", help="create the Jobs and report the results")
    run.add_argument("--kubeconfig", default=None, metavar="PATH", help="kubeconfig file")
    run.add_argument("--context", default=None, metavar="NAME", help="kubeconfig context")
    run.add_argument(
        "--wait",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long to wait for the Jobs (default: the Job deadline plus 30 s)",
    )
    run.add_argument(
        "--keep", action="store_true", help="do not delete the Jobs (they expire after an hour)"
    )
    parser.set_defaults(handler=_run_verify)

    verify_sub = parser.add_subparsers(dest="verify_command", metavar="[probe]")
    probe = new_parser(
        verify_sub,
        "probe",
        help="run inside the probe Job: probe the plan in $EGRESSGUARD_VERIFY_PLAN",
        description="Run the probes of the plan in the environment variable "
        "EGRESSGUARD_VERIFY_PLAN\n(written by `egressguard verify` into the Job) from this "
        "process's network and print one\nJSON line per result. TCP and UDP only; no raw "
        "sockets, no privileges needed.\nExit 0 when every probe ran, 2 when the plan is "
        "missing or invalid.",
        epilog="example (what the Job's container runs):\n"
        '  EGRESSGUARD_VERIFY_PLAN=\'{"version":1,"run":"r1","namespace":"default",'
        '"probes":[{"index":0,"proto":"tcp","dst":"127.0.0.1","port":443,"timeout":1}]}\' '
        "egressguard verify probe\n",
    )
    probe.set_defaults(handler=_run_verify_probe)


def _labels(items: list[str]) -> dict[str, str]:
    from egressguard.errors import UsageError

    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UsageError(f"--pod-label {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def _run_verify(args: argparse.Namespace) -> int:
    import math
    import secrets

    from egressguard import calico
    from egressguard.app import verify
    from egressguard.errors import UsageError

    if not args.paths:
        raise UsageError(
            "verify needs the manifests: -f FILE_OR_DIR",
            hint="egressguard verify -f examples/blog",
        )
    if not args.run and (args.keep or args.wait is not None):
        raise UsageError("--keep and --wait only apply with --run")
    run_id = args.run_id
    if args.run and run_id is None:
        run_id = secrets.token_hex(5)  # each run its own Job names
    ports = tuple(verify.PortSpec.parse(p) for p in (args.ports or ["tcp/443"]))
    options = verify.VerifyOptions(
        namespaces=verify.unique(args.namespaces or ["default"]),
        samples=args.samples,
        seed=args.seed,
        allowed=tuple(args.allowed),
        ports=verify.unique(ports),
        timeout=args.timeout,
        family=None if args.family == "all" else int(args.family),
        pod_labels=_labels(args.pod_labels),
        image=args.image or verify.DEFAULT_IMAGE,
        deny_action=verify.DenyAction(args.deny_action),
        run_id=run_id,
    )
    from egressguard.cli._common import expand_paths

    manifests = calico.load_paths(expand_paths(args.paths))
    if manifests.problems:
        for problem in manifests.problems:
            print(problem, file=sys.stderr)
        print(
            f"{len(manifests.problems)} problem(s) in the manifests; fix them first "
            "(egressguard validate shows the same)",
            file=sys.stderr,
        )
        return 1
    plan = verify.make_plan(manifests, options)
    if not args.run:
        return _print_plan(plan, args.output or "yaml")

    from egressguard.adapters.kube_jobs import connect_jobs

    wait = args.wait
    if wait is None:
        wait = max(verify.job_deadline(plan, n) for n in plan.namespaces) + 30.0
    if not math.isfinite(wait) or wait < 0:
        raise UsageError("--wait must be a number of seconds >= 0")
    with connect_jobs(args.kubeconfig, context=args.context) as client:
        report = verify.execute(
            plan,
            client,
            wait=wait,
            keep=args.keep,
            progress=lambda text: print(text, file=sys.stderr),
        )
    output = args.output or "table"
    if output == "json":
        emit_json(verify.report_to_json(report))
    elif output == "yaml":
        from egressguard import yamlio

        sys.stdout.write(yamlio.dump_documents([verify.report_to_json(report)]))
    else:
        sys.stdout.write(verify.format_report_table(report))
    return 0 if report.ok else 1


def _print_plan(plan: Any, output: str) -> int:
    from egressguard import yamlio
    from egressguard.app import verify

    if output == "json":
        emit_json(verify.plan_to_json(plan))
    elif output == "table":
        sys.stdout.write(verify.format_plan_table(plan))
    else:
        header = "".join(
            f"# {line}\n".replace("# \n", "#\n")
            for line in verify.format_plan_table(plan).splitlines()
        )
        sys.stdout.write(header + yamlio.dump_documents(verify.render_jobs(plan)))
    return 0


def _run_verify_probe(args: argparse.Namespace) -> int:
    from egressguard.adapters import verify_probe
    from egressguard.errors import UsageError

    if args.paths or args.run:
        raise UsageError("`verify probe` runs inside the Job and takes no manifests or --run")
    return verify_probe.main()

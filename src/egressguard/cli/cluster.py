"""Commands: apply, status, controller and verify against Kubernetes.

Each command has its own ``_register_<name>`` and ``_run_<name>`` functions; ``register`` only
wires them up. Heavy imports (the Calico model, the evaluator, lightkube) happen inside the
``_run_`` functions.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from egressguard.cli._common import emit_json, new_parser

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add this group's subcommands to sub."""
    _register_verify(sub)


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
        ports=verify.unique_ports(ports),
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

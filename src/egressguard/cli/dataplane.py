"""Commands: ``nft render|apply|diff|flush`` and the host ``agent``.

Each command has ``_register_<name>`` and ``_run_<name>``; heavy imports (YAML, the Calico
model, the compiler) happen inside the ``_run_`` functions.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from egressguard.cli._common import emit_json, new_parser

__all__ = ["register"]

NFT_DESCRIPTION = """\
Enforce Calico policies on this Linux host with egressguard's own nftables dataplane: one
table, inet egressguard, holding an interval set per rule selector and address family and a
chain per endpoint, tier and policy, in Calico's evaluation order (conntrack first, Log does
not stop evaluation, Deny drops, Pass goes to the next tier, end-of-tier drop). No other
table is ever touched.

Endpoints are the host itself (its own egress, nft output hook) and, with --endpoints FILE,
workloads behind local interfaces (routed traffic, forward hook). Without a file the host is
the only endpoint, with no labels, and allows what no policy decides, so a
GlobalNetworkPolicy with the default selector applies to the host's traffic.
"""

NFT_EPILOG = """\
examples:
  egressguard nft render -f examples/blog                  print the nft script
  sudo egressguard nft apply -f examples/blog              load it (one transaction)
  sudo egressguard nft diff -f examples/blog               what an apply would change
  sudo egressguard nft flush                               remove the egressguard table

endpoints file (--endpoints):
  apiVersion: egressguard.io/v1alpha1
  kind: Endpoints
  host: {labels: {role: node}}             # `host: null`: leave the host's traffic alone
  workloads:
    - {name: web, namespace: shop, labels: {app: web}, interface: "cali*",
       addresses: [198.51.100.11, "2001:db8::11"]}
"""


def _inputs(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-f",
        "--filename",
        dest="paths",
        action="append",
        required=True,
        metavar="FILE_OR_DIR",
        help="manifests (YAML files or directories); repeat for several",
    )
    p.add_argument(
        "--endpoints",
        metavar="FILE",
        help="endpoints file: the host's labels and the local workloads (see `nft --help`)",
    )
    _log_options(p)


def _log_options(p: argparse.ArgumentParser) -> None:
    """What the Log rules write (read back by ``_options``)."""
    p.add_argument(
        "--log-prefix",
        default="calico-packet",
        metavar="TEMPLATE",
        help="log prefix template as Calico's logPrefix (%%t tier, %%k kind, %%n name, "
        "%%p namespace/name); default: calico-packet",
    )
    p.add_argument(
        "--log-rate",
        metavar="N/UNIT",
        help="rate-limit log lines (not the verdicts), e.g. 10/second, 100/minute",
    )
    p.add_argument(
        "--log-burst", type=int, default=5, metavar="N", help="burst for --log-rate (default 5)"
    )


def _netns(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--netns",
        metavar="NAME",
        help="act inside this network namespace (ip netns exec NAME nft ...)",
    )


def _output(p: argparse.ArgumentParser, *, text: str) -> None:
    p.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help=f"text (default): {text}; json: one JSON object",
    )


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add this group's subcommands to sub."""
    nft = new_parser(
        sub,
        "nft",
        help="enforce the manifests with egressguard's nftables table on this host",
        description=NFT_DESCRIPTION,
        epilog=NFT_EPILOG,
    )
    nft_sub = nft.add_subparsers(dest="nft_command", metavar="COMMAND")

    def _nft_help(args: argparse.Namespace) -> int:
        nft.print_help(sys.stderr)
        return 2

    nft.set_defaults(handler=_nft_help)

    render = new_parser(
        nft_sub,
        "render",
        help="print the nft script the manifests compile to (needs no root)",
        description="Compile the manifests for this host's endpoints and print the nft -f "
        "script: one transaction that replaces the table inet egressguard and nothing else.\n\n"
        "Exit status: 0 ok, 1 invalid manifests or endpoints, 2 usage errors.",
        epilog="examples:\n"
        "  egressguard nft render -f examples/blog\n"
        "  egressguard nft render -f policies/ --endpoints endpoints.yaml > table.nft\n"
        "  egressguard nft render -f examples/blog -o json | jq .endpoints",
    )
    _inputs(render)
    _output(render, text="the script")
    render.set_defaults(handler=_run_render)

    apply = new_parser(
        nft_sub,
        "apply",
        help="load the compiled table into the kernel in one transaction",
        description="Compile the manifests and replace the table inet egressguard in one nft "
        "transaction: packets see the old table or the new one, never a mix, and if the kernel "
        "refuses anything nothing changes. When the kernel already holds exactly this table "
        "(its state marker says so) nothing is sent.\n\n"
        "Refused (exit 3) unless --force: policies that would deny DNS or metadata addresses "
        "(168.63.129.16, 169.254.169.254) or all egress of an endpoint.\n\n"
        "Exit status: 0 applied or unchanged, 1 invalid input, 2 usage, 3 refused as unsafe, "
        "4 the kernel refused (the previous ruleset is still in place).",
        epilog="examples:\n"
        "  sudo egressguard nft apply -f examples/blog\n"
        "  sudo egressguard nft apply -f policies/ --endpoints endpoints.yaml\n"
        "  sudo egressguard nft apply -f examples/blog --dry-run   (nft -c: check only)\n"
        "  sudo egressguard nft apply -f lab/ --netns eg-lab-node",
    )
    _inputs(apply)
    _netns(apply)
    apply.add_argument(
        "--dry-run", action="store_true", help="let nft check the script (nft -c); change nothing"
    )
    apply.add_argument(
        "--force", action="store_true", help="apply even when the safety checks refuse"
    )
    _output(apply, text="one summary line")
    apply.set_defaults(handler=_run_apply)

    diff = new_parser(
        nft_sub,
        "diff",
        help="show what an apply would change in the kernel",
        description="Compare the compiled table with the one in the kernel: unchanged, only "
        "set elements (how many ranges each set loses and gains; an apply by the agent sends "
        "just those), or a full replace (rules, chains or set definitions differ).\n\n"
        "Exit status: 0 no difference, 1 differences (like diff(1)), 2 usage, 4 nft failed.",
        epilog="examples:\n"
        "  sudo egressguard nft diff -f examples/blog\n"
        "  sudo egressguard nft diff -f policies/ --script    print the nft script too\n"
        "  sudo egressguard nft diff -f policies/ -o json",
    )
    _inputs(diff)
    _netns(diff)
    diff.add_argument(
        "--script", action="store_true", help="also print the nft script an update would run"
    )
    _output(diff, text="a summary per set")
    diff.set_defaults(handler=_run_diff)

    flush = new_parser(
        nft_sub,
        "flush",
        help="remove the egressguard table (and nothing else)",
        description="Delete the table inet egressguard: every set, chain and rule of ours. "
        "Other tables (firewalld, Docker, kube-proxy, Calico) are not touched.\n\n"
        "Exit status: 0 removed or absent, 4 nft failed.",
        epilog="examples:\n  sudo egressguard nft flush\n  sudo egressguard nft flush --netns lab",
    )
    _netns(flush)
    _output(flush, text="one line")
    flush.set_defaults(handler=_run_flush)

    agent = new_parser(
        sub,
        "agent",
        help="keep this host's nftables table in line with a manifest directory",
        description="Apply the manifests of a directory, then watch it (polling names, sizes "
        "and modification times; contents hashed on change) and apply every change: when only "
        "network-set contents changed, as element deletions and additions in one kernel "
        "batch, not a reload. Every minute (--verify) the table's state marker is checked and "
        "the table restored if someone removed or changed it.\n\n"
        "An apply that fails leaves the previous ruleset in place, is logged as a JSON line "
        "on stderr (event apply-failed, with the error) and the agent keeps running. Stop it "
        "with SIGINT or SIGTERM; the table stays (remove it with `egressguard nft flush`).",
        epilog="examples:\n"
        "  sudo egressguard agent --manifests /etc/egressguard/manifests\n"
        "  sudo egressguard agent --manifests policies/ --endpoints endpoints.yaml --interval 5\n"
        "  sudo egressguard agent --manifests lab/ --netns eg-lab-node --once\n\n"
        "log lines (stderr, one JSON object each):\n"
        '  {"event":"applied","kind":"elements","sets":[{"set":"sel4-…","added":12,'
        '"removed":3}],...}\n'
        '  {"event":"apply-failed","error":"…","kept":"the previous ruleset",...}',
    )
    agent.add_argument(
        "--manifests", required=True, metavar="DIR", help="directory (or file) of manifests"
    )
    agent.add_argument("--endpoints", metavar="FILE", help="endpoints file (see `nft --help`)")
    _netns(agent)
    agent.add_argument(
        "--interval",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how often to look for changes (0.2-60, default 2)",
    )
    agent.add_argument(
        "--verify",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how often to check that the kernel still holds our table (default 60)",
    )
    agent.add_argument(
        "--once", action="store_true", help="apply once and exit (exit 1 on failure)"
    )
    agent.add_argument(
        "--force", action="store_true", help="apply even when the safety checks refuse"
    )
    _log_options(agent)
    agent.set_defaults(handler=_run_agent)


# ----------------------------------------------------------------------------- handlers


def _options(args: argparse.Namespace) -> Any:
    from egressguard.errors import UsageError
    from egressguard.nft import compile as nft_compile
    from egressguard.nft import ir

    limit = None
    if args.log_rate:
        rate, _, unit = args.log_rate.partition("/")
        try:
            limit = ir.LogLimit(int(rate), unit or "second", args.log_burst)
        except ValueError as exc:
            raise UsageError(
                f"--log-rate {args.log_rate!r}: expected N/second|minute|hour|day "
                f"and --log-burst >= 0"
            ) from exc
    return nft_compile.Options(log_prefix=args.log_prefix, log_limit=limit)


def _compiled(args: argparse.Namespace) -> Any:
    from egressguard.app import agent

    inputs = agent.load_inputs(args.paths, args.endpoints)
    return inputs, agent.compile_inputs(inputs, _options(args))


def _run_render(args: argparse.Namespace) -> int:
    _, compiled = _compiled(args)
    if args.output == "json":
        emit_json(
            {
                "script": compiled.script(),
                "endpoints": [e.to_json() for e in compiled.endpoints],
                "notes": list(compiled.notes),
            }
        )
        return 0
    sys.stdout.write(compiled.script())
    for note in compiled.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def _nft(args: argparse.Namespace) -> Any:
    from egressguard.adapters.nftables import NftCli

    return NftCli(args.netns)


def _run_apply(args: argparse.Namespace) -> int:
    from egressguard.app import agent
    from egressguard.errors import SafetyError

    inputs, compiled = _compiled(args)
    if not args.force:
        findings = agent.safety_findings(inputs)
        if findings:
            raise SafetyError(
                "refusing to apply: " + "; ".join(findings),
                hint="fix the policies (an allow or Pass for other egress), or use --force",
            )
    result = agent.apply_compiled(_nft(args), compiled.table, dry_run=args.dry_run)
    if args.output == "json":
        emit_json(
            {
                **result.to_json(),
                "endpoints": [e.to_json() for e in compiled.endpoints],
                "notes": list(compiled.notes),
            }
        )
        return 0
    sets = len(compiled.table.sets)
    chains = len(compiled.table.chains)
    where = f" in netns {args.netns}" if args.netns else ""
    verb = {
        "check": "checked (nothing applied)",
        "unchanged": "unchanged",
        "replace": "applied",
        "elements": "updated",
    }[result.kind]
    print(
        f"table inet egressguard{where}: {verb} ({sets} sets, {chains} chains, "
        f"{result.seconds:.3f} s)"
    )
    for note in compiled.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def _run_diff(args: argparse.Namespace) -> int:
    from egressguard.app import agent

    _, compiled = _compiled(args)
    plan = agent.kernel_plan(_nft(args), compiled.table)
    if args.output == "json":
        out = plan.summary()
        if args.script:
            out["script"] = plan.script()
        emit_json(out)
        return 0 if plan.kind == "unchanged" else 1
    print(f"{plan.kind}: {plan.reason}")
    for change in plan.changes:
        print(f"  set {change.name}: -{len(change.removed)} +{len(change.added)} ranges")
    if args.script and plan.kind != "unchanged":
        sys.stdout.write(plan.script())
    return 0 if plan.kind == "unchanged" else 1


def _run_flush(args: argparse.Namespace) -> int:
    removed = _nft(args).flush()
    if args.output == "json":
        emit_json({"removed": removed})
    else:
        print("table inet egressguard: " + ("removed" if removed else "not present"))
    return 0


def _run_agent(args: argparse.Namespace) -> int:
    import signal
    import threading
    from pathlib import Path

    from egressguard.app.agent import Agent

    runner = Agent(
        _nft(args),
        Path(args.manifests),
        Path(args.endpoints) if args.endpoints else None,
        options=_options(args),
        interval=args.interval,
        verify_interval=args.verify,
        force=args.force,
    )
    if args.once:
        event = runner.step()
        return 0 if event is not None and event.get("event") == "applied" else 1
    stop = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    runner.run(stop)
    return 0

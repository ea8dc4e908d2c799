"""Commands: the network-namespace lab (``lab up``, ``lab status``, ``lab down``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from egressguard.cli._common import emit_json, new_parser
from egressguard.tables import align

__all__ = ["register"]

_DEFAULT_PREFIX = "eg-lab-"  # mirrors egressguard.app.lab.DEFAULT_PREFIX (not imported: start-up)
_DEFAULT_STATE_DIR = "/run/egressguard"

LAB_DESCRIPTION = """\
Reproduce the reference scenario on one Linux machine: network namespaces for two pods, a node
that routes them, and an "internet" with servers (TCP 80 and 443, UDP 53, ICMP echo), linked by
veth pairs whose node side is named like Calico's (cali + 11 hex digits). Only documentation
addresses are used (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32).

Needs root (network namespaces). Everything made is recorded in a state file
(/run/egressguard/lab-<prefix>.json) so `lab down` removes exactly that, even after a crash.
"""

LAB_EPILOG = """\
examples:
  sudo egressguard lab run                the main job: examples/blog enforced and probed
  sudo egressguard lab run --manifests examples/lab-tier/manifests -o json
  sudo egressguard lab up                 build the lab (namespaces eg-lab-*) and start servers
  sudo egressguard lab status             what is up, and whether the servers run
  sudo egressguard lab down               remove it all (idempotent)
  sudo egressguard lab up --prefix eg-me- --hold 600
                                          a second, separate lab, torn down after 10 minutes
                                          or on Ctrl-C
"""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--prefix",
        default=_DEFAULT_PREFIX,
        help=f"namespace name prefix of this lab (default: {_DEFAULT_PREFIX}); labs with "
        "different prefixes are independent",
    )
    p.add_argument(
        "--state-dir",
        default=_DEFAULT_STATE_DIR,
        metavar="DIR",
        help=f"where the state file lab-<prefix>.json lives (default: {_DEFAULT_STATE_DIR})",
    )
    p.add_argument(
        "-o",
        "--output",
        choices=("table", "json"),
        default="table",
        help="output format (default: table)",
    )


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add this group's subcommands to sub."""
    lab = new_parser(
        sub,
        "lab",
        help="build, inspect and remove the network-namespace lab",
        description=LAB_DESCRIPTION,
        epilog=LAB_EPILOG,
    )
    lab_sub = lab.add_subparsers(dest="lab_command", metavar="COMMAND")

    def _lab_help(args: argparse.Namespace) -> int:
        lab.print_help(sys.stderr)
        return 2

    lab.set_defaults(handler=_lab_help)

    up = new_parser(
        lab_sub,
        "up",
        help="build the namespaces, links and servers",
        description="Build the lab: namespaces <prefix>pod1, <prefix>pod2, <prefix>node and "
        "<prefix>inet,\nveth links, addresses, routes, forwarding on the node, and the "
        "servers in the internet\nnamespace. Prints what was built. A failure or Ctrl-C "
        "while building removes what was made.",
        epilog="examples:\n"
        "  sudo egressguard lab up\n"
        "  sudo egressguard lab up -o json | jq .topology.pods\n"
        "  sudo egressguard lab up --prefix eg-me- --hold 300   # up for 5 min, then removed\n",
    )
    _common(up)
    up.add_argument(
        "--hold",
        type=float,
        metavar="SECONDS",
        help="stay in the foreground for at most SECONDS, then tear the lab down; Ctrl-C or "
        "SIGTERM tears it down earlier",
    )
    up.set_defaults(handler=_up)

    status = new_parser(
        lab_sub,
        "status",
        help="show what of the lab exists and whether its servers run",
        description="Show the lab recorded in the state file: each namespace (present or "
        "missing),\neach server process (running or not), changed sysctls, and namespaces "
        "with the prefix\nthat the state file does not know. Exit 0 when the lab is up and "
        "complete, 1 otherwise.",
        epilog="examples:\n  egressguard lab status\n  egressguard lab status -o json\n",
    )
    _common(status)
    status.set_defaults(handler=_status)

    down = new_parser(
        lab_sub,
        "down",
        help="remove the lab: processes, namespaces, links; restore sysctls",
        description="Remove everything the lab made: stop its processes, delete its "
        "namespaces (the veth\nlinks go with them), restore any sysctl it changed, delete the "
        "state file. Without a\nstate file, the namespaces named <prefix><letters/digits> are "
        "removed. Running it again\nis a no-op.",
        epilog="examples:\n"
        "  sudo egressguard lab down\n"
        "  sudo egressguard lab down --prefix eg-me-\n",
    )
    _common(down)
    down.set_defaults(handler=_down)

    run = new_parser(
        lab_sub,
        "run",
        help="enforce manifests in the lab, probe from the pods, compare with the evaluator",
        description=RUN_DESCRIPTION,
        epilog=RUN_EPILOG,
    )
    _common(run)
    run.add_argument(
        "--manifests",
        "-f",
        action="extend",
        nargs="+",
        metavar="PATH",
        help="manifest files or directories to enforce (default: the bundled examples/blog)",
    )
    run.add_argument(
        "--keep",
        action="store_true",
        help="leave the lab up after the run (explore it, then `lab down`); a failed or "
        "interrupted run is removed all the same",
    )
    run.add_argument(
        "--timeout",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how long a probe waits for its answer; a blocked one waits this long (default: 2)",
    )
    run.add_argument(
        "--log-wait",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="longest wait for the kernel's log lines after the probes (default: 3)",
    )
    run.add_argument(
        "--log-prefix",
        default="calico-packet",
        metavar="TEMPLATE",
        help="Calico LogPrefix template the Log rules write and the run reads "
        "(default: calico-packet)",
    )
    run.add_argument(
        "--no-ipv6-coverage",
        dest="ipv6_coverage",
        action="store_false",
        help="do not add an IPv6 address to the lab copy of an IPv4-only network set",
    )
    run.add_argument(
        "--max-destinations",
        type=int,
        default=16,
        metavar="N",
        help="probe at most N listed addresses, evenly spread (default: 16)",
    )
    run.set_defaults(handler=_run)


RUN_DESCRIPTION = """\
Reproduce the reference scenario end to end and check it: build the lab (two pods behind
cali* interfaces, a node, an "internet" with servers for TCP 80 and 443, UDP 53 and ICMP echo),
copy the manifests with every public address moved into 203.0.113.0/24 (2001:db8:203:113::/64)
and print that mapping, enforce them on the node with egressguard's nftables dataplane, send
real TCP, UDP and ICMP probes from both pods to every listed address and to a control address,
read the kernel's calico-packet lines from /dev/kmsg (net.netfilter.nf_log_all_netns is set to
1 for the run and restored), and print every probe (expected by egressguard's evaluator on the
enforced manifests vs observed) and the parsed log events. Nothing is sent to the original
addresses: the lab only uses 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32.

IPv6: when no network set holds an IPv6 entry (the reference scenario is IPv4-only), one IPv6
address is added to the lab copy of the set, marked "added for IPv6 coverage"
(--no-ipv6-coverage leaves it out). Public CIDRs larger than the lab's internet (IPv4 shorter
than /24, IPv6 shorter than /64) are refused; private and special-purpose ranges are kept as
written and not probed.

Exit status 0 when every probe behaved as the evaluator predicts, verdict and logging; 1 when
any differed (they are listed). A Log rule after its Deny is predicted "not logged" and
matches; lint errors such as log-never-fires are printed but do not change the status. The
lab is removed at the end (--keep leaves it up), and always on failure, Ctrl-C or SIGTERM.
Needs root.
"""

RUN_EPILOG = """\
examples:
  sudo egressguard lab run
  sudo egressguard lab run -o json | jq '.probes[] | select(.matched | not)'
  sudo egressguard lab run --manifests examples/lab-tier/manifests
  sudo egressguard lab run --keep && sudo egressguard lab status && sudo egressguard lab down
"""


def _bundled_blog() -> Path:
    """examples/blog of this source tree (or of the working directory)."""
    import egressguard

    for candidate in (
        Path(egressguard.__file__).resolve().parents[2] / "examples" / "blog",
        Path("examples") / "blog",
    ):
        if candidate.is_dir():
            return candidate
    from egressguard.errors import UsageError

    raise UsageError(
        "the bundled examples/blog was not found",
        hint="give the manifests with --manifests DIR (a source checkout has examples/blog)",
    )


def _run(args: argparse.Namespace) -> int:
    from egressguard import calico
    from egressguard.app import lab as app
    from egressguard.app import labrun
    from egressguard.errors import UsageError

    app.validate_prefix(args.prefix)
    if not 0 < args.timeout <= 30 or not 0 <= args.log_wait <= 60:
        raise UsageError("--timeout must be in (0, 30] and --log-wait in [0, 60] seconds")
    if args.max_destinations < 1:
        raise UsageError("--max-destinations must be at least 1")
    paths = [Path(p) for p in args.manifests] if args.manifests else [_bundled_blog()]
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path}: no such file or directory")
    options = labrun.RunOptions(
        prefix=args.prefix,
        state_dir=Path(args.state_dir),
        keep=args.keep,
        timeout=args.timeout,
        log_wait=args.log_wait,
        log_prefix=args.log_prefix,
        ipv6_coverage=args.ipv6_coverage,
        max_destinations=args.max_destinations,
    )
    ascii_only = not _can_encode(sys.stdout, "→✓✗…")
    dots = "..." if ascii_only or not _can_encode(sys.stderr, "…") else "…"

    def progress(message: str) -> None:
        # Steps under way end in dots; a finished statement ends with its full stop.
        print(message if message.endswith(".") else message + dots, file=sys.stderr, flush=True)

    progress(f"loading {', '.join(_shown(p) for p in paths)}")
    manifests = calico.load_paths(paths)
    prepared = labrun.prepare(manifests, options, sources=[_shown(p) for p in paths])
    runner = _runner()
    report = labrun.execute(prepared, options, runner=runner, progress=progress)
    if args.output == "json":
        emit_json(report.to_json())
    else:
        sys.stdout.write(labrun.render_text(report, ascii_only=ascii_only))
    if report.teardown is not None and report.teardown.errors:
        return 1  # the lab is not (wholly) removed: the progress line said what is left
    return 0 if report.ok else 1


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _can_encode(stream: Any, text: str) -> bool:
    try:
        text.encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _runner() -> Any:
    from egressguard.adapters import netns

    netns.check_privileges()
    return netns.SubprocessNetnsRunner()


def _up(args: argparse.Namespace) -> int:
    import time

    from egressguard.app import lab as app

    app.validate_prefix(args.prefix)
    runner = _runner()
    topology = app.default_topology(args.prefix)
    holding = args.hold is not None
    lab = None
    interrupted = False
    # SIGTERM acts like Ctrl-C for the whole command: a build unwinds and removes what it
    # made; a holding lab is torn down.
    with app.interruptible():
        try:
            lab = app.lab_up(topology, runner=runner, state_dir=Path(args.state_dir))
            doc = {
                "prefix": topology.prefix,
                "state_file": str(lab.state_file.path),
                "status": lab.state.status,
                "topology": topology.to_json(),
                "processes": [p.to_json() for p in lab.state.processes],
            }
            if args.output == "json":
                emit_json(doc)
            else:
                _print_topology(doc)
            sys.stdout.flush()
            if holding:
                print(
                    f"holding the lab for up to {args.hold:g} s; Ctrl-C tears it down",
                    file=sys.stderr,
                    flush=True,
                )
                deadline = time.monotonic() + max(0.0, args.hold)
                while (left := deadline - time.monotonic()) > 0:
                    time.sleep(min(left, 0.5))
        except KeyboardInterrupt:
            if lab is None or not holding:
                raise  # lab_up already removed a half-built lab; a built one stays up
            interrupted = True
    if lab is None or not holding:
        return 0
    with app.shielded():
        report = lab.down()
    print(_down_summary(report.to_json()), file=sys.stderr)
    for err in report.errors:
        print(f"error: {err}", file=sys.stderr)
    if interrupted:
        return 130
    return 1 if report.errors else 0


def _print_topology(doc: dict[str, Any]) -> None:
    t = doc["topology"]
    ns = t["namespaces"]
    print(f"lab {doc['prefix']!r} is {doc['status']} (state file {doc['state_file']})")
    rows = [("NAMESPACE", "ROLE", "INTERFACE", "ADDRESSES", "DETAILS")]
    for pod in t["pods"]:
        labels = ",".join(f"{k}={v}" for k, v in sorted(pod["labels"].items()))
        rows.append(
            (
                ns[pod["key"]],
                pod["key"],
                "eth0",
                f"{pod['ipv4']} {pod['ipv6']}",
                f"pod {pod['namespace']}/{pod['name']} {labels}",
            )
        )
    for pod in t["pods"]:
        rows.append(
            (
                ns["node"],
                "node",
                pod["interface"],
                " ".join(t["gateway"]),
                f"gateway of {pod['key']}",
            )
        )
    rows.append((ns["node"], "node", t["node"]["uplink"], " ".join(t["node"]["addresses"]), ""))
    rows.append((ns["inet"], "inet", t["inet"]["uplink"], " ".join(t["inet"]["addresses"]), ""))
    print("\n".join(align(rows)))
    internet = t["inet"]["internet"]
    v4 = [a for a in internet if ":" not in a]
    v6 = [a for a in internet if ":" in a]
    print(f"internet addresses (lo in {ns['inet']}):")
    for group in (v4, v6):
        if group:
            print("  " + " ".join(group))
    servers = " ".join(
        [f"tcp/{p}" for p in t["inet"]["tcp"]] + [f"udp/{p}" for p in t["inet"]["udp"]]
    )
    pids = ", ".join(str(p["pid"]) for p in doc["processes"]) or "-"
    print(f"servers: {servers} on every internet address (pid {pids}); ICMP echo by the kernel")


def _status(args: argparse.Namespace) -> int:
    from egressguard.adapters import netns
    from egressguard.app import lab as app

    app.validate_prefix(args.prefix)
    st = app.lab_status(
        args.prefix, runner=netns.SubprocessNetnsRunner(), state_dir=Path(args.state_dir)
    )
    if args.output == "json":
        emit_json(st.to_json())
        return 0 if st.healthy else 1
    if not st.exists:
        print(f"no lab with prefix {args.prefix!r} (no state file {st.state_file})")
        return 1
    state = st.state
    print(
        f"lab {args.prefix!r}: "
        + ("up" if st.healthy else (f"{state.status}, degraded" if state else "unrecorded"))
    )
    rows = [("KIND", "NAME", "STATE")]
    for name, present in st.namespaces.items():
        rows.append(("namespace", name, "present" if present else "missing"))
    for ref, alive in st.processes:
        rows.append(
            ("process", f"{ref.role} pid {ref.pid} in {ref.ns}", "running" if alive else "gone")
        )
    for ch in state.sysctls if state else []:
        rows.append(("sysctl", f"{ch.key} in {ch.ns or 'host'}", f"restore to {ch.previous}"))
    for name in st.stray:
        rows.append(("namespace", name, "present, not in the state file"))
    print("\n".join(align(rows)))
    return 0 if st.healthy else 1


def _down_summary(doc: dict[str, Any]) -> str:
    if not (doc["had_state"] or doc["removed_namespaces"] or doc["stopped_pids"]):
        return f"nothing to remove for prefix {doc['prefix']!r}"
    parts = [
        f"removed {len(doc['removed_namespaces'])} namespace(s)"
        + (f" ({', '.join(doc['removed_namespaces'])})" if doc["removed_namespaces"] else ""),
        f"stopped {len(doc['stopped_pids'])} process(es)",
        f"restored {len(doc['restored_sysctls'])} sysctl(s)",
    ]
    return f"lab {doc['prefix']!r}: " + ", ".join(parts)


def _down(args: argparse.Namespace) -> int:
    from egressguard.app import lab as app

    app.validate_prefix(args.prefix)
    report = app.lab_down(args.prefix, runner=_runner(), state_dir=Path(args.state_dir))
    doc = report.to_json()
    if args.output == "json":
        emit_json(doc)
    else:
        print(_down_summary(doc))
        for err in report.errors:
            print(f"error: {err}", file=sys.stderr)
    return 1 if report.errors else 0

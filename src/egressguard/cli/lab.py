"""Commands: the network-namespace lab (``lab up``, ``lab status``, ``lab down``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from egressguard.cli._common import emit_json, new_parser

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
  sudo egressguard lab up                 build the lab (namespaces eg-lab-*) and start servers
  sudo egressguard lab status             what is up, and whether the servers run
  sudo egressguard lab down               remove it all (idempotent)
  sudo egressguard lab up --prefix eg-me- --hold 600
                                          a second, separate lab, torn down after 10 minutes
                                          or on Ctrl-C
"""


def _common(p: argparse.ArgumentParser, *, json_output: bool = True) -> None:
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
    if json_output:
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
    _print_rows(rows)
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


def _print_rows(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


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
    _print_rows(rows)
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

"""Commands: aggregate and build of blocklists.

Each command has its own ``_register_<name>`` and ``_run_<name>`` functions; ``register`` only
wires them up. Heavy imports (NumPy through ``egressguard.cidr``) happen inside ``_run_``.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from egressguard.cli._common import emit_json, new_parser, read_inputs

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add this group's subcommands to sub."""
    _register_aggregate(sub)


# --------------------------------------------------------------------------------------------
# aggregate

_AGGREGATE_DESCRIPTION = """\
Print the minimal CIDR list covering every address in the inputs: IPv4 first, then IPv6, one
CIDR per line, ascending. Overlapping, duplicate and adjacent entries merge; the result is the
shortest exact list (for IPv4 identical to `iprange --optimize`, including single addresses
printed without /32).

Input, one entry per line: an address, a CIDR (IPv4 may use a netmask: 10.0.0.0/255.0.0.0) or
a range "A - B" / "A-B" (from the first address of A to the last of B). '#' and ';' start
comments, also after an entry (1.10.16.0/20 ; SBL256894); blank lines, spaces, tabs and CRLF
line ends are ignored. Host bits are cleared (1.2.3.4/24 reads as 1.2.3.0/24; see -v).

Rejected lines are reported on stderr as FILE:LINE: REASON: 'TEXT' and skipped: hostnames
(never resolved), leading zeros in IPv4 octets (inet_aton would read 010 as octal 8), octets
above 255, prefixes above /32 or /128, reversed ranges (iprange swaps them silently), zone
indexes and anything else.

Exit status: 0 when every line was understood; 1 when some lines were rejected (the aggregate of
the good lines is still printed; --lenient makes this exit 0); 2 on usage errors such as a
missing file."""

_AGGREGATE_EPILOG = """\
examples:
  egressguard aggregate ipv4/*.cidr ipv6/*.cidr > world.txt
  curl -s https://www.spamhaus.org/drop/drop.txt | egressguard aggregate --stats
  egressguard aggregate -4 --prefix-hosts firehol_level1.netset   # 1.2.3.4/32, not 1.2.3.4
  egressguard aggregate --lenient -o json feed.txt | jq '.v4 | length'

output (text):
  1.10.16.0/20
  192.0.2.7
  2001:db8::/32
stderr with --stats:
  aggregate: 172627 lines in 241 inputs, 172627 entries, 0 rejected, 0 notes
  aggregate: IPv4 18892 CIDRs (3692164504 addresses), IPv6 0 CIDRs; 0.190 s"""


def _register_aggregate(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = new_parser(
        sub,
        "aggregate",
        help="print the minimal CIDR list of address lists (like iprange --optimize, plus IPv6)",
        description=_AGGREGATE_DESCRIPTION,
        epilog=_AGGREGATE_EPILOG,
    )
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="FILE",
        help="address lists to merge; - or nothing reads standard input",
    )
    family = parser.add_mutually_exclusive_group()
    family.add_argument("-4", dest="family", action="store_const", const=4, help="IPv4 only")
    family.add_argument("-6", dest="family", action="store_const", const=6, help="IPv6 only")
    parser.add_argument(
        "--lenient",
        action="store_true",
        help="exit 0 even when lines were rejected (they are still reported on stderr)",
    )
    parser.add_argument(
        "--prefix-hosts",
        action="store_true",
        help="print single addresses with their prefix (192.0.2.7/32) instead of bare",
    )
    parser.add_argument(
        "--stats", action="store_true", help="print counts and the time taken to stderr"
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also report notes on stderr (host bits cleared, IPv4-mapped IPv6 kept as IPv6)",
    )
    parser.add_argument(
        "--max-issues",
        type=int,
        default=50,
        metavar="N",
        help="report at most N rejected lines on stderr, then a count (default 50; 0 = all)",
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="text (default): one CIDR per line; json: {v4, v6, issues, notes, stats}",
    )
    parser.set_defaults(handler=_run_aggregate)


def _report(label: str, items: Any, limit: int) -> None:
    shown = items if limit <= 0 else items[:limit]
    for item in shown:
        sys.stderr.write(f"{label}{item}\n")
    if len(items) > len(shown):
        sys.stderr.write(f"{label}... and {len(items) - len(shown)} more\n")


def _run_aggregate(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    inputs = list(read_inputs(args.paths))
    from egressguard.cidr import parse  # NumPy: imported only when the command runs

    result = parse.parse_many(inputs)
    addresses = result.addresses
    v4 = addresses.v4 if args.family in (None, 4) else None
    v6 = addresses.v6 if args.family in (None, 6) else None
    bare = not args.prefix_hosts
    if args.output == "json":
        emit_json(
            {
                "v4": v4.cidr_strings(bare_hosts=bare) if v4 is not None else [],
                "v6": v6.cidr_strings(bare_hosts=bare) if v6 is not None else [],
                "issues": [_issue_json(i) for i in result.issues],
                "notes": [_issue_json(i) for i in result.notes],
                "stats": _stats(result, v4, v6),
            }
        )
    else:
        out = sys.stdout
        if v4 is not None:
            out.write(v4.to_text(bare_hosts=bare))
        if v6 is not None:
            out.write(v6.to_text(bare_hosts=bare))
        out.flush()
        _report("", result.issues, args.max_issues)
        if args.verbose:
            _report("note: ", result.notes, args.max_issues)
    if args.stats:
        st = _stats(result, v4, v6)
        sys.stderr.write(
            f"aggregate: {st['lines']} lines in {st['inputs']} inputs, {st['entries']} entries, "
            f"{st['rejected']} rejected, {st['notes']} notes\n"
            f"aggregate: IPv4 {st['v4_cidrs']} CIDRs ({st['v4_addresses']} addresses), "
            f"IPv6 {st['v6_cidrs']} CIDRs; {time.perf_counter() - started:.3f} s\n"
        )
    return 1 if result.issues and not args.lenient else 0


def _issue_json(issue: Any) -> dict[str, Any]:
    return {"source": issue.source, "line": issue.line, "text": issue.text, "reason": issue.reason}


def _stats(result: Any, v4: Any, v6: Any) -> dict[str, Any]:
    return {
        "inputs": len(result.sources),
        "lines": result.lines,
        "entries": result.entries,
        "rejected": len(result.issues),
        "notes": len(result.notes),
        "v4_cidrs": v4.cidr_count if v4 is not None else 0,
        "v4_addresses": v4.address_count if v4 is not None else 0,
        "v6_cidrs": v6.cidr_count if v6 is not None else 0,
    }

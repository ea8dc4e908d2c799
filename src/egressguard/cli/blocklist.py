"""Commands: aggregate and build of blocklists.

Each command has its own ``_register_<name>`` and ``_run_<name>`` functions; ``register`` only
wires them up. Heavy imports (NumPy through ``egressguard.cidr``) happen inside ``_run_``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from egressguard.cli._common import (
    add_state_dir_option,
    emit_json,
    load_config_or_report,
    new_parser,
    read_inputs,
    state_root,
)

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add this group's subcommands to sub."""
    _register_aggregate(sub)
    _register_build(sub)


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
    # This command never multiplies matrices: one BLAS thread spares NumPy's import the start of
    # a thread pool (about 30 ms of CPU here). Only takes effect before NumPy's first import.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
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


# --------------------------------------------------------------------------------------------
# build

_BUILD_DESCRIPTION = """\
Build the Calico manifests of a Blocklist config (docs/config.md): load every source (files,
URLs, geo-IP data; a failed download falls back to its last good copy in the state directory),
merge them per family, subtract what must never be blocked, cut the result into
GlobalNetworkSet shards on fixed address-space boundaries, and render the policies (tier mode:
a Tier and a Log/Deny/Pass policy; blog mode: the two policies of examples/blog).

Never blocked (always subtracted, and reported): spec.allow, spec.protect (pod, service and
node CIDRs, cluster DNS, the API server), special-purpose ranges (10/8, 172.16/12, 192.168/16,
100.64/10, 0/8, 127/8, 169.254/16, 224/4, 240/4, fc00::/7, fe80::/10, ...), 168.63.129.16,
169.254.169.254 and well-known public DNS resolvers (unless spec.safety.protect_public_dns is
false).

Refused unless --force (exit 3, nothing written): a source or the whole set shrinking by more
than spec.safety.max_shrink against the previous build in DIR; a set covering more than
spec.safety.max_coverage of the public address space; more than spec.safety.max_entries CIDRs
per family; a policy set that would deny all egress.

The output is deterministic: the same config and source data give byte-identical files. DIR
is replaced as a whole and atomically (a failed build leaves the previous one untouched); it
holds one manifest per file, in apply order (kubectl apply -f DIR works), and egressguard.lock
(the source versions and counts the next build compares against).

-o may be given twice: once with a directory, once with a format (json or text), e.g.
-o out/ -o json. Use ./json for a directory named json.

Exit status: 0 built; 1 config problems; 2 usage errors; 3 refused by a safety check;
4 a source that is not optional has never loaded."""

_BUILD_EPILOG = """\
examples:
  egressguard build -c examples/blocklist.yaml -o out/
  egressguard build -c blocklist.yaml --stdout | kubectl apply -f -
  egressguard build -c blocklist.yaml -o out/ --dry-run      # what would change in out/
  egressguard build -c blocklist.yaml -o out/ -o json | jq .changes
  egressguard build -c blocklist.yaml -o out/ --force        # accept a big shrink

output (stderr):
  blocklist egress-blocklist: 2 sources; IPv4 31,040 CIDRs in 5 shards, IPv6 0 CIDRs in 0 \
shards; 7 objects (tier mode, crd.projectcalico.org/v1)
    source firehol-level1: fresh, IPv4 4,478 / IPv6 0 CIDRs, 6 CIDRs subtracted
    subtracted (special-purpose): 0.0.0.0/8, 10.0.0.0/8, 100.64.0.0/10, 127.0.0.0/8, ...
    changes: 0 added, 1 changed, 0 removed, 6 unchanged
  wrote 8 files to out/"""


def _register_build(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = new_parser(
        sub,
        "build",
        help="build GlobalNetworkSet shards and policies from a Blocklist config",
        description=_BUILD_DESCRIPTION,
        epilog=_BUILD_EPILOG,
    )
    parser.add_argument(
        "-c", "--config", required=True, metavar="CONFIG", help="the Blocklist config (YAML)"
    )
    parser.add_argument(
        "-o",
        "--output",
        action="append",
        default=[],
        metavar="DIR|json|text",
        help="the output directory, and/or the summary format (json or text, the default)",
    )
    parser.add_argument(
        "--stdout",
        action="store_true",
        help="print all manifests as one multi-document YAML on standard output",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="build and compare with DIR, but write nothing",
    )
    parser.add_argument(
        "--force", action="store_true", help="build even when a safety check fails (exit 0)"
    )
    parser.add_argument(
        "--previous",
        metavar="DIR",
        help="compare against the build in DIR (default: the output directory)",
    )
    add_state_dir_option(parser)
    parser.add_argument(
        "--ca-file", metavar="PEM", help="extra CA certificates to trust for HTTPS sources"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    parser.set_defaults(handler=_run_build)


def _build_outputs(values: list[str]) -> tuple[str | None, str]:
    from egressguard.errors import UsageError

    formats = [v for v in values if v in ("json", "text")]
    dirs = [v for v in values if v not in ("json", "text")]
    if len(formats) > 1 or len(dirs) > 1:
        raise UsageError(
            "-o takes at most one directory and one format",
            hint="e.g. -o out/ -o json",
        )
    return (dirs[0] if dirs else None), (formats[0] if formats else "text")


def _run_build(args: argparse.Namespace) -> int:
    from pathlib import Path

    from egressguard.adapters.http import HttpxFetcher, NullProgress, auto_progress
    from egressguard.adapters.outdir import LocalManifestDir
    from egressguard.adapters.state import DirectoryStateStore
    from egressguard.app import build as build_mod
    from egressguard.app.sources import SourceLoader
    from egressguard.errors import UsageError

    out_dir, fmt = _build_outputs(args.output)
    if args.stdout and fmt == "json":
        raise UsageError("--stdout and -o json both write to standard output; choose one")
    if out_dir is None and not (args.stdout or args.dry_run or fmt == "json"):
        raise UsageError(
            "say where the manifests go: -o DIR or --stdout",
            hint="egressguard build -c blocklist.yaml -o out/",
        )
    config = load_config_or_report(args.config, fmt)
    if config is None:
        return 1
    outdir = LocalManifestDir(out_dir) if out_dir is not None else None
    compare = LocalManifestDir(args.previous) if args.previous else outdir
    previous = build_mod.read_previous(compare, config.name) if compare is not None else None
    if outdir is not None and compare is not outdir:
        build_mod.read_previous(outdir, config.name)  # refuse to overwrite a foreign directory
    fetcher = HttpxFetcher(
        progress=NullProgress() if args.quiet else auto_progress(), ca_file=args.ca_file
    )
    state = DirectoryStateStore(Path(state_root(args.state_dir)) / config.name)
    loader = SourceLoader(fetcher=fetcher, state=state)
    try:
        result = build_mod.build(config, loader=loader, previous=previous, force=args.force)
    except build_mod.BuildRefused as refused:
        _build_report(refused.result, args, fmt, written=None)
        raise
    if args.stdout:
        sys.stdout.write(result.stream())
        sys.stdout.flush()
    written = None
    up_to_date = (
        previous is not None and compare is outdir and dict(previous.files) == dict(result.files)
    )
    if outdir is not None and not args.dry_run and not up_to_date:
        build_mod.write(result, outdir)
        written = out_dir
    _build_report(result, args, fmt, written=written)
    if up_to_date and not args.dry_run and not args.quiet:
        print(f"{out_dir} is up to date: nothing written", file=sys.stderr)
    return 0


def _build_report(result: Any, args: argparse.Namespace, fmt: str, *, written: str | None) -> None:
    if fmt == "json":
        doc = result.to_json()
        doc["dry_run"] = bool(args.dry_run)
        doc["written"] = written
        emit_json(doc)
    if args.quiet:
        return
    for line in result.summary_lines():
        print(line, file=sys.stderr)
    if written is not None:
        print(f"wrote {len(result.files)} files to {written}", file=sys.stderr)
    elif args.dry_run:
        changes = result.changes
        if changes is None:
            print("dry run: nothing written (no previous build to compare with)", file=sys.stderr)
        elif changes.any:
            print("dry run: nothing written; would change:", file=sys.stderr)
            for label, names in (
                ("add", changes.added),
                ("change", changes.changed),
                ("remove", changes.removed),
            ):
                for name in names:
                    print(f"  {label} {name}", file=sys.stderr)
        else:
            print("dry run: nothing written; nothing would change", file=sys.stderr)

"""Benchmark: aggregate the world country sets, against its anchors measured in the same run.

    .venv/bin/python bench/aggregate.py [--repeat N] [--json]

What is measured (DESIGN.md section 7, real data from ../shared/data):

* in-process, parsing included, from the file contents already in memory, output as text:
  egressguard (``parse_many`` + ``cidr_strings``) vs ``ipaddress`` (``ip_network(strict=False)``
  per line + ``collapse_addresses``; its ``str()`` of the result is *not* counted, which favours
  the anchor) for world IPv4 and world IPv6;
* ``iprange --optimize`` (C) as a whole process on the IPv4 files (IPv4 only);
* the commands as processes, start-up included: ``egressguard aggregate`` vs a Python script
  doing the same with ``ipaddress``, on world IPv4 and on IPv4 + IPv6. egressguard's modules are
  byte-compiled first, as in any installed package (this sandbox sets PYTHONDONTWRITEBYTECODE).

Every figure is the best of ``--repeat`` runs (wall clock); CPU time (user + sys) is shown too
because this machine is shared. Outputs are compared; the run fails if they differ.
Targets: in-process >= 15x faster than ipaddress and <= 4x iprange's whole run (IPv4); command
>= 10x faster than the ipaddress script.
"""

from __future__ import annotations

import argparse
import compileall
import ipaddress
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("EGRESSGUARD_SHARED", REPO.parent / "shared")) / "data"
COUNTRIES = DATA / "countries/herrbischoff-2025-09"
PYTHON = sys.executable
EGRESSGUARD = str(Path(PYTHON).with_name("egressguard"))

IPADDRESS_SCRIPT = """\
import ipaddress, sys
nets = {4: [], 6: []}
for name in sys.argv[1:]:
    with open(name) as f:
        for line in f:
            line = line.split("#")[0].split(";")[0].strip()
            if line:
                n = ipaddress.ip_network(line, strict=False)
                nets[n.version].append(n)
out = []
for v in (4, 6):
    for n in ipaddress.collapse_addresses(nets[v]):
        out.append(str(n.network_address) if n.prefixlen == n.max_prefixlen else str(n))
sys.stdout.write("\\n".join(out) + ("\\n" if out else ""))
"""


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(best wall seconds, best CPU seconds, last result) of running fn repeat times."""
    wall = cpu = float("inf")
    result = None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu, result


def run_process(argv: list[str], repeat: int) -> tuple[float, float, str]:
    wall = cpu = float("inf")
    out = ""
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=600)
        elapsed = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        wall = min(wall, elapsed)
        cpu = min(cpu, used)
        out = done.stdout
    return wall, cpu, out


def egressguard_inprocess(data: list[tuple[str, bytes]]) -> list[str]:
    from egressguard.cidr import parse

    return parse.parse_many(data).addresses.cidr_strings(bare_hosts=True)


def ipaddress_inprocess(data: list[tuple[str, bytes]]) -> list[Any]:
    nets: dict[int, list[Any]] = {4: [], 6: []}
    for _, content in data:
        for raw in content.decode().splitlines():
            line = raw.strip()
            if line:
                n = ipaddress.ip_network(line, strict=False)
                nets[n.version].append(n)
    return [*ipaddress.collapse_addresses(nets[4]), *ipaddress.collapse_addresses(nets[6])]


def as_text(nets: list[Any]) -> list[str]:
    return [str(n.network_address) if n.prefixlen == n.max_prefixlen else str(n) for n in nets]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="runs per measurement (best is kept)")
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = ap.parse_args()
    rep = args.repeat
    slow_rep = max(1, min(rep, 3))
    files = {fam: sorted((COUNTRIES / fam).glob("*.cidr")) for fam in ("ipv4", "ipv6")}
    data = {fam: [(str(p), p.read_bytes()) for p in paths] for fam, paths in files.items()}
    egressguard_inprocess(data["ipv4"][:3])  # warm: NumPy import and first-call setup
    rows: list[dict[str, Any]] = []
    res: dict[str, Any] = {"repeat": rep, "lines": {}}

    def row(name: str, wall: float, cpu: float, note: str = "") -> None:
        rows.append({"name": name, "wall_s": round(wall, 4), "cpu_s": round(cpu, 4), "note": note})

    for fam in ("ipv4", "ipv6"):
        lines = sum(c.count(b"\n") for _, c in data[fam])
        res["lines"][fam] = lines
        w, c, ours = best_of(rep, lambda f=fam: egressguard_inprocess(data[f]))
        row(f"egressguard in-process {fam}", w, c, f"{lines} lines -> {len(ours)} CIDRs")
        res[f"eg_{fam}"] = (w, c)
        w, c, theirs = best_of(slow_rep, lambda f=fam: ipaddress_inprocess(data[f]))
        row(f"ipaddress parse+collapse {fam}", w, c, "str() of the result not counted")
        res[f"ipa_{fam}"] = (w, c)
        if as_text(theirs) != ours:
            raise SystemExit(f"{fam}: egressguard and ipaddress disagree")
    w, c, out = run_process(["iprange", "--optimize", *map(str, files["ipv4"])], rep)
    row("iprange --optimize ipv4 (process)", w, c)
    res["iprange"] = (w, c)
    if out.splitlines() != egressguard_inprocess(data["ipv4"]):
        raise SystemExit("ipv4: egressguard and iprange disagree")
    # An installed package carries compiled bytecode (NumPy's does); this sandbox sets
    # PYTHONDONTWRITEBYTECODE, so compile egressguard once or every run would recompile it.
    compileall.compile_dir(str(REPO / "src/egressguard"), quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "aggregate_ipaddress.py"
        script.write_text(IPADDRESS_SCRIPT)
        for label, paths in (("ipv4", files["ipv4"]), ("ipv4+ipv6", files["ipv4"] + files["ipv6"])):
            argv = [str(p) for p in paths]
            w, c, ours_out = run_process([EGRESSGUARD, "aggregate", *argv], rep)
            row(f"egressguard aggregate {label} (process)", w, c, "start-up included")
            res[f"cli_eg_{label}"] = (w, c)
            w, c, theirs_out = run_process([PYTHON, str(script), *argv], slow_rep)
            row(f"python ipaddress script {label} (process)", w, c, "start-up included")
            res[f"cli_ipa_{label}"] = (w, c)
            if ours_out != theirs_out:
                raise SystemExit(f"{label}: command outputs differ")
    w, c, _ = run_process([PYTHON, "-c", "pass"], rep)
    row("python -c pass (start-up floor)", w, c)
    w, c, _ = run_process([PYTHON, "-c", "import numpy"], rep)
    row("python -c 'import numpy'", w, c)

    def ratio(a: str, b: str, i: int = 0) -> float:
        return float(res[a][i] / res[b][i])

    checks = [
        ("in-process ipv4: ipaddress / egressguard", ratio("ipa_ipv4", "eg_ipv4"), ">=", 15.0),
        ("in-process ipv6: ipaddress / egressguard", ratio("ipa_ipv6", "eg_ipv6"), ">=", 15.0),
        ("in-process ipv4: egressguard / iprange run", ratio("eg_ipv4", "iprange"), "<=", 4.0),
        (
            "command ipv4: ipaddress script / egressguard",
            ratio("cli_ipa_ipv4", "cli_eg_ipv4"),
            ">=",
            10.0,
        ),
        (
            "command ipv4+ipv6: ipaddress script / egressguard",
            ratio("cli_ipa_ipv4+ipv6", "cli_eg_ipv4+ipv6"),
            ">=",
            10.0,
        ),
    ]
    cpu_ratios = {
        "in-process ipv4: ipaddress / egressguard": ratio("ipa_ipv4", "eg_ipv4", 1),
        "in-process ipv6: ipaddress / egressguard": ratio("ipa_ipv6", "eg_ipv6", 1),
        "in-process ipv4: egressguard / iprange run": ratio("eg_ipv4", "iprange", 1),
        "command ipv4: ipaddress script / egressguard": ratio("cli_ipa_ipv4", "cli_eg_ipv4", 1),
        "command ipv4+ipv6: ipaddress script / egressguard": ratio(
            "cli_ipa_ipv4+ipv6", "cli_eg_ipv4+ipv6", 1
        ),
    }
    verdicts = []
    for name, value, op, target in checks:
        ok = value >= target if op == ">=" else value <= target
        verdicts.append(
            {
                "ratio": name,
                "value": round(value, 2),
                "cpu_value": round(cpu_ratios[name], 2),
                "target": f"{op} {target:g}",
                "ok": ok,
            }
        )
    if args.json:
        print(json.dumps({"measurements": rows, "ratios": verdicts}, indent=2))
    else:
        print(f"{'measurement':46s} {'wall s':>8s} {'cpu s':>8s}  note")
        for r in rows:
            print(f"{r['name']:46s} {r['wall_s']:8.4f} {r['cpu_s']:8.4f}  {r['note']}")
        print()
        print(f"{'ratio':50s} {'wall':>7s} {'cpu':>7s}  target")
        for v in verdicts:
            mark = "ok" if v["ok"] else "MISSED"
            print(f"{v['ratio']:50s} {v['value']:7.2f} {v['cpu_value']:7.2f}  {v['target']} {mark}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

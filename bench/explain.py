"""Benchmark: flows per second through the reference policies with a world-size network set.

Run: ``.venv/bin/python bench/explain.py [--json] [--flows N] [--seconds S]``

Setup: the manifests of ``examples/blog`` (two GlobalNetworkPolicies, Log then Deny on the
set, then the order-1000 Allow) with the GlobalNetworkSet's ``nets`` replaced, in memory, by
the whole world IPv4 country set (every ``*.cidr`` of
``shared/data/countries/herrbischoff-2025-09/ipv4``, 172,627 CIDRs). The plan is compiled once;
then random IPv4 destinations (TCP/443, seeded) are evaluated for a pod ``app=web``.

Target (DESIGN §7): >= 50,000 flows/s on one core for the full verdict *with* its trace
(tier, policy, rule, action, network set and CIDR per step). Rows:

* ``evaluate (trace)``: ``Plan.evaluate(endpoint, flow)`` on prebuilt ``Flow`` values: the
  figure the target applies to;
* ``evaluate (no trace)``: ``trace=False``, the verdict only (what a dataplane test needs);
* ``flow from text + evaluate``: ``Flow(dst=...)`` built (address parsed) for every flow;
* ``evaluate + JSON``: the trace rendered as explain's JSON document (every ``why`` in words);
* anchor ``bare lookup``: one ``ProvenanceIndex`` lookup of the destination, the least work a
  flow can cost; ``vs lookup`` shows what the whole evaluation costs on top of it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from egressguard import calico
from egressguard.calico import evaluate as ev
from egressguard.calico.load import Manifests
from egressguard.cidr.lookup import ProvenanceIndex

REPO = Path(__file__).resolve().parent.parent
TARGET_FLOWS_PER_S = 50_000
SHARED = Path(os.environ.get("EGRESSGUARD_SHARED", REPO.parent / "shared"))
COUNTRIES = SHARED / "data" / "countries" / "herrbischoff-2025-09" / "ipv4"


def world_nets() -> list[str]:
    nets: list[str] = []
    for path in sorted(COUNTRIES.glob("*.cidr")):
        for raw in path.read_text(encoding="ascii").splitlines():
            text = raw.strip()
            if text and not text.startswith("#"):
                nets.append(text)
    return nets


def world_manifests(nets: Sequence[str]) -> Manifests:
    blog = calico.load_paths([REPO / "examples" / "blog"])
    if not blog.ok:
        raise SystemExit(f"examples/blog does not load: {blog.problems}")
    resources = [
        dataclasses.replace(r, nets=tuple(nets)) if isinstance(r, calico.GlobalNetworkSet) else r
        for r in blog.resources
    ]
    return Manifests.of(resources)


def _rate(fn: Callable[[Any], Any], items: Sequence[Any], seconds: float) -> float:
    """Items per second of ``fn(item)`` over ``items``, repeated for at least ``seconds``."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for item in items:
            fn(item)
        done += len(items)
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print results as JSON")
    ap.add_argument("--flows", type=int, default=20_000, help="distinct flows per pass")
    ap.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    nets = world_nets()
    manifests = world_manifests(nets)
    t1 = time.perf_counter()
    plan = ev.compile_plan(manifests)
    t2 = time.perf_counter()

    rnd = random.Random(20250119)
    addresses = [
        ".".join(str(b) for b in rnd.getrandbits(32).to_bytes(4, "big")) for _ in range(args.flows)
    ]
    flows = [ev.Flow(dst=a, protocol="TCP", dst_port=443) for a in addresses]
    web = ev.Endpoint.pod({"app": "web"}, "default")

    # correctness first: the traced and the fast path agree, blocked flows are logged denials
    denied = 0
    for flow in flows[:2000]:
        full = plan.evaluate(web, flow)
        fast = plan.evaluate(web, flow, trace=False)
        assert (full.action, full.logged) == (fast.action, fast.logged)
        if full.action is calico.Action.DENY:
            assert full.logged
            assert full.decided_by is not None
            assert full.decided_by.matches
            denied += 1
    deny_share = denied / min(len(flows), 2000)

    index = ProvenanceIndex([("world", nets)])
    evaluate = plan.evaluate
    rows = [
        ("evaluate (trace)", _rate(lambda f: evaluate(web, f), flows, args.seconds)),
        (
            "evaluate (no trace)",
            _rate(lambda f: evaluate(web, f, trace=False), flows, args.seconds),
        ),
        (
            "flow from text + evaluate",
            _rate(
                lambda a: evaluate(web, ev.Flow(dst=a, protocol="TCP", dst_port=443)),
                addresses,
                args.seconds,
            ),
        ),
        ("evaluate + JSON", _rate(lambda f: evaluate(web, f).to_json(), flows, args.seconds)),
    ]
    lookup = _rate(index.lookup, addresses, args.seconds)

    result = {
        "target_flows_per_s": TARGET_FLOWS_PER_S,
        "set_cidrs": len(nets),
        "load_s": round(t1 - t0, 3),
        "compile_s": round(t2 - t1, 3),
        "denied_share": round(deny_share, 3),
        "anchor_lookup_per_s": round(lookup),
        "rows": [
            {
                "case": name,
                "flows_per_s": round(rate),
                "vs_target": round(rate / TARGET_FLOWS_PER_S, 2),
                "vs_lookup": round(rate / lookup, 3),
            }
            for name, rate in rows
        ],
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"examples/blog with a world IPv4 set of {len(nets):,} CIDRs: "
        f"load {result['load_s']} s, compile {result['compile_s']} s, "
        f"{deny_share:.1%} of random destinations denied"
    )
    print(f"target: >= {TARGET_FLOWS_PER_S:,} flows/s (evaluate with trace, one core)")
    print()
    print(f"{'case':<28} {'flows/s':>12} {'vs target':>10} {'vs lookup':>10}")
    for row in result["rows"]:
        print(
            f"{row['case']:<28} {row['flows_per_s']:>12,} {row['vs_target']:>9.2f}x "
            f"{row['vs_lookup']:>9.3f}x"
        )
    print(f"{'anchor: bare lookup':<28} {round(lookup):>12,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: selector matching (the evaluator's hot path) and parsing.

Run: ``.venv/bin/python bench/selector.py [--json] [--seconds S]``

Target: ``explain`` should evaluate >= 50,000 flows/s with several selector checks per flow;
budgeting 5 checks per flow gives >= 250,000 matches/s for the whole selector work. The
anchors measured in the same run:

* ``handwritten``: the best a Python function can do for the same test (``lambda L: ...``
  written by hand), i.e. the ceiling for a compiled matcher;
* ``reference``: the nodes' ``evaluate`` (a tree walk), what compiling saves.

Each row reports matches/s for ``Selector.matches``; ``vs target`` is against 250,000/s.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from egressguard import selector
from egressguard.selector.parser import parse_node

TARGET_MATCHES_PER_S = 250_000  # 50,000 flows/s x 5 selector checks

GNS = {"policy": "egress-traffic-blocking", "egressguard.io/shard": "3"}
POD = {
    "app": "web",
    "tier": "frontend",
    "pod-template-hash": "7d4b9c",
    "projectcalico.org/namespace": "default",
    "projectcalico.org/orchestrator": "k8s",
    "projectcalico.org/serviceaccount": "default",
    "pcns.kubernetes.io/metadata.name": "default",
    "pcns.projectcalico.org/name": "default",
}

Labels = Mapping[str, str]

# (name, selector text, hand-written equivalent, labels that exercise it)
CASES: list[tuple[str, str, Callable[[Labels], bool], Labels]] = [
    (
        "eq (reference scenario)",
        "policy == 'egress-traffic-blocking'",
        lambda L: L.get("policy") == "egress-traffic-blocking",
        GNS,
    ),
    (
        "global() rewrite",
        "(!has(projectcalico.org/namespace)) && (policy == 'egress-traffic-blocking')",
        lambda L: (
            "projectcalico.org/namespace" not in L and L.get("policy") == "egress-traffic-blocking"
        ),
        GNS,
    ),
    (
        "namespace scope, pod",
        "(pcns.kubernetes.io/metadata.name in {'default', 'prod'}) && (app == 'web')",
        lambda L: (
            L.get("pcns.kubernetes.io/metadata.name") in {"default", "prod"}
            and L.get("app") == "web"
        ),
        POD,
    ),
    (
        "mixed, 6 tests",
        "app == 'web' && tier != 'db' && !has(exempt) && (team in {'a', 'b'} || "
        "projectcalico.org/namespace starts with 'def') && pod-template-hash contains '4b'",
        lambda L: (
            L.get("app") == "web"
            and L.get("tier") != "db"
            and "exempt" not in L
            and (
                L.get("team") in {"a", "b"}
                or L.get("projectcalico.org/namespace", "").startswith("def")
            )
            and "4b" in L.get("pod-template-hash", "")
        ),
        POD,
    ),
    ("all()", "all()", lambda L: True, POD),
]


def _rate(fn: Callable[[Labels], bool], labels: Labels, seconds: float) -> float:
    """Calls per second of ``fn(labels)``, timed in batches for at least ``seconds``."""
    batch = 10_000
    calls = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(batch):
            fn(labels)
        calls += batch
        now = time.perf_counter()
        if now >= deadline:
            return calls / (now - start)


def _parse_rate(texts: list[str], seconds: float) -> float:
    calls = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for text in texts:
            selector.Selector(parse_node(text))  # uncached: tokenize, parse, print, compile
        calls += len(texts)
    return calls / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print results as JSON")
    ap.add_argument("--seconds", type=float, default=0.5, help="time per measurement")
    args = ap.parse_args(argv)

    rows = []
    for name, text, handwritten, labels in CASES:
        sel = selector.parse(text)
        assert sel.matches(labels) == handwritten(labels) == sel.root.evaluate(labels), name
        compiled = _rate(sel.matches, labels, args.seconds)
        raw = _rate(sel.matcher, labels, args.seconds)
        hand = _rate(handwritten, labels, args.seconds)
        reference = _rate(sel.root.evaluate, labels, args.seconds)
        rows.append(
            {
                "case": name,
                "matches_per_s": round(compiled),
                "matcher_per_s": round(raw),
                "handwritten_per_s": round(hand),
                "reference_per_s": round(reference),
                "vs_target": round(compiled / TARGET_MATCHES_PER_S, 2),
                "vs_handwritten": round(compiled / hand, 2),
                "vs_reference": round(compiled / reference, 2),
            }
        )
    parse_per_s = _parse_rate([text for _, text, _, _ in CASES], args.seconds)
    cached_per_s = _rate(lambda _: bool(selector.parse(CASES[3][1])), {}, args.seconds)

    result = {
        "target_matches_per_s": TARGET_MATCHES_PER_S,
        "rows": rows,
        "parse_uncached_per_s": round(parse_per_s),
        "parse_cached_per_s": round(cached_per_s),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0

    header = (
        f"{'case':<26}{'matches/s':>12}{'vs target':>11}{'matcher/s':>12}"
        f"{'handwritten/s':>15}{'vs hand':>9}{'reference/s':>13}{'vs ref':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['case']:<26}{row['matches_per_s']:>12,}{row['vs_target']:>10.2f}x"
            f"{row['matcher_per_s']:>12,}{row['handwritten_per_s']:>15,}"
            f"{row['vs_handwritten']:>8.2f}x{row['reference_per_s']:>13,}{row['vs_reference']:>7.2f}x"
        )
    print(f"\ntarget: {TARGET_MATCHES_PER_S:,} matches/s (50,000 flows/s x 5 selector checks)")
    print(f"parse (uncached: tokenize+parse+print+compile): {parse_per_s:,.0f}/s")
    print(f"parse (cached, lru_cache hit):                  {cached_per_s:,.0f}/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

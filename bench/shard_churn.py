"""How many GlobalNetworkSet shards a change rewrites: address-space buckets vs fixed counts.

Data: the world country set (herrbischoff, ../shared/data/countries), IPv4 + IPv6, sharded
with the default limits (8,000 entries / 200,000 bytes per shard). For each kind of change
the script rebuilds the shards and counts the shard names whose content differs (added,
removed or changed), for egressguard's layout (``render.networksets``: buckets on fixed
address-space boundaries) and for the naive layout (consecutive chunks of the sorted list,
named ``-000``, ``-001``, ...). Changes are seeded and repeated; the table shows the median.

    .venv/bin/python bench/shard_churn.py [--json] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

from egressguard.cidr import parse
from egressguard.cidr.sets import AddressSet, CidrSet
from egressguard.render.networksets import ShardLimits, render_network_sets

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def load_world() -> tuple[AddressSet, dict[str, AddressSet]]:
    root = DATA / "countries" / "herrbischoff-2025-09"
    by_country: dict[str, list[tuple[str, bytes]]] = {}
    for fam in ("ipv4", "ipv6"):
        for f in sorted((root / fam).glob("*.cidr")):
            by_country.setdefault(f.stem.upper(), []).append((str(f), f.read_bytes()))
    countries = {c: parse.parse_many(items).addresses for c, items in by_country.items()}
    world = parse.parse_many([i for items in by_country.values() for i in items]).addresses
    return world, countries


def trie_layout(addresses: AddressSet) -> dict[str, tuple[str, ...]]:
    shards, _ = render_network_sets("bench", addresses)
    return {s.name: s.nets for s in shards}


def count_layout(addresses: AddressSet, limits: ShardLimits) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for fam, cidrs in ((4, addresses.v4), (6, addresses.v6)):
        strings = cidrs.cidr_strings()
        chunk: list[str] = []
        size = 0
        index = 0
        for s in strings:
            if len(chunk) >= limits.max_entries or size + len(s) + 5 > limits.max_bytes - 1500:
                out[f"bench-v{fam}-{index:03d}"] = tuple(chunk)
                index += 1
                chunk, size = [], 0
            chunk.append(s)
            size += len(s) + 5
        if chunk:
            out[f"bench-v{fam}-{index:03d}"] = tuple(chunk)
    return out


def rewritten(old: dict[str, tuple[str, ...]], new: dict[str, tuple[str, ...]]) -> int:
    """Shard names whose content differs (written, or deleted)."""
    return sum(1 for name in set(old) | set(new) if old.get(name) != new.get(name))


def rewritten_share(old: dict[str, tuple[str, ...]], new: dict[str, tuple[str, ...]]) -> float:
    """Share of the new build's entries that sit in shards that must be written again."""
    total = sum(len(v) for v in new.values())
    moved = sum(len(v) for name, v in new.items() if old.get(name) != v)
    return moved / total if total else 0.0


def measure(
    base_trie: dict[str, tuple[str, ...]],
    base_count: dict[str, tuple[str, ...]],
    changed: AddressSet,
    limits: ShardLimits,
) -> tuple[int, int, float, float]:
    trie, count = trie_layout(changed), count_layout(changed, limits)
    return (
        rewritten(base_trie, trie),
        rewritten(base_count, count),
        rewritten_share(base_trie, trie),
        rewritten_share(base_count, count),
    )


def random_change(world: AddressSet, share: float, rng: random.Random) -> AddressSet:
    """Remove ``share`` of the CIDRs at random and add as many new /24s (/48s) in gaps."""
    out = []
    for cidrs, fam in ((world.v4, 4), (world.v6, 6)):
        items = cidrs.cidr_strings()
        k = max(1, round(len(items) * share / 2))
        drop = set(rng.sample(range(len(items)), k))
        kept = [c for i, c in enumerate(items) if i not in drop]
        universe = CidrSet(fam, ["0.0.0.0/0" if fam == 4 else "2000::/3"])
        gaps = (universe - cidrs).cidrs()
        added = []
        for gap in rng.sample(gaps, min(k, len(gaps))):
            plen = max(gap.prefixlen, 24 if fam == 4 else 48)
            added.append(f"{gap!s}".split("/")[0] + f"/{plen}")
        out.append(CidrSet(fam, kept + added))
    return AddressSet(out[0], out[1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    started = time.perf_counter()
    world, countries = load_world()
    limits = ShardLimits()
    base_trie = trie_layout(world)
    base_count = count_layout(world, limits)
    total = world.cidr_count
    # one country whose entries are about 1% of the world set: a realistic "block one more
    # country" / "a country's allocations changed" update
    target = 0.01 * total
    country = min(countries, key=lambda c: abs(countries[c].cidr_count - target))
    cases: dict[str, list[tuple[int, int]]] = {}
    rng = random.Random(20250904)
    for label, share in (("1 entry", 0.0), ("0.1% random", 0.001), ("1% random", 0.01)):
        rows = []
        for _ in range(args.repeat):
            if share == 0.0:
                items = world.cidr_strings()
                victim = items[rng.randrange(len(items))]
                changed = world - AddressSet.of(victim)
            else:
                changed = random_change(world, share, rng)
            rows.append(measure(base_trie, base_count, changed, limits))
        cases[label] = rows
    without = world - countries[country]
    cases[f"1% one country ({country})"] = [measure(base_trie, base_count, without, limits)]
    result = {
        "entries": total,
        "shards_trie": len(base_trie),
        "shards_count": len(base_count),
        "cases": {
            label: {
                "trie_median": statistics.median(r[0] for r in rows),
                "count_median": statistics.median(r[1] for r in rows),
                "trie_entries_rewritten": round(statistics.median(r[2] for r in rows), 3),
                "count_entries_rewritten": round(statistics.median(r[3] for r in rows), 3),
                "runs": len(rows),
            }
            for label, rows in cases.items()
        },
        "seconds": round(time.perf_counter() - started, 2),
    }
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return 0
    print(
        f"world set: {total:,} CIDRs; {result['shards_trie']} shards (address-space buckets), "
        f"{result['shards_count']} shards (fixed counts)"
    )
    print(f"{'':<28} {'shards rewritten':>18}   {'entries rewritten':>18}")
    print(f"{'change':<28} {'buckets':>8} {'counts':>9}   {'buckets':>8} {'counts':>9}")
    for label, row in result["cases"].items():
        print(
            f"{label:<28} {row['trie_median']:>8} {row['count_median']:>9}   "
            f"{row['trie_entries_rewritten']:>8.0%} {row['count_entries_rewritten']:>9.0%}"
        )
    print(f"({result['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""CompileCache: which path answers each compile, and that each path gives the fresh result.

The property test (tests/property/test_nft_cache.py) covers random sequences; these cases pin
the decisions: reuse of an equal set, incremental update of a small change, full parse of a
big change, of overlapping entries, of ranges and of rejected entries, structure reuse, and
forgetting what a compile no longer uses.
"""

from __future__ import annotations

from typing import Any

import pytest

from egressguard.calico.model import (
    API_V1,
    Action,
    EntityRule,
    FrozenMap,
    GlobalNetworkPolicy,
    GlobalNetworkSet,
    Metadata,
    PolicyType,
    Rule,
)
from egressguard.cidr.addresses import format_address
from egressguard.nft import compile as nft_compile
from egressguard.nft import ir, render

# 200 non-adjacent /28s: well above CompileCache.MIN_ENTRIES, pairwise disjoint.
BASE = [f"{format_address(4, (203 << 24) | (i << 6))}/28" for i in range(200)]


def gns(nets: list[str], name: str = "blocked", label: str = "block") -> GlobalNetworkSet:
    return GlobalNetworkSet(
        metadata=Metadata(name, labels=FrozenMap({"policy": label})),
        api_version=API_V1,
        nets=tuple(nets),
    )


def policy(extra: bool = False) -> GlobalNetworkPolicy:
    dest = EntityRule(selector="policy == 'block'")
    rules = [Rule(Action.LOG, destination=dest), Rule(Action.DENY, destination=dest)]
    if extra:
        rules.append(Rule(Action.ALLOW))
    return GlobalNetworkPolicy(
        metadata=Metadata("block"),
        api_version=API_V1,
        order=0,
        types=(PolicyType.EGRESS,),
        egress=tuple(rules),
    )


def check(cache: nft_compile.CompileCache, items: list[Any]) -> nft_compile.Compiled:
    """Compile with the cache and assert the result is the fresh compile's."""
    cached = nft_compile.compile_table(items, cache=cache)
    fresh = nft_compile.compile_table(items)
    assert render.script(cached.table) == render.script(fresh.table)
    assert cached.notes == fresh.notes
    return cached


def counts(cache: nft_compile.CompileCache) -> dict[str, int]:
    return dict(cache.counts)


def test_an_equal_set_is_reused_and_the_structure_too() -> None:
    cache = nft_compile.CompileCache()
    check(cache, [gns(BASE), policy()])
    before = counts(cache)
    check(cache, [gns(list(BASE)), policy()])  # equal by value, new objects
    after = counts(cache)
    assert after["reused"] == before["reused"] + 1
    assert after["same structure"] == before["same structure"] + 1


def test_a_small_change_is_incremental_and_exact() -> None:
    cache = nft_compile.CompileCache()
    check(cache, [gns(BASE), policy()])
    changed = [*BASE[3:], "198.51.100.0/24", "198.51.101.7"]  # 3 removed, 2 added
    compiled = check(cache, [gns(changed), policy()])
    assert cache.counts["incremental"] == 1
    (elements,) = [s.elements for s in compiled.table.sets]
    assert elements.contains_address((198 << 24) | (51 << 16) | (101 << 8) | 7)
    assert not elements.contains_address(203 << 24)  # the first removed /28
    # And the next small change builds on the moved index.
    check(cache, [gns([*changed[5:], "198.51.102.0/25"]), policy()])
    assert cache.counts["incremental"] == 2


@pytest.mark.parametrize(
    ("extra", "overlaps"),
    [
        (["203.0.0.0/20"], True),  # covers kept entries
        (["203.0.0.72/29"], True),  # lies inside a kept entry (203.0.0.64/28)
        (["203.0.0.80/28"], False),  # adjacent to a kept entry: merges, overlaps nothing
    ],
)
def test_additions_next_to_kept_entries_stay_exact(extra: list[str], overlaps: bool) -> None:
    cache = nft_compile.CompileCache()
    check(cache, [gns(BASE), policy()])
    check(cache, [gns(BASE[1:] + extra), policy()])
    assert cache.counts["incremental"] == 1
    # After an overlap there is no index: the next change is parsed in full. Adjacent entries
    # overlap nothing, so removing one of them later is still incremental (and exact).
    check(cache, [gns(BASE[2:] + extra), policy()])
    assert cache.counts["incremental"] == (1 if overlaps else 2)
    assert cache.counts["parsed"] == (2 if overlaps else 1)


@pytest.mark.parametrize(
    "added",
    [
        ["198.51.100.1-198.51.100.9"],  # a range
        ["not-an-address"],  # rejected: its note must come where a fresh parse puts it
        ["198.51.100.0/24\n198.51.101.0/24"],  # two lines in one entry
    ],
)
def test_entries_that_are_not_one_cidr_are_parsed_in_full(added: list[str]) -> None:
    cache = nft_compile.CompileCache()
    check(cache, [gns(BASE), policy()])
    check(cache, [gns(BASE[1:] + added), policy()])
    assert cache.counts["incremental"] == 0
    assert cache.counts["parsed"] == 2


def test_a_big_change_is_parsed_in_full() -> None:
    cache = nft_compile.CompileCache()
    check(cache, [gns(BASE), policy()])
    check(cache, [gns(BASE[100:]), policy()])
    assert cache.counts["incremental"] == 0
    assert cache.counts["parsed"] == 2


def test_a_set_with_overlapping_entries_gets_no_index() -> None:
    cache = nft_compile.CompileCache()
    check(cache, [gns([*BASE, "203.0.0.0/24"]), policy()])
    check(cache, [gns(BASE), policy()])
    assert cache.counts["incremental"] == 0


def test_structure_changes_compile_again() -> None:
    cache = nft_compile.CompileCache()
    check(cache, [gns(BASE), policy()])
    check(cache, [gns(BASE), policy(extra=True)])  # a rule more
    check(cache, [gns(BASE, label="other"), policy(extra=True)])  # the selector reaches nothing
    assert cache.counts["compiled"] == 3
    assert cache.counts["same structure"] == 0
    # The family of a set appears: a new selector set, so a new structure.
    check(cache, [gns([*BASE, "2001:db8::/48"]), policy()])
    assert cache.counts["compiled"] == 4


def test_sets_no_longer_compiled_are_forgotten() -> None:
    cache = nft_compile.CompileCache()
    check(cache, [gns(BASE), gns(BASE[:50], name="other"), policy()])
    assert len(cache) == 2
    check(cache, [gns(BASE), policy()])
    assert len(cache) == 1


def test_small_sets_are_not_cached() -> None:
    cache = nft_compile.CompileCache()
    check(cache, [gns(BASE[:5]), policy()])
    assert len(cache) == 0


def test_table_memo_is_not_part_of_the_value() -> None:
    a = nft_compile.compile_table([gns(BASE), policy()]).table
    b = nft_compile.compile_table([gns(BASE), policy()]).table
    render.table_marker(a)
    assert a.memo
    assert not b.memo
    assert a == b
    assert render.table_marker(a) == render.marker(
        render.structure_digest(b), render.content_digest(b.sets)
    )
    assert isinstance(a, ir.Table)

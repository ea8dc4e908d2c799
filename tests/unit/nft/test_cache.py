"""CompileCache: which path answers each compile, and that each path gives the fresh result.

The property test (tests/property/test_nft_cache.py) covers random sequences; these cases pin
the decisions: reuse of an equal set (and of its notes), a changed set parsed again, structure
reuse, and forgetting what a compile no longer uses.
"""

from __future__ import annotations

from typing import Any

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

# 200 /28s: well above CompileCache.MIN_ENTRIES.
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


def test_a_changed_set_is_parsed_again_and_an_unchanged_one_is_not() -> None:
    cache = nft_compile.CompileCache()
    check(cache, [gns(BASE), gns(BASE[:60], name="other", label="other"), policy()])
    changed = [*BASE[3:], "198.51.100.0/24", "198.51.101.7"]
    compiled = check(
        cache, [gns(changed), gns(list(BASE[:60]), name="other", label="other"), policy()]
    )
    assert cache.counts["parsed"] == 3  # two at first, then only the changed one
    assert cache.counts["reused"] == 1
    (elements,) = [s.elements for s in compiled.table.sets]
    assert elements.contains_address((198 << 24) | (51 << 16) | (101 << 8) | 7)
    assert not elements.contains_address(203 << 24)  # the first removed /28


def test_rejected_entries_are_noted_again_when_the_set_is_reused() -> None:
    cache = nft_compile.CompileCache()
    first = check(cache, [gns([*BASE, "not-an-address"]), policy()])
    again = check(cache, [gns([*BASE, "not-an-address"]), policy()])
    assert cache.counts["reused"] == 1
    assert first.notes == again.notes
    assert any("not-an-address" in note for note in again.notes)


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

"""The compile cache changes nothing but the time: for random sequences of manifests, compiling
each version with one ``CompileCache`` gives exactly what a fresh compile gives.

The versions are built to exercise every path of the cache: network sets that stay, change a
little or a lot, hold overlapping or duplicate entries, ranges (``A-B``), rejected entries,
IPv6, sets that come and go; and policy or label changes that change the table's structure.
The result is compared as the rendered script (which holds every set element and the state
marker) plus the notes.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
from egressguard.nft import render

# Entries are drawn from a small pool so that versions share most of them, as a feed update
# does; the pool is large enough (> CompileCache.MIN_ENTRIES) for the cache to engage.
V4_POOL = [f"{format_address(4, (198 << 24) | (51 << 16) | (i << 5))}/28" for i in range(160)]
NESTED = ["198.51.0.0/24", "198.51.3.0/25", "198.51.1.16/28", "198.51.2.0/23", "198.51.0.8/29"]
ODD = ["198.51.20.1-198.51.20.9", "not-an-address", "198.51.30.7/24", "", "2001:db8::/48"]
V6_POOL = [f"2001:db8:{2 * i:x}::/48" for i in range(40)]


def entries() -> st.SearchStrategy[list[str]]:
    return st.lists(
        st.one_of(
            st.sampled_from(V4_POOL),
            st.sampled_from(V4_POOL),
            st.sampled_from(V4_POOL),
            st.sampled_from(NESTED),
            st.sampled_from(ODD),
            st.sampled_from(V6_POOL),
        ),
        min_size=0,
        max_size=120,
    )


def base_set() -> st.SearchStrategy[list[str]]:
    # Mostly plain, disjoint CIDRs (the incremental path needs those).
    return st.lists(st.sampled_from(V4_POOL + V6_POOL), min_size=30, max_size=150, unique=True)


@st.composite
def versions(draw: Any) -> list[tuple[list[str], list[str], str, bool]]:
    """Each version: (nets of set a, nets of set b, label of b, policy variant)."""
    nets_a = draw(base_set())
    nets_b = draw(entries())
    out = []
    for _ in range(draw(st.integers(2, 6))):
        step = draw(st.sampled_from(["small", "small", "small", "big", "same", "odd"]))
        if step == "small":
            drop = draw(st.sets(st.integers(0, max(len(nets_a) - 1, 0)), max_size=4))
            nets_a = [n for i, n in enumerate(nets_a) if i not in drop]
            nets_a += draw(st.lists(st.sampled_from(V4_POOL + V6_POOL), max_size=4))
        elif step == "big":
            nets_a = draw(base_set())
        elif step == "odd":
            nets_a = nets_a + draw(st.lists(st.sampled_from(NESTED + ODD), min_size=1, max_size=3))
        if draw(st.booleans()):
            nets_b = draw(entries())
        label = draw(st.sampled_from(["block", "other"]))
        out.append((list(nets_a), list(nets_b), label, draw(st.booleans())))
    return out


def resources(nets_a: list[str], nets_b: list[str], label: str, variant: bool) -> list[Any]:
    dest = EntityRule(selector="policy == 'block'")
    rules = [Rule(Action.LOG, destination=dest), Rule(Action.DENY, destination=dest)]
    if variant:
        rules.insert(0, Rule(Action.ALLOW, destination=EntityRule(nets=("192.0.2.0/24",))))
    sets: list[Any] = [
        GlobalNetworkSet(
            metadata=Metadata("a", labels=FrozenMap({"policy": "block"})),
            api_version=API_V1,
            nets=tuple(nets_a),
        )
    ]
    if nets_b:
        sets.append(
            GlobalNetworkSet(
                metadata=Metadata("b", labels=FrozenMap({"policy": label})),
                api_version=API_V1,
                nets=tuple(nets_b),
            )
        )
    policy = GlobalNetworkPolicy(
        metadata=Metadata("block"),
        api_version=API_V1,
        order=0,
        types=(PolicyType.EGRESS,),
        egress=tuple(rules),
    )
    return [*sets, policy]


def outcome(compiled: nft_compile.Compiled) -> tuple[str, tuple[str, ...], Any]:
    return render.script(compiled.table), compiled.notes, compiled.endpoints


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(versions())
def test_compiling_with_a_cache_gives_what_a_fresh_compile_gives(
    steps: list[tuple[list[str], list[str], str, bool]],
) -> None:
    cache = nft_compile.CompileCache()
    for nets_a, nets_b, label, variant in steps:
        items = resources(nets_a, nets_b, label, variant)
        cached = nft_compile.compile_table(items, cache=cache)
        fresh = nft_compile.compile_table(items)
        assert outcome(cached) == outcome(fresh)
        assert cached.table == fresh.table

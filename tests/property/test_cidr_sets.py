"""Set laws of CidrSet against a brute-force model: Python sets of ints in small windows.

Each example picks a window of at most 512 addresses (an IPv4 /23, or IPv6 windows at the bottom
of the space, across the 64-bit boundary where the hi/lo halves carry, and at the very top where
a range ends at 2**128 - 1), builds sets from random CIDRs and ranges inside it, and compares
every operation with the same operation on the model.
"""

from __future__ import annotations

import ipaddress
import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from egressguard.cidr import CidrSet, parse
from egressguard.cidr.addresses import MAX_PREFIX

WINDOWS = [
    (4, 0xC0000200, 512),  # 192.0.2.0/23
    (4, 0, 256),  # the bottom of IPv4
    (4, 2**32 - 256, 256),  # the top of IPv4
    (6, 0, 256),
    (6, 2**64 - 256, 512),  # crosses the hi/lo boundary
    (6, 2**128 - 512, 512),  # ends at the last address
]

Window = tuple[int, int, int]
Model = set[int]


@st.composite
def ranges_in(draw: st.DrawFn, window: Window) -> list[tuple[int, int]]:
    _family, base, size = window
    out = []
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.booleans()):
            # an aligned CIDR inside the window
            bits = draw(st.integers(0, size.bit_length() - 1))
            block = 1 << bits
            start = base + draw(st.integers(0, size // block - 1)) * block
            out.append((start, start + block - 1))
        else:
            a = draw(st.integers(base, base + size - 1))
            b = draw(st.integers(a, min(base + size - 1, a + draw(st.integers(0, 64)))))
            out.append((a, b))
    return out


def model_of(ranges: list[tuple[int, int]]) -> Model:
    return {x for a, b in ranges for x in range(a, b + 1)}


def expand(s: CidrSet) -> Model:
    return {x for a, b in s.ranges() for x in range(a, b + 1)}


@st.composite
def case(draw: st.DrawFn, n: int) -> tuple[Window, list[list[tuple[int, int]]]]:
    window = draw(st.sampled_from(WINDOWS))
    return window, [draw(ranges_in(window)) for _ in range(n)]


def universe(window: Window) -> CidrSet:
    family, base, size = window
    return CidrSet.from_ranges(family, [(base, base + size - 1)])


@settings(max_examples=300)
@given(case(2))
def test_algebra_matches_the_model(c: tuple[Window, list[list[tuple[int, int]]]]) -> None:
    (family, _, _), (ra, rb) = c
    a, b = CidrSet.from_ranges(family, ra), CidrSet.from_ranges(family, rb)
    ma, mb = model_of(ra), model_of(rb)
    assert expand(a) == ma
    assert expand(a | b) == ma | mb
    assert expand(a & b) == ma & mb
    assert expand(a - b) == ma - mb
    assert expand(a ^ b) == ma ^ mb
    assert (a | b) == (b | a)
    assert (a & b) == (b & a)
    assert (a ^ b) == (b ^ a)
    assert a.address_count == len(ma)
    assert a.issubset(b) == (ma <= mb)
    assert (a < b) == (ma < mb)
    assert a.isdisjoint(b) == ma.isdisjoint(mb)
    assert (a == b) == (ma == mb)


@settings(max_examples=200)
@given(case(3))
def test_associativity_and_distributivity(c: tuple[Window, list[list[tuple[int, int]]]]) -> None:
    (family, _, _), rs = c
    a, b, d = (CidrSet.from_ranges(family, r) for r in rs)
    assert (a | b) | d == a | (b | d)
    assert (a & b) & d == a & (b & d)
    assert a & (b | d) == (a & b) | (a & d)
    assert a | (b & d) == (a | b) & (a | d)
    assert a - (b | d) == (a - b) - d


@settings(max_examples=200)
@given(case(2))
def test_de_morgan_within_the_window(c: tuple[Window, list[list[tuple[int, int]]]]) -> None:
    window, (ra, rb) = c
    u = universe(window)
    a, b = CidrSet.from_ranges(window[0], ra), CidrSet.from_ranges(window[0], rb)
    assert a.complement(u) == u - a
    assert u - (a | b) == (u - a) & (u - b)
    assert u - (a & b) == (u - a) | (u - b)
    assert (u - a).complement(u) == a
    assert expand(a.complement(u)) == expand(u) - model_of(ra)


@settings(max_examples=300)
@given(case(1))
def test_canonical_form_and_minimal_cidrs(c: tuple[Window, list[list[tuple[int, int]]]]) -> None:
    (family, _, _), (ra,) = c
    s = CidrSet.from_ranges(family, ra)
    width = MAX_PREFIX[family]
    rng = s.ranges()
    # canonical: sorted, disjoint and not even adjacent
    for (a1, b1), (a2, _) in itertools.pairwise(rng):
        assert a1 <= b1 < a2 - 1
    cidrs = s.cidrs()
    # round trip: the CIDRs cover exactly the set, in order, without overlap
    covered: list[int] = []
    for cidr in cidrs:
        assert cidr.network & ((1 << (width - cidr.prefixlen)) - 1) == 0  # aligned
        covered.extend(range(cidr.first, cidr.last + 1))
    assert covered == sorted(model_of(ra))
    # minimality: no two CIDRs are the two halves of one supernet
    for c1, c2 in itertools.pairwise(cidrs):
        sibling = c1.prefixlen == c2.prefixlen and c1.last + 1 == c2.first
        assert not (
            sibling and c1.prefixlen > 0 and (c1.network >> (width - c1.prefixlen)) % 2 == 0
        )
    # and it is what the standard library produces from the same addresses
    net = ipaddress.IPv4Network if family == 4 else ipaddress.IPv6Network
    reference = ipaddress.collapse_addresses(net((x, width)) for x in model_of(ra))
    assert [str(n) for n in reference] == s.cidr_strings()
    # idempotent aggregation: rebuilding from its own output changes nothing
    assert CidrSet(family, cidrs) == s
    assert CidrSet.from_ranges(family, rng) == s
    assert CidrSet(family, s.cidr_strings()) == s
    assert s.cidr_count == len(cidrs)


@settings(max_examples=200)
@given(case(1))
def test_text_round_trip_through_the_parser(c: tuple[Window, list[list[tuple[int, int]]]]) -> None:
    (family, _, _), (ra,) = c
    s = CidrSet.from_ranges(family, ra)
    for bare in (False, True):
        result = parse.parse(s.to_text(bare_hosts=bare), strict=True)
        assert result.addresses[family] == s
        assert not result.notes
        assert result.entries == s.cidr_count


@settings(max_examples=200)
@given(case(1), st.data())
def test_containment_agrees(
    c: tuple[Window, list[list[tuple[int, int]]]], data: st.DataObject
) -> None:
    (family, base, size), (ra,) = c
    s = CidrSet.from_ranges(family, ra)
    m = model_of(ra)
    top = (1 << MAX_PREFIX[family]) - 1
    probes = [x for x in (base - 1, base, base + size - 1, base + size) if 0 <= x <= top]
    probes += data.draw(st.lists(st.integers(base, base + size - 1), max_size=20))
    for x in probes:
        assert s.contains_address(x) == (x in m)
        assert (x in s) == (x in m)
    if family == 4:
        arr = np.array(probes, dtype=np.int64)
    else:
        arr = np.array([(x >> 64, x & (2**64 - 1)) for x in probes], dtype=np.uint64)
    assert s.contains_addresses(arr).tolist() == [x in m for x in probes]
    # a CIDR is in the set exactly when all its addresses are
    for cidr in CidrSet.from_ranges(family, data.draw(ranges_in((family, base, size)))).cidrs():
        assert (cidr in s) == all(x in m for x in range(cidr.first, cidr.last + 1))

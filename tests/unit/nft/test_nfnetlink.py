"""The nfnetlink encoding without a kernel: the NumPy element lists are byte for byte the
reference encoding (one element at a time, as ``nft --debug=netlink`` shows it), chunks stay
below the attribute limit and never split a range; the range diff agrees with set algebra.

The kernel itself accepts these batches: tests/integration/test_nft_dataplane.py applies them.
"""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from egressguard.adapters import nfnetlink
from egressguard.cidr.sets import CidrSet
from egressguard.nft import diff

TOP4 = 0xFFFFFFFF


@st.composite
def v4_ranges(draw: st.DrawFn) -> list[tuple[int, int]]:
    """Disjoint, sorted IPv4 ranges; sometimes one that ends at 255.255.255.255."""
    points = sorted(draw(st.sets(st.integers(0, TOP4), min_size=0, max_size=400)))
    ranges = [(points[i], points[i + 1]) for i in range(0, len(points) - 1, 2)]
    if draw(st.booleans()):
        start = (ranges[-1][1] + 2) if ranges else 0
        if start <= TOP4:
            ranges.append((start, TOP4))
    return ranges


def elements_of(chunk: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each NFTA_LIST_ELEM in one element-list payload."""
    out = []
    offset = 0
    while offset < len(chunk):
        (length,) = struct.unpack_from("=H", chunk, offset)
        out.append((offset, length))
        offset += (length + 3) & ~3
    return out


@settings(max_examples=200, deadline=None)
@given(v4_ranges())
def test_ipv4_chunks_are_the_reference_encoding(ranges: list[tuple[int, int]]) -> None:
    chunks = nfnetlink.element_chunks(ranges, 4)
    reference = nfnetlink._interval_elements(ranges, 32)
    assert b"".join(chunks) == b"".join(reference)
    assert all(len(c) <= nfnetlink._CHUNK_BYTES for c in chunks)
    # No chunk ends between the start and the end element of a range: every chunk holds
    # whole ranges (40 bytes: start and end element; an open range is one 28-byte element
    # with the "open" user data).
    boundaries = set()
    at = 0
    for _first, last in ranges:
        at += 28 if last == TOP4 else 40
        boundaries.add(at)
    at = 0
    for chunk in chunks:
        at += len(chunk)
        assert at in boundaries


def test_ipv6_chunks_are_the_reference_encoding_and_bounded() -> None:
    base = 0x20010DB8 << 96
    ranges = [(base + (i << 64), base + (i << 64) + 255) for i in range(3000)]
    ranges.append(((1 << 128) - 16, (1 << 128) - 1))  # open at the top
    chunks = nfnetlink.element_chunks(ranges, 6)
    assert b"".join(chunks) == b"".join(nfnetlink._interval_elements(ranges, 128))
    assert len(chunks) > 1
    assert all(len(c) <= nfnetlink._CHUNK_BYTES for c in chunks)
    # Each IPv6 chunk starts with a start element (no flags attribute): ranges stay whole.
    for chunk in chunks:
        _offset, length = elements_of(chunk)[0]
        assert length in (28, 40)  # a start element, or an open one with its user data


def test_an_empty_change_encodes_nothing() -> None:
    assert nfnetlink.element_chunks([], 4) == []
    assert nfnetlink.element_chunks([], 6) == []


@st.composite
def two_sets(draw: st.DrawFn) -> tuple[CidrSet, CidrSet]:
    base = draw(v4_ranges())
    keep = [r for r in base if draw(st.booleans())] if base else []
    more = draw(v4_ranges())
    return CidrSet.from_ranges(4, base), CidrSet.from_ranges(4, keep + more)


@settings(max_examples=200, deadline=None)
@given(two_sets())
def test_range_changes_are_the_set_difference_of_ranges(pair: tuple[CidrSet, CidrSet]) -> None:
    old, new = pair
    removed, added = diff.range_changes(old, new)
    old_ranges, new_ranges = set(old.ranges()), set(new.ranges())
    assert removed == tuple(sorted(old_ranges - new_ranges))
    assert added == tuple(sorted(new_ranges - old_ranges))

"""CidrSet and AddressSet: construction, canonical form, algebra, containment, value semantics.

The laws (commutativity, De Morgan, minimality...) are checked against a brute-force model in
``tests/property/test_cidr_sets.py``; these are the concrete cases and the API contract.
"""

from __future__ import annotations

import ipaddress
import pickle

import numpy as np
import pytest

from egressguard.cidr import AddressSet, Cidr, CidrError, CidrSet, union_all
from egressguard.cidr.addresses import parse_cidr


def v4(*items: str) -> CidrSet:
    return CidrSet(4, items)


def v6(*items: str) -> CidrSet:
    return CidrSet(6, items)


def ip(text: str) -> int:
    return int(ipaddress.ip_address(text))


# -- construction and canonical form ------------------------------------------------------------


def test_overlapping_adjacent_and_duplicate_entries_merge() -> None:
    s = v4("10.0.0.0/25", "10.0.0.128/25", "10.0.0.0/24", "10.0.0.5", "10.0.1.0/24", "10.0.0.0/25")
    assert s.cidr_strings() == ["10.0.0.0/23"]
    assert s.ranges() == [(ip("10.0.0.0"), ip("10.0.1.255"))]
    assert s.range_count == 1
    assert s.address_count == 512


def test_equal_content_means_equal_sets_and_hashes() -> None:
    a = v4("192.0.2.0/25", "192.0.2.128/25")
    b = v4("192.0.2.0/24")
    c = CidrSet.from_ranges(
        4, [(ip("192.0.2.200"), ip("192.0.2.255")), (ip("192.0.2.0"), ip("192.0.2.199"))]
    )
    assert a == b == c
    assert len({a, b, c}) == 1
    assert v4("192.0.2.0/24") != v6("2001:db8::/32")
    assert CidrSet.empty(4) != CidrSet.empty(6)  # families differ


def test_from_ranges_accepts_unaligned_ranges_and_splits_minimally() -> None:
    # the kind of range DB-IP and IP2Location publish
    s = CidrSet.from_ranges(4, [(ip("1.0.0.0"), ip("1.0.0.255")), (ip("1.0.1.0"), ip("1.0.3.254"))])
    first, last = ipaddress.ip_address("1.0.0.0"), ipaddress.ip_address("1.0.3.254")
    assert s.cidr_strings() == [str(n) for n in ipaddress.summarize_address_range(first, last)]


@pytest.mark.parametrize(
    ("family", "first", "last", "reason"),
    [
        (4, 10, 9, "reversed range"),
        (4, -1, 5, "outside the family"),
        (4, 0, 2**32, "outside the family"),
        (6, 0, 2**128, "outside the family"),
        (6, 2**128 - 1, 0, "reversed range"),
    ],
)
def test_from_ranges_rejects_bad_ranges(family: int, first: int, last: int, reason: str) -> None:
    with pytest.raises(CidrError, match=reason):
        CidrSet.from_ranges(family, [(first, last)])


def test_family_must_be_4_or_6() -> None:
    with pytest.raises(CidrError, match="family"):
        CidrSet(5)
    with pytest.raises(CidrError, match="not an IPv4 network"):
        CidrSet(4, ["2001:db8::/32"])


def test_universe_and_edges_of_the_address_space() -> None:
    assert CidrSet.universe(4).cidr_strings() == ["0.0.0.0/0"]
    assert CidrSet.universe(6).cidr_strings() == ["::/0"]
    assert CidrSet.universe(6).address_count == 2**128
    top4 = CidrSet.from_ranges(4, [(2**32 - 1, 2**32 - 1)])
    assert top4.cidr_strings() == ["255.255.255.255/32"]
    top6 = CidrSet.from_ranges(6, [(2**128 - 2, 2**128 - 1)])
    assert top6.cidr_strings() == ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"]
    assert (CidrSet.universe(6) - top6).ranges() == [(0, 2**128 - 3)]
    # the full space minus its first and last address: 2 * 127 CIDRs
    inner = CidrSet.from_ranges(6, [(1, 2**128 - 2)])
    assert inner.cidr_count == 254
    assert inner.cidrs()[0] == Cidr(6, 1, 128)
    assert inner.cidrs()[-1] == Cidr(6, 2**128 - 2, 128)


def test_arrays_are_read_only() -> None:
    s = v4("10.0.0.0/8")
    first, last = s.range_arrays()
    with pytest.raises(ValueError, match="read-only"):
        first[0] = 1
    with pytest.raises(ValueError, match="read-only"):
        last[0] = 1


def test_from_range_arrays_round_trips_range_arrays() -> None:
    for s in (v4("10.0.0.0/8", "192.0.2.1"), v6("2001:db8::/32", "::1", "ff00::/8")):
        first, last = s.range_arrays()
        assert CidrSet.from_range_arrays(s.family, first, last) == s


def test_pickle_round_trip() -> None:
    s = AddressSet.of("10.0.0.0/8", "2001:db8::/32")
    assert pickle.loads(pickle.dumps(s)) == s  # noqa: S301 - our own bytes


def test_repr_is_short_and_readable() -> None:
    assert repr(v4("192.0.2.0/24")) == "CidrSet(4, ['192.0.2.0/24'])"
    many = CidrSet(4, [f"10.0.{i}.0/24" for i in range(0, 40, 2)])
    assert repr(many).endswith("... 12 more)")


# -- algebra ------------------------------------------------------------------------------------


def test_allowlist_subtraction_punches_holes() -> None:
    level1 = v4("10.0.0.0/8", "192.0.2.0/24")
    allow = v4("10.1.0.0/16", "192.0.2.128/25")
    got = level1 - allow
    expected = [
        str(n)
        for n in ipaddress.collapse_addresses(
            [
                *ipaddress.IPv4Network("10.0.0.0/8").address_exclude(
                    ipaddress.IPv4Network("10.1.0.0/16")
                ),
                ipaddress.IPv4Network("192.0.2.0/25"),
            ]
        )
    ]
    assert got.cidr_strings() == expected
    assert got.isdisjoint(allow)
    assert (got | (level1 & allow)) == level1


def test_operators_and_methods_agree() -> None:
    a = v6("2001:db8::/32", "2001:db9::/48")
    b = v6("2001:db8:8000::/33", "ff00::/8")
    assert a | b == a.union(b)
    assert a & b == a.intersection(b) == v6("2001:db8:8000::/33")
    assert a - b == a.difference(b) == v6("2001:db8::/33", "2001:db9::/48")
    assert a ^ b == a.symmetric_difference(b) == v6("2001:db8::/33", "2001:db9::/48", "ff00::/8")
    assert a.union(b, v6("::1")) == a | b | v6("::1")
    assert a.difference(b, v6("2001:db9::/48")) == v6("2001:db8::/33")
    assert a.intersection(b, v6("::1")) == CidrSet.empty(6)


def test_complement_within_a_universe() -> None:
    doc = v4("192.0.2.0/24")
    assert doc.complement(v4("192.0.2.0/23")) == v4("192.0.3.0/24")
    assert doc.complement().address_count == 2**32 - 256
    assert doc.complement().complement() == doc


def test_families_do_not_mix() -> None:
    with pytest.raises(CidrError, match="cannot combine"):
        _ = v4("10.0.0.0/8") | v6("::/0")
    with pytest.raises(TypeError, match="expected a CidrSet"):
        v4("10.0.0.0/8").union(AddressSet())  # type: ignore[arg-type]


def test_union_all_is_one_sort() -> None:
    parts = [v4(f"10.0.{i}.0/24") for i in range(256)]
    assert union_all(parts) == v4("10.0.0.0/16")
    with pytest.raises(CidrError, match="one family"):
        union_all([v4("10.0.0.0/8"), v6("::/0")])
    with pytest.raises(CidrError, match="at least one"):
        union_all([])


# -- containment --------------------------------------------------------------------------------


def test_containment_of_addresses_cidrs_and_sets() -> None:
    s = v4("192.0.2.0/24", "198.51.100.0/25")
    assert ip("192.0.2.255") in s
    assert ip("192.0.3.0") not in s
    assert "198.51.100.127" in s
    assert "198.51.100.128" not in s
    assert "198.51.100.0/25" in s
    assert "198.51.100.0/24" not in s  # half of it is outside
    assert parse_cidr("192.0.2.128/25") in s
    assert "2001:db8::1" not in s  # other family: simply not in it
    assert s.containing_range(ip("192.0.2.9")) == (ip("192.0.2.0"), ip("192.0.2.255"))
    assert s.containing_range(ip("10.0.0.1")) is None
    assert v4("192.0.2.0/25") <= s
    assert v4("192.0.2.0/25") < s
    same = v4("198.51.100.0/25", "192.0.2.0/24")
    assert not s < same
    assert s <= same
    assert s >= v4("198.51.100.0/26")
    assert s > v4("198.51.100.0/26")
    with pytest.raises(TypeError):
        _ = True in s
    with pytest.raises(TypeError):
        _ = 1.5 in s
    with pytest.raises(CidrError):
        _ = "not-an-address" in s


def test_vectorised_containment_matches_scalar() -> None:
    s4 = v4("192.0.2.0/24", "198.51.100.0/25", "255.255.255.255")
    pts = np.array(
        [
            ip("192.0.2.0") - 1,
            ip("192.0.2.0"),
            ip("198.51.100.127"),
            ip("198.51.100.128"),
            2**32 - 1,
            0,
        ],
        dtype=np.int64,
    )
    assert s4.contains_addresses(pts).tolist() == [s4.contains_address(int(p)) for p in pts]
    s6 = v6("2001:db8::/64", "ffff:ffff:ffff:ffff::/64")
    vals = [ip("2001:db8::1"), ip("2001:db8:0:1::"), 2**128 - 1, 0, ip("2001:db8::")]
    halves = np.array([(v >> 64, v & (2**64 - 1)) for v in vals], dtype=np.uint64)
    assert s6.contains_addresses(halves).tolist() == [True, False, True, False, True]
    assert CidrSet.empty(4).contains_addresses(pts).tolist() == [False] * len(pts)


# -- AddressSet ---------------------------------------------------------------------------------


def test_address_set_applies_each_operation_per_family() -> None:
    a = AddressSet.of("10.0.0.0/8", "2001:db8::/32")
    b = AddressSet.of("10.1.0.0/16", "2001:db8::/48", "192.0.2.1")
    holes = [
        ipaddress.ip_network("10.0.0.0/8").address_exclude(ipaddress.ip_network("10.1.0.0/16")),
        ipaddress.ip_network("2001:db8::/32").address_exclude(
            ipaddress.ip_network("2001:db8::/48")
        ),
    ]
    assert (a - b).cidr_strings() == [str(n) for h in holes for n in sorted(h)]
    assert (a & b) == AddressSet.of("10.1.0.0/16", "2001:db8::/48")
    assert (a | b).v4 == a.v4 | b.v4
    assert (a ^ b).v6 == a.v6 ^ b.v6
    assert a.union(b) == a | b
    assert a.intersection(b) == a & b
    assert a.difference(b) == a - b
    assert AddressSet.of("10.1.2.3") <= a
    assert a >= AddressSet.of("2001:db8::1")
    assert not a.isdisjoint(b)
    assert a[4] is a.v4
    assert a[6] is a.v6
    assert "2001:db8::1" in a
    assert "10.2.3.4" in a
    assert "192.0.2.1" not in a
    assert a.contains_address("10.255.255.255")
    assert not a.contains_address("11.0.0.0")
    assert a.cidr_strings() == ["10.0.0.0/8", "2001:db8::/32"]
    assert a.cidrs() == [parse_cidr("10.0.0.0/8"), parse_cidr("2001:db8::/32")]
    assert a.cidr_count == 2
    assert a.to_text() == "10.0.0.0/8\n2001:db8::/32\n"
    assert bool(a)
    assert not AddressSet()
    with pytest.raises(TypeError, match="pick the family"):
        _ = 5 in a
    with pytest.raises(AttributeError, match="immutable"):
        a.v4 = CidrSet.empty(4)
    with pytest.raises(CidrError):
        AddressSet(v4=CidrSet.empty(6))


def test_bare_hosts_text_form() -> None:
    s = AddressSet.of("192.0.2.7", "192.0.2.8/31", "2001:db8::1", "2001:db8::/127")
    assert s.cidr_strings() == ["192.0.2.7/32", "192.0.2.8/31", "2001:db8::/127"]
    assert s.cidr_strings(bare_hosts=True) == ["192.0.2.7", "192.0.2.8/31", "2001:db8::/127"]
    assert AddressSet.of("192.0.2.7", "::1").to_text(bare_hosts=True) == "192.0.2.7\n::1\n"

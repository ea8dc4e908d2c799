"""ProvenanceIndex: which tags hold an address and through which CIDR, checked against direct
containment on small cases and on the real world country set."""

from __future__ import annotations

import ipaddress
import random
from pathlib import Path

import numpy as np
import pytest

from egressguard.cidr import AddressSet, Cidr, CidrError, CidrSet, Match, ProvenanceIndex, parse
from egressguard.cidr.addresses import parse_address, parse_cidr


def ip(text: str) -> int:
    return int(ipaddress.ip_address(text))


def found(idx: ProvenanceIndex, address: str) -> list[tuple[object, str]]:
    return [(m.tag, str(m.cidr)) for m in idx.lookup(address)]


def test_overlapping_tags_all_match_in_tag_order() -> None:
    idx = ProvenanceIndex(
        [
            ("spamhaus", AddressSet.of("192.0.2.0/24", "2001:db8::/32")),
            ("DE", AddressSet.of("192.0.2.128/25", "198.51.100.0/24")),
            ("tor", AddressSet.of("192.0.2.200", "2001:db8::7")),
        ]
    )
    assert found(idx, "192.0.2.200") == [
        ("spamhaus", "192.0.2.0/24"),
        ("DE", "192.0.2.128/25"),
        ("tor", "192.0.2.200/32"),
    ]
    assert found(idx, "192.0.2.201") == [("spamhaus", "192.0.2.0/24"), ("DE", "192.0.2.128/25")]
    assert found(idx, "192.0.2.127") == [("spamhaus", "192.0.2.0/24")]
    assert found(idx, "198.51.100.255") == [("DE", "198.51.100.0/24")]
    assert found(idx, "198.51.101.0") == []
    assert found(idx, "0.0.0.0") == []
    assert found(idx, "255.255.255.255") == []
    assert found(idx, "2001:db8::7") == [("spamhaus", "2001:db8::/32"), ("tor", "2001:db8::7/128")]
    assert found(idx, "2001:db9::") == []
    assert idx.tags == ("spamhaus", "DE", "tor")
    assert idx.tags_of("192.0.2.200") == ("spamhaus", "DE", "tor")
    m = idx.lookup("192.0.2.200")[0]
    assert isinstance(m, Match)
    assert m.cidr == parse_cidr("192.0.2.0/24")


def test_a_set_reports_its_minimal_cidr_not_its_range() -> None:
    # the canonical range 192.0.2.5-192.0.2.17 splits into four CIDRs; each address names its own
    s = CidrSet.from_ranges(4, [(ip("192.0.2.5"), ip("192.0.2.17"))])
    idx = ProvenanceIndex([("r", s)])
    assert found(idx, "192.0.2.5") == [("r", "192.0.2.5/32")]
    assert found(idx, "192.0.2.7") == [("r", "192.0.2.6/31")]
    assert found(idx, "192.0.2.15") == [("r", "192.0.2.8/29")]
    assert found(idx, "192.0.2.17") == [("r", "192.0.2.16/31")]
    assert found(idx, "192.0.2.18") == []


def test_entry_lists_report_their_own_most_specific_entry() -> None:
    # a GlobalNetworkSet's nets as written: overlapping, not aggregated
    nets = [
        "10.0.0.0/8",
        "10.1.0.0/16",
        "10.1.2.0/24",
        "10.0.0.0/25",
        "10.0.0.128/25",
        "2001:db8::/32",
    ]
    idx = ProvenanceIndex([("gns/blocklist", nets), ("gns/other", [Cidr(4, ip("10.1.2.3"), 8)])])
    assert found(idx, "10.1.2.3") == [("gns/blocklist", "10.1.2.0/24"), ("gns/other", "10.0.0.0/8")]
    assert found(idx, "10.1.3.3") == [("gns/blocklist", "10.1.0.0/16"), ("gns/other", "10.0.0.0/8")]
    assert found(idx, "10.0.0.200") == [
        ("gns/blocklist", "10.0.0.128/25"),
        ("gns/other", "10.0.0.0/8"),
    ]
    assert found(idx, "10.200.0.1") == [
        ("gns/blocklist", "10.0.0.0/8"),
        ("gns/other", "10.0.0.0/8"),
    ]
    assert found(idx, "2001:db8::1") == [("gns/blocklist", "2001:db8::/32")]


def test_integer_and_array_lookups() -> None:
    idx = ProvenanceIndex([("a", AddressSet.of("192.0.2.0/24", "::/0"))])
    assert idx.lookup_v4(ip("192.0.2.1")) == idx.lookup("192.0.2.1")
    assert idx.lookup_v6(2**128 - 1) == idx.lookup("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
    assert idx.lookup_int(4, ip("192.0.3.0")) == ()
    assert idx.lookup_int(6, 0)[0].cidr == parse_cidr("::/0")
    arr = np.array([ip("192.0.2.1"), ip("192.0.3.1"), 0], dtype=np.int64)
    assert idx.lookup_v4_array(arr) == [idx.lookup_v4(int(v)) for v in arr]
    assert idx.lookup_many(["192.0.2.1", "::1"]) == [idx.lookup("192.0.2.1"), idx.lookup("::1")]
    empty = ProvenanceIndex([])
    assert empty.lookup("192.0.2.1") == ()
    assert empty.lookup("::1") == ()
    assert empty.lookup_v4_array(arr) == [(), (), ()]


@pytest.mark.parametrize(
    "bad", ["192.0.2", "192.0.2.256", "010.0.0.1", "host.example", "", "1.2.3.4.5", " 1.2.3.4"]
)
def test_text_lookups_validate_like_the_parser(bad: str) -> None:
    idx = ProvenanceIndex([("a", AddressSet.of("0.0.0.0/0"))])
    with pytest.raises(CidrError):
        idx.lookup(bad)


def test_a_tag_appears_once() -> None:
    with pytest.raises(CidrError, match="only once"):
        ProvenanceIndex([("a", AddressSet()), ("a", AddressSet())])


def test_ipv6_segment_bounds_reach_the_top_of_the_space() -> None:
    idx = ProvenanceIndex([("top", CidrSet.from_ranges(6, [(2**128 - 4, 2**128 - 1)]))])
    assert found(idx, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffc") == [
        ("top", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffc/126")
    ]
    assert found(idx, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffb") == []


def test_world_country_set_agrees_with_direct_containment(data_dir: Path) -> None:
    base = data_dir / "countries/herrbischoff-2025-09"
    sets: dict[str, AddressSet] = {}
    for fam in ("ipv4", "ipv6"):
        for path in sorted((base / fam).glob("*.cidr")):
            got = parse.parse(path.read_bytes(), source=path.name, strict=True).addresses
            code = path.stem.upper()
            sets[code] = sets.get(code, AddressSet()) | got
    idx = ProvenanceIndex(sorted(sets.items()))
    rng = random.Random(7)
    probes: list[str] = []
    # every range edge of a few countries, plus random addresses of both families
    for code in ("DE", "US", "AQ", "NL"):
        for first, last in sets[code].v4.ranges()[:200]:
            for v in (first - 1, first, last, last + 1):
                if 0 <= v < 2**32:
                    probes.append(str(ipaddress.IPv4Address(v)))
    probes += [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(3000)]
    probes += [str(ipaddress.IPv6Address((0x2 << 124) | rng.getrandbits(124))) for _ in range(1000)]
    minimal = {code: set(s.cidrs()) for code, s in sets.items()}
    for address in probes:
        family, value = parse_address(address)
        matches = idx.lookup(address)
        expected = sorted(code for code, s in sets.items() if s[family].contains_address(value))
        assert sorted(str(m.tag) for m in matches) == expected, address
        for m in matches:
            # the CIDR holds the address and belongs to the country's minimal list
            assert m.cidr.contains(family, value)
            assert m.cidr in minimal[str(m.tag)]

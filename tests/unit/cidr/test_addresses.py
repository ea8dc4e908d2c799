"""Single addresses and CIDRs: the grammar decisions, canonical formatting, the Cidr value.

Reference values come from RFC 4291 section 2.2 (text forms), RFC 5952 section 4 (canonical
IPv6 text) and the behaviour of Python's ``ipaddress`` where the two agree.
"""

from __future__ import annotations

import ipaddress

import pytest

from egressguard.cidr.addresses import (
    Cidr,
    CidrError,
    format_address,
    format_cidr,
    parse_address,
    parse_cidr,
)
from egressguard.errors import InputError

# text, family, value
VALID_ADDRESSES = [
    ("0.0.0.0", 4, 0),
    ("255.255.255.255", 4, 2**32 - 1),
    ("192.0.2.1", 4, 0xC0000201),
    ("1.2.3.0", 4, 0x01020300),
    ("::", 6, 0),
    ("::1", 6, 1),
    ("1::", 6, 1 << 112),
    ("2001:db8::1", 6, 0x20010DB8000000000000000000000001),
    ("2001:DB8::1", 6, 0x20010DB8000000000000000000000001),  # upper case hex is fine
    ("2001:0db8:0000:0000:0000:0000:0000:0001", 6, 0x20010DB8000000000000000000000001),
    ("1:2:3:4:5:6:7:8", 6, 0x00010002000300040005000600070008),
    ("1:2:3:4:5:6:7::", 6, 0x00010002000300040005000600070000),  # '::' for one group
    ("::2:3:4:5:6:7:8", 6, 0x00000002000300040005000600070008),
    ("::ffff:192.0.2.1", 6, 0xFFFFC0000201),  # IPv4-mapped, RFC 4291 2.5.5.2
    ("::192.0.2.1", 6, 0xC0000201),
    ("64:ff9b::192.0.2.33", 6, 0x0064FF9B0000000000000000C0000221),  # RFC 6052 example
    ("1:2:3:4:5:6:1.2.3.4", 6, 0x00010002000300040005000601020304),
    ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 6, 2**128 - 1),
]

INVALID_ADDRESSES = [
    ("", "not an IP address"),
    ("1.2.3", "not an IP address"),  # inet_aton short form
    ("1.2.3.4.5", "not an IP address"),
    ("1.2.3.256", "out of range"),
    ("256.0.0.0", "out of range"),
    ("010.0.0.1", "leading zero"),  # octal to inet_aton
    ("1.02.3.4", "leading zero"),
    ("0x7f.0.0.1", "not an IP address"),
    (" 1.2.3.4", "not an IP address"),
    ("1.2.3.4 ", "not an IP address"),
    ("١.2.3.4", "not an IP address"),  # a non-ASCII digit
    ("1::2::3", "more than once"),
    ("1:2:3:4:5:6:7:8:9", "8 groups"),
    ("1:2:3:4:5:6:7", "8 groups"),
    ("1:2:3:4::5:6:7:8", "too many groups"),
    ("12345::", "bad IPv6 group"),
    ("g::1", "bad IPv6 group"),
    (":1::", "bad IPv6 group"),
    ("1:::2", "bad IPv6 group"),
    ("fe80::1%eth0", "zone index"),
    ("::ffff:1.2.3", "bad IPv4 tail"),
    ("::ffff:1.2.3.256", "out of range"),
    ("1.2.3.4::", "bad IPv4 tail"),
    ("example.com", "not an IP address"),
]


@pytest.mark.parametrize(("text", "family", "value"), VALID_ADDRESSES)
def test_parse_address_valid(text: str, family: int, value: int) -> None:
    assert parse_address(text) == (family, value)
    assert int(ipaddress.ip_address(text)) == value  # the stdlib agrees on every valid form


@pytest.mark.parametrize(("text", "reason"), INVALID_ADDRESSES)
def test_parse_address_invalid(text: str, reason: str) -> None:
    with pytest.raises(CidrError, match=reason):
        parse_address(text)


def test_cidr_error_is_input_error_and_value_error() -> None:
    with pytest.raises(InputError):
        parse_address("nope")
    with pytest.raises(ValueError, match="not an IP address"):
        parse_address("nope")


def test_leading_zero_error_explains_octal() -> None:
    with pytest.raises(CidrError) as info:
        parse_address("010.0.0.1")
    assert info.value.hint is not None
    assert "octal" in info.value.hint


@pytest.mark.parametrize(
    ("text", "family", "network", "prefixlen"),
    [
        ("192.0.2.0/24", 4, 0xC0000200, 24),
        ("192.0.2.77/24", 4, 0xC0000200, 24),  # host bits cleared
        ("0.0.0.0/0", 4, 0, 0),
        ("255.1.2.3/0", 4, 0, 0),
        ("192.0.2.7/32", 4, 0xC0000207, 32),
        ("192.0.2.7", 4, 0xC0000207, 32),
        ("192.0.2.0/024", 4, 0xC0000200, 24),  # decimal prefix, leading zero harmless
        ("10.1.2.3/255.0.0.0", 4, 0x0A000000, 8),  # netmask form (iprange accepts it)
        ("10.1.2.3/0.0.0.0", 4, 0, 0),
        ("10.1.2.3/255.255.255.255", 4, 0x0A010203, 32),
        ("2001:db8::/32", 6, 0x20010DB8 << 96, 32),
        ("2001:db8::1/32", 6, 0x20010DB8 << 96, 32),
        ("::/0", 6, 0, 0),
        ("::1/128", 6, 1, 128),
        ("2001:db8::1", 6, 0x20010DB8000000000000000000000001, 128),
    ],
)
def test_parse_cidr(text: str, family: int, network: int, prefixlen: int) -> None:
    assert parse_cidr(text) == Cidr(family, network, prefixlen)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("192.0.2.0/33", "out of range"),
        ("2001:db8::/129", "out of range"),
        ("192.0.2.0/", "invalid prefix"),
        ("192.0.2.0/-1", "invalid prefix"),
        ("192.0.2.0/2a", "invalid prefix"),
        ("192.0.2.0/255.0.255.0", "invalid netmask"),  # not contiguous
        ("2001:db8::/ffff::", "invalid prefix"),  # no netmask form for IPv6
        ("192.0.2.0/24/1", "invalid prefix"),
    ],
)
def test_parse_cidr_invalid(text: str, reason: str) -> None:
    with pytest.raises(CidrError, match=reason):
        parse_cidr(text)


def test_parse_cidr_strict_rejects_host_bits_with_a_hint() -> None:
    with pytest.raises(CidrError, match="host bits") as info:
        parse_cidr("192.0.2.77/24", strict=True)
    assert info.value.hint == "the network is 192.0.2.0/24"
    assert parse_cidr("192.0.2.0/24", strict=True).prefixlen == 24


# RFC 5952 section 4 examples and rules
@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "::"),
        (1, "::1"),
        (0x20010DB8000000000000000000000001, "2001:db8::1"),
        (0x20010DB8000000000000000000010001, "2001:db8::1:1"),
        (0x20010DB8000000010000000000000001, "2001:db8:0:1::1"),  # 4.2.3: the longest run
        (0x20010DB8000000000001000000000001, "2001:db8::1:0:0:1"),  # 4.2.3: first on a tie
        (0x20010DB8000000010001000100010001, "2001:db8:0:1:1:1:1:1"),  # 4.2.2: one 0 stays
        (0x20010DB8AAAABBBBCCCCDDDDEEEEFFFF, "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff"),
        (0xFFFFC0000201, "::ffff:c000:201"),  # mapped addresses print in hex (documented)
        (1 << 112, "1::"),
    ],
)
def test_format_ipv6_rfc5952(value: int, text: str) -> None:
    assert format_address(6, value) == text
    assert str(ipaddress.IPv6Address(value)) == text


def test_format_ipv4_and_cidr() -> None:
    assert format_address(4, 0xC0000201) == "192.0.2.1"
    assert format_cidr(4, 0xC0000200, 24) == "192.0.2.0/24"
    assert format_cidr(4, 0xC0000201, 32) == "192.0.2.1/32"
    assert format_cidr(4, 0xC0000201, 32, bare_host=True) == "192.0.2.1"
    assert format_cidr(6, 1, 128, bare_host=True) == "::1"
    assert format_cidr(6, 0, 0, bare_host=True) == "::/0"


def test_cidr_value() -> None:
    c = parse_cidr("192.0.2.0/30")
    assert (c.first, c.last, c.num_addresses) == (0xC0000200, 0xC0000203, 4)
    assert str(c) == "192.0.2.0/30"
    assert repr(c) == "Cidr('192.0.2.0/30')"
    assert c.contains(4, 0xC0000203)
    assert not c.contains(4, 0xC0000204)
    assert not c.contains(6, 0xC0000200)  # same int, other family
    whole = parse_cidr("::/0")
    assert whole.last == 2**128 - 1
    assert whole.num_addresses == 2**128
    # tuples order by family, network, prefix: the order cidrs() returns
    assert sorted([parse_cidr("::/0"), parse_cidr("10.0.0.0/8"), parse_cidr("1.0.0.0/8")]) == [
        parse_cidr("1.0.0.0/8"),
        parse_cidr("10.0.0.0/8"),
        parse_cidr("::/0"),
    ]

"""The list parser: edge cases of the line grammar, located issues, notes, strict mode, and
real feed files. Each case runs through the bulk parser (NumPy fast paths plus the reference
grammar); ``tests/property/test_cidr_parse.py`` checks the two paths agree on arbitrary input."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from egressguard.cidr import parse
from egressguard.cidr.addresses import CidrError
from egressguard.cidr.sets import AddressSet


def strings(text: str | bytes) -> list[str]:
    return parse.parse(text).addresses.cidr_strings()


# -- accepted forms -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.0/24\n", ["192.0.2.0/24"]),
        ("192.0.2.0/24", ["192.0.2.0/24"]),  # no final newline
        ("192.0.2.0/24\r\n198.51.100.0/24\r\n", ["192.0.2.0/24", "198.51.100.0/24"]),  # CRLF
        ("  192.0.2.0/24\t \n", ["192.0.2.0/24"]),  # surrounding blanks
        ("192.0.2.0/24 ; SBL123\n", ["192.0.2.0/24"]),  # Spamhaus-style inline comment
        ("192.0.2.0/24;SBL123\n", ["192.0.2.0/24"]),
        ("192.0.2.0/24 # note\n", ["192.0.2.0/24"]),
        ("192.0.2.0/24#note\n", ["192.0.2.0/24"]),
        ("# header\n; other header\n\n   \n192.0.2.1\n", ["192.0.2.1/32"]),
        ("\ufeff192.0.2.1\n", ["192.0.2.1/32"]),  # UTF-8 byte order mark
        ("0.0.0.0/0\n", ["0.0.0.0/0"]),  # accepted; refusing it is the build's guard rail
        ("192.0.2.7/32\n", ["192.0.2.7/32"]),
        ("2001:db8::1/128\n", ["2001:db8::1/128"]),
        ("::/0\n", ["::/0"]),
        ("192.0.2.0/255.255.255.0\n", ["192.0.2.0/24"]),  # netmask form
        # a range crossing CIDR boundaries splits into the minimal CIDRs
        (
            "192.0.2.5-192.0.2.17\n",
            ["192.0.2.5/32", "192.0.2.6/31", "192.0.2.8/29", "192.0.2.16/31"],
        ),
        (
            "192.0.2.5 - 192.0.2.17\n",
            ["192.0.2.5/32", "192.0.2.6/31", "192.0.2.8/29", "192.0.2.16/31"],
        ),
        ("0.0.0.0-255.255.255.255\n", ["0.0.0.0/0"]),
        ("192.0.2.9-192.0.2.9\n", ["192.0.2.9/32"]),
        # CIDR range: first address of A to the last of B (iprange semantics)
        ("192.0.2.0/30 - 192.0.2.8/30\n", ["192.0.2.0/29", "192.0.2.8/30"]),
        ("2001:db8::-2001:db8::ff\n", ["2001:db8::/120"]),
        ("2001:db8::1 - 2001:db8::2\n", ["2001:db8::1/128", "2001:db8::2/128"]),
        # adjacency and overlap merge across lines and families sort v4 first
        (
            "2001:db8::/33\n192.0.2.128/25\n2001:db8:8000::/33\n192.0.2.0/25\n192.0.2.7\n",
            ["192.0.2.0/24", "2001:db8::/32"],
        ),
    ],
)
def test_accepted(text: str, expected: list[str]) -> None:
    result = parse.parse(text)
    assert result.addresses.cidr_strings() == expected
    assert result.issues == ()


def test_host_bits_are_cleared_with_a_located_note() -> None:
    result = parse.parse("# hdr\n192.0.2.77/24\n2001:db8::1/32\n", source="feed.txt")
    assert result.addresses.cidr_strings() == ["192.0.2.0/24", "2001:db8::/32"]
    assert result.issues == ()
    assert [(n.source, n.line, n.text) for n in result.notes] == [
        ("feed.txt", 2, "192.0.2.77/24"),
        ("feed.txt", 3, "2001:db8::1/32"),
    ]
    assert "read as 192.0.2.0/24" in result.notes[0].reason
    assert "read as 2001:db8::/32" in result.notes[1].reason


def test_ipv4_mapped_ipv6_stays_ipv6_with_a_note() -> None:
    result = parse.parse("::ffff:192.0.2.1\n")
    assert result.v4.cidr_strings() == []
    assert result.v6.cidr_strings() == ["::ffff:c000:201/128"]
    assert len(result.notes) == 1
    assert "IPv4-mapped" in result.notes[0].reason
    assert "write 192.0.2.1)" in result.notes[0].reason
    whole = parse.parse("::ffff:0:0/96\n").notes[0].reason
    assert "write 0.0.0.0-255.255.255.255)" in whole


# -- rejected lines -----------------------------------------------------------------------------

REJECTED = [
    ("1.2.3.256", "out of range"),
    ("1.2.3.4/33", "out of range"),
    ("2001:db8::/129", "out of range"),
    ("010.0.0.1", "leading zero"),
    ("1.2.3", "not an IP address"),
    ("example.com", "hostnames are not resolved"),
    ("ExitNode FE39F07EBE7870DCE124AB30DF3ABD0700A43F75", "unexpected text|not an IP"),
    ("192.0.2.1 198.51.100.1", "unexpected text"),
    ("192.0.2.17-192.0.2.5", "reversed range"),
    ("192.0.2.1-2001:db8::1", "different address families"),
    ("192.0.2.1-192.0.2.2-192.0.2.3", "more than one '-'"),
    ("192.0.2.1-", "empty range end"),
    ("fe80::1%eth0", "zone index"),
    ("1::2::3", "more than once"),
    ('{"cidr":"1.10.16.0/20","sblid":"SBL256894"}', "not an IP address"),
]


@pytest.mark.parametrize(("line", "reason"), REJECTED)
def test_rejected_lines_are_located_issues(line: str, reason: str) -> None:
    result = parse.parse(f"# header\n192.0.2.0/24\n{line}\n198.51.100.0/24\n", source="f")
    assert result.addresses.cidr_strings() == ["192.0.2.0/24", "198.51.100.0/24"]
    assert len(result.issues) == 1
    issue = result.issues[0]
    assert (issue.source, issue.line, issue.text) == ("f", 3, line)
    assert re.search(reason, issue.reason), issue.reason
    assert str(issue).startswith("f:3: ")
    assert result.entries == 2


def test_strict_mode_raises_at_the_first_bad_line() -> None:
    text = "192.0.2.0/24\nbad one\n10.0.0.1\n1.2.3.999\n"
    with pytest.raises(CidrError, match=r"^src:2: ") as info:
        parse.parse(text, source="src", strict=True)
    issue = info.value.issue
    assert isinstance(issue, parse.ParseIssue)
    assert (issue.line, issue.text) == (2, "bad one")
    # lenient mode collects both
    lenient = parse.parse(text, source="src")
    assert [i.line for i in lenient.issues] == [2, 4]


def test_strict_mode_accepts_host_bits_as_notes() -> None:
    result = parse.parse("192.0.2.1/24\n", strict=True)
    assert result.addresses.cidr_strings() == ["192.0.2.0/24"]
    assert len(result.notes) == 1


def test_issue_text_is_cut_and_decoded_safely() -> None:
    result = parse.parse(b"\xff\xfe garbage\n" + b"x" * 500 + b"\n")
    assert [i.line for i in result.issues] == [1, 2]
    assert "\ufffd" in result.issues[0].text
    assert len(result.issues[1].text) <= 203


def test_issue_converts_to_problem() -> None:
    issue = parse.parse("nope\n", source="a.txt").issues[0]
    problem = issue.to_problem()
    assert (problem.file, problem.line) == ("a.txt", 1)
    assert str(problem).startswith("a.txt:1: ")


def test_counts() -> None:
    result = parse.parse("# c\n\n192.0.2.1\nbad\n2001:db8::1\n")
    assert (result.lines, result.entries, len(result.issues)) == (5, 2, 1)
    assert not result.ok


def test_empty_inputs() -> None:
    for data in ("", b"", "\n\n", "# only a comment\n"):
        result = parse.parse(data)
        assert result.addresses == AddressSet()
        assert result.issues == ()
    assert parse.parse_many([]).addresses == AddressSet()


# -- many inputs --------------------------------------------------------------------------------


def test_parse_many_locates_lines_per_source() -> None:
    result = parse.parse_many(
        [
            ("a", "192.0.2.0/25\nbad-a\n"),
            ("empty", ""),
            ("b", b"2001:db8::/32\r\n\r\nbad-b"),  # no final newline
            ("c", "192.0.2.128/25\n"),
        ]
    )
    assert result.addresses.cidr_strings() == ["192.0.2.0/24", "2001:db8::/32"]
    assert [(i.source, i.line, i.text) for i in result.issues] == [
        ("a", 2, "bad-a"),
        ("b", 3, "bad-b"),
    ]
    assert result.sources == ("a", "empty", "b", "c")
    assert result.lines == 2 + 0 + 3 + 1


# -- the fast paths on many lines -----------------------------------------------------------------


def test_many_ipv6_lines_take_the_vectorised_path_and_agree_with_ipaddress() -> None:
    nets = [ipaddress.IPv6Network(f"2001:db8:{i:x}::/48") for i in range(0, 4000, 3)]
    nets += [ipaddress.IPv6Network(f"2001:db8:ffff:{i:x}::{i:x}/128") for i in range(300)]
    text = "\n".join(n.compressed.upper() if i % 2 else n.exploded for i, n in enumerate(nets))
    result = parse.parse(text)
    expected = [str(n) for n in ipaddress.collapse_addresses(nets)]
    assert result.v6.cidr_strings() == expected
    assert result.issues == ()


def test_many_ipv4_lines_with_a_bad_one_in_the_middle() -> None:
    lines = [f"10.{i // 256}.{i % 256}.0/24" for i in range(3000)]
    lines[1234] = "10.4.210.0/24x"
    result = parse.parse("\n".join(lines))
    assert [(i.line, i.text) for i in result.issues] == [(1235, "10.4.210.0/24x")]
    expected = ipaddress.collapse_addresses(
        ipaddress.IPv4Network(x) for k, x in enumerate(lines) if k != 1234
    )
    assert result.v4.cidr_strings() == [str(n) for n in expected]


# -- real files -----------------------------------------------------------------------------------


def test_spamhaus_text_format_with_inline_comments(data_dir: Path) -> None:
    path = data_dir / "feeds/spamhaus/drop.txt.textformat-2025-03-02"
    result = parse.parse(path.read_bytes(), source=path.name)
    assert result.issues == ()  # '; Expires: Mon, 20Mar 2025' is a comment, however malformed
    cidrs = {
        line.split(";")[0].strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith(";")
    }
    assert result.entries == len(cidrs)
    expected = ipaddress.collapse_addresses(ipaddress.IPv4Network(c) for c in cidrs)
    assert result.v4.cidr_strings() == [str(n) for n in expected]


def test_tor_exit_list_is_not_an_address_list(data_dir: Path) -> None:
    # the record format needs its own parser (feeds); as a plain list every record line is bad
    result = parse.parse((data_dir / "feeds/tor/exit-addresses").read_bytes())
    assert result.entries == 0
    assert len(result.issues) == result.lines


def test_empty_real_feed(data_dir: Path) -> None:
    # feodo.ipset of the 2022 snapshot holds only its comment header
    result = parse.parse((data_dir / "feeds/firehol-2022/feodo.ipset").read_bytes())
    assert (result.entries, result.issues, bool(result.addresses)) == (0, (), False)


def test_firehol_level1_keeps_the_private_ranges_it_lists(data_dir: Path) -> None:
    result = parse.parse((data_dir / "feeds/firehol-2022/firehol_level1.netset").read_bytes())
    assert result.issues == ()
    for private in ("0.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/3"):
        assert private in result.v4


def test_line_numbers_stay_exact_across_the_slices_of_a_large_input() -> None:
    # the fast paths work in slices of lines (32768 for IPv4, 8192 for IPv6); notes and issues
    # found in later slices must still name their own line
    v4 = [f"10.{i >> 8 & 255}.{i & 255}.0/24" for i in range(70000)]
    v6 = [f"2001:db8:{i:x}::/48" for i in range(20000)]
    lines = v4 + v6
    lines[40000] = "10.1.2.3/16"  # host bits, second IPv4 slice
    lines[69999] = "10.999.0.0/24"  # bad, third IPv4 slice
    lines[70000 + 17000] = "2001:db8:1::1/48"  # host bits, third IPv6 slice
    lines[70000 + 19999] = "2001:db8::g/48"  # bad, last IPv6 slice
    result = parse.parse("\n".join(lines), source="big")
    assert [(i.line, i.text) for i in result.issues] == [
        (70000, "10.999.0.0/24"),
        (90000, "2001:db8::g/48"),
    ]
    assert [(n.line, n.text) for n in result.notes] == [
        (40001, "10.1.2.3/16"),
        (87001, "2001:db8:1::1/48"),
    ]
    assert result.entries == 90000 - 2

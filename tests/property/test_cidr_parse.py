"""The bulk parser's NumPy fast paths agree with the reference line grammar on arbitrary input,
and text forms round-trip with Python's ``ipaddress``.

The line generator produces valid IPv4/IPv6 addresses and CIDRs in many spellings, then mutates
some of them (a character inserted, deleted or replaced from an alphabet of digits, hex letters,
separators, blanks and comment marks), so the fast paths see near-misses of every shape they must
refuse. Enough lines are generated for both vectorised paths to run.
"""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from egressguard.cidr import CidrError, CidrSet, parse, parse_line
from egressguard.cidr.addresses import format_address, parse_address

ALPHABET = "0123456789abcdefABCDEF.:/-#; \t\rx%"


@st.composite
def ipv4_text(draw: st.DrawFn) -> str:
    octets = [draw(st.integers(0, 255)) for _ in range(4)]
    text = ".".join(map(str, octets))
    if draw(st.booleans()):
        text += f"/{draw(st.integers(0, 32))}"
    return text


@st.composite
def ipv6_text(draw: st.DrawFn) -> str:
    groups = [
        draw(st.sampled_from([0, 0, 0, 1, 0xFFFF, 0xDB8]))
        if draw(st.booleans())
        else draw(st.integers(0, 0xFFFF))
        for _ in range(8)
    ]
    value = 0
    for g in groups:
        value = (value << 16) | g
    addr = ipaddress.IPv6Address(value)
    style = draw(st.integers(0, 3))
    text = (
        addr.compressed,
        addr.exploded,
        addr.compressed.upper(),
        ":".join(f"{g:x}" for g in groups),
    )[style]
    if draw(st.booleans()):
        text += f"/{draw(st.integers(0, 128))}"
    return text


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    text = draw(base)
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(text)))
        op = draw(st.integers(0, 2))
        ch = draw(st.sampled_from(ALPHABET))
        if op == 0:
            text = text[:at] + ch + text[at:]
        elif op == 1 and text:
            text = text[:at] + text[at + 1 :]
        else:
            text = text[:at] + ch + text[at + 1 :]
    return text


@st.composite
def ipv4_spelled(draw: st.DrawFn) -> str:
    """Dotted quads spelled the ways real and broken lists spell them: leading zeros, extra
    digits, doubled or wrong separators, odd prefixes."""
    parts = []
    for i in range(4):
        n = draw(st.integers(0, 300))
        parts.append(draw(st.sampled_from([str(n), str(n), "0" + str(n), str(n) + "0", ""])))
        if i < 3:
            parts.append(draw(st.sampled_from([".", ".", ".", "..", "/", ":", ". "])))
    prefix = draw(
        st.sampled_from(
            [
                "",
                "",
                "/8",
                "/24",
                "/32",
                "/33",
                "/024",
                "/",
                "/3a",
                "/ 8",
                "/08",
                "//8",
                "/8.",
                "/255.255.0.0",
            ]
        )
    )
    return "".join(parts) + prefix


@st.composite
def ipv6_spelled(draw: st.DrawFn) -> str:
    """Colon-hex addresses with wrong separators, long groups, odd prefixes and gaps that
    resemble '::/' without being it."""
    n = draw(st.integers(1, 9))
    out = []
    for i in range(n):
        out.append(draw(st.sampled_from(["0", "1", "db8", "ffff", "12345", "g", "00000", "FfFf"])))
        if i < n - 1:
            out.append(
                draw(
                    st.sampled_from(
                        [":", ":", ":", "::", ":::", " :", ":/", "::x", ":: ", ".", "-"]
                    )
                )
            )
    lead = draw(st.sampled_from(["", "", "::", ":", ":::"]))
    tail = draw(
        st.sampled_from(
            [
                "",
                "",
                "::",
                ":",
                "::/64",
                ":/64",
                ":: /64",
                "::%64",
                "::x64",
                "/64",
                "/0128",
                "/129",
                "/1a",
                "/",
                "/ 64",
            ]
        )
    )
    return lead + "".join(out) + tail


LINE = st.one_of(
    ipv4_spelled(),
    ipv6_spelled(),
    ipv4_text(),
    ipv6_text(),
    mutated(ipv4_text()),
    mutated(ipv6_text()),
    st.sampled_from(
        [
            "",
            "# comment",
            "; comment",
            "  ",
            "::",
            "::/0",
            "0.0.0.0/0",
            "192.0.2.1 - 192.0.2.9",
            "::ffff:192.0.2.1",
            "1.2.3.4 ; SBL1",
        ]
    ),
)


BLANKS = st.sampled_from(["", "", "", " ", "\t", "  ", " \t ", "      "])


@st.composite
def padded(draw: st.DrawFn, line: st.SearchStrategy[str]) -> str:
    """A line with the blanks real lists carry around entries (some beyond the fast strip)."""
    return draw(BLANKS) + draw(line) + draw(BLANKS)


def reference(
    lines: list[str],
) -> tuple[CidrSet, CidrSet, list[tuple[int, str]], list[tuple[int, str]]]:
    """The list parsed line by line with the reference grammar only."""
    ranges: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
    issues = []
    notes = []
    for number, line in enumerate(lines, start=1):
        try:
            got = parse_line(line)
        except CidrError as exc:
            issues.append((number, exc.message))
            continue
        if got is None:
            continue
        family, first, last, note = got
        ranges[family].append((first, last))
        if note:
            notes.append((number, note))
    return (CidrSet.from_ranges(4, ranges[4]), CidrSet.from_ranges(6, ranges[6]), issues, notes)


@settings(max_examples=600, deadline=None)
@given(st.lists(padded(LINE), min_size=0, max_size=80), st.sampled_from(["\n", "\r\n"]))
def test_fast_paths_agree_with_the_reference_grammar(lines: list[str], eol: str) -> None:
    lines = [ln.replace("\n", "") for ln in lines]
    result = parse.parse(eol.join(lines) + eol)
    v4, v6, issues, notes = reference(lines)
    assert result.v4 == v4
    assert result.v6 == v6
    assert [(i.line, i.reason) for i in result.issues] == issues
    assert [(n.line, n.reason) for n in result.notes] == notes
    assert result.entries == len(lines) - len(issues) - sum(
        1 for ln in lines if ln.split("#")[0].split(";")[0].strip(" \t\r") == ""
    )


V6_LINE = padded(st.one_of(ipv6_text(), ipv6_spelled(), mutated(ipv6_text())))


@settings(max_examples=300, deadline=None)
@given(st.lists(V6_LINE, min_size=20, max_size=60))
def test_vectorised_ipv6_path_agrees_with_the_reference_grammar(lines: list[str]) -> None:
    # at least 16 lines left after the IPv4 fast path switch the IPv6 fast path on
    result = parse.parse("\n".join(lines))
    v4, v6, issues, notes = reference(lines)
    assert (result.v4, result.v6) == (v4, v6)
    assert [(i.line, i.reason) for i in result.issues] == issues
    assert [(n.line, n.reason) for n in result.notes] == notes


@settings(max_examples=300)
@given(st.integers(0, 2**128 - 1))
def test_ipv6_text_round_trip(value: int) -> None:
    text = format_address(6, value)
    assert text == str(ipaddress.IPv6Address(value))
    assert parse_address(text) == (6, value)
    assert parse_address(ipaddress.IPv6Address(value).exploded) == (6, value)


@settings(max_examples=300)
@given(st.integers(0, 2**32 - 1))
def test_ipv4_text_round_trip(value: int) -> None:
    text = format_address(4, value)
    assert text == str(ipaddress.IPv4Address(value))
    assert parse_address(text) == (4, value)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**128 - 1), st.integers(0, 128)), max_size=40))
def test_bulk_ipv6_formatting_matches_ipaddress(items: list[tuple[int, int]]) -> None:
    nets = [ipaddress.IPv6Network((v, p), strict=False) for v, p in items]
    s = CidrSet(6, [str(n) for n in nets])
    assert s.cidr_strings() == [str(n) for n in ipaddress.collapse_addresses(nets)]

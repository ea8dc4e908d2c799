"""The fast path (caches of validated texts, inlined assembly) against the field-by-field parser.

``LogParser._slow(line, n, fast=False)`` is the general path alone: wrapper, then
``payload.parse_fields``, no fast-path expression anywhere. Every line below must give the same
result through ``parse``, ``parse_lines`` and that path, whether it is the first time a text is
seen (cache miss) or a later one (cache hit), including lines the fast path must refuse.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path

from egressguard.logs.events import Event, Issue
from egressguard.logs.parse import BLOCK, LogParser

REAL = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "log-samples-real.txt"

ISO = "2025-01-19T16:13:46.406155+00:00 node-1 kernel: [ 6236.551431] calico-packet: "
LINK = "IN=azv7c40892f581 OUT=eth0 MAC=ee:ee:ee:ee:ee:ee:f2:f8:09:3d:97:03:08:00 "
TCP = (
    "SRC=10.244.0.179 DST=203.0.113.9 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=27413 DF PROTO=TCP "
    "SPT=53940 DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0 "
)
UDP = (
    "SRC=10.244.0.179 DST=198.51.100.7 LEN=76 TOS=0x10 PREC=0x20 TTL=64 ID=1 PROTO=UDP "
    "SPT=40000 DPT=53 LEN=56 "
)
ICMP = (
    "SRC=10.244.0.179 DST=192.0.2.1 LEN=84 TOS=0x00 PREC=0x00 TTL=63 ID=5 DF PROTO=ICMP "
    "TYPE=8 CODE=0 ID=77 SEQ=3 "
)

#: (what changes, replacement) applied to the reference lines: each must be decided exactly
#: as the general path decides it (most are issues; some are valid shapes the fast path
#: leaves to the general path).
EDITS = [
    ("SRC=10.244.0.179", "SRC=10.244.0.256"),
    ("SRC=10.244.0.179", "SRC=10.244.00.179"),
    ("SRC=10.244.0.179", "SRC=10.244.0"),
    ("SRC=10.244.0.179", "SRC=2001:db8::1"),
    ("DST=203.0.113.9", "DST=203.0.113.09"),
    ("TTL=63", "TTL=256"),
    ("TTL=63", "TTL=063"),
    ("TOS=0x00", "TOS=0x01"),
    ("PREC=0x00", "PREC=0x10"),
    ("TOS=0x00", "TOS=0x0a"),
    ("ID=27413", "ID=65536"),
    ("ID=27413", "ID=027413"),
    ("SPT=53940", "SPT=65536"),
    ("SPT=53940", "SPT=099"),
    ("DPT=443", "DPT=99999"),
    ("WINDOW=64240", "WINDOW=65536"),
    ("RES=0x00", "RES=0x01"),
    ("SYN ", "SYN ACK "),
    ("SYN ", "XYZ "),
    ("SYN ", ""),
    ("SYN ", "ACK PSH "),
    ("URGP=0 ", "URGP=0 MARK=0x1f "),
    ("URGP=0 ", "URGP=0 MARK=0x01f "),
    ("URGP=0 ", "URGP=0 UID=0 GID=0 "),
    ("DF PROTO", "MF DF PROTO"),
    ("DF PROTO", "CE DF MF PROTO"),
    ("DF PROTO", "DF DF PROTO"),
    ("LEN=60", "LEN=060"),
    ("LEN=60", "LEN=123456"),
    ("DPT=53 LEN=56", "DPT=53 LEN=65536"),
    ("SPT=40000", "SPT=040000"),
    ("TYPE=8", "TYPE=0"),
    ("CODE=0", "CODE=256"),
    ("SEQ=3", "SEQ=65536"),
    ("ID=77", "ID=077"),
    ("IN=azv7c40892f581", "IN=a/b"),
    ("IN=azv7c40892f581", "IN=averyveryverylongname"),
    ("IN=azv7c40892f581", "IN="),
    ("OUT=eth0", "OUT="),
    ("MAC=ee:ee:ee:ee:ee:ee:f2:f8:09:3d:97:03:08:00 ", ""),
    ("MAC=ee:ee:ee:ee:ee:ee:f2:f8:09:3d:97:03:08:00", "MAC="),
    ("MAC=ee:ee:ee:ee:ee:ee:f2:f8:09:3d:97:03:08:00", "MAC=ee:ee:ee:ee:ee:ee:f2:f8:09:3d:97"),
    ("MAC=ee:ee:ee:ee:ee:ee:f2", "MAC=EE:ee:ee:ee:ee:ee:f2"),
    ("calico-packet: ", "calico-packet gnp:x: "),
    ("calico-packet: ", "[UFW BLOCK] "),
    ("calico-packet: ", "x" * 128),
    ("calico-packet: ", "node-2 kernel: calico-packet: "),
    ("calico-packet: ", ""),
    ("node-1 kernel:", "node:1 kernel:"),
    ("node-1 kernel:", "node-1 sshd:"),
    ("2025-01-19", "2025-02-30"),
    ("2025-01-19", "2025-13-01"),
    ("16:13:46", "24:13:46"),
    ("+00:00", "+24:00"),
    ("+00:00", "Z"),
    ("[ 6236.551431] ", ""),
    (" URGP=0 ", " URGP=0"),
    # the expression cuts fields at spaces only ([^ ]): other whitespace must be refused by
    # the checks behind it, as the general path refuses it
    ("node-1 kernel:", "node\t1 kernel:"),
    ("node-1 kernel:", "node\u00a01 kernel:"),
    ("node-1 kernel:", "node-1\u2028 kernel:"),
    ("IN=azv7c40892f581", "IN=azv7c4\t892f581"),
    ("OUT=eth0", "OUT=eth\u00a0"),
    ("MAC=ee:ee:ee:ee:ee:ee:f2", "MAC=ee:ee:ee:ee:ee:ee:f2\x0b"),
    ("SRC=10.244.0.179", "SRC=10.244.0.179\t"),
    ("DST=203.0.113.9", "DST=203.0.113.9\u3000"),
    ("DST=198.51.100.7", "DST=198.51.100.7\n"),
    ("TOS=0x00", "TOS=0x0\t"),
    ("RES=0x00", "RES=0x\u00a00"),
    ("SYN ", "SYN\t"),
    ("SYN ", "SYN\x1c"),
    ("SYN ", "SYN URGP=0 X"),
    ("SYN ", "SYN FOO=1 "),
    ("calico-packet: ", "calico-packet:\t"),
    # lengths: a line over MAX_LINE is a bad wrapper, whatever field makes it long
    ("node-1 kernel:", "n" * 70_000 + " kernel:"),
    ("node-1 kernel:", "n" * 256 + " kernel:"),
    ("[ 6236.551431]", "[ 6236." + "5" * 70_000 + "]"),
    ("[ 6236.551431]", "[" + " " * 30 + "6236.551431]"),
    ("IN=azv7c40892f581", "IN=" + "a" * 70_000),
    ("DF PROTO", "DF" + " " * 70_000 + "PROTO"),
    # digits other than ASCII ones are never read as numbers by the fast path
    ("ID=27413", "ID=2741\u0663"),
    ("TTL=63", "TTL=6\u0663"),
    ("SPT=53940", "SPT=5394\u0660"),
    ("LEN=60", "LEN=6\u0660"),
    ("16:13:46", "1\u0666:13:46"),
    ("[ 6236.551431]", "[ 6236.55143\u0661]"),
]


def corpus() -> list[str]:
    base = [ISO + LINK + TCP, ISO + LINK + UDP, ISO + LINK + ICMP]
    lines = list(base)
    for old, new in EDITS:
        for line in base:
            if old in line:
                lines.append(line.replace(old, new, 1))
    if REAL.exists():
        lines.extend(REAL.read_text(encoding="utf-8").splitlines())
    lines.extend(line + "\n" for line in base)
    lines.extend(line + "\r\n" for line in base)
    return lines


def general(line: str, line_no: int, **options: object) -> Event | Issue | None:
    return LogParser(**options)._slow(line, line_no, fast=False)  # type: ignore[arg-type]


def test_every_line_is_decided_as_the_general_path_decides_it() -> None:
    lines = corpus()
    events = 0
    for options in ({}, {"prefix": "calico-packet"}, {"prefix": "calico-packet %k:%n"}):
        parser = LogParser(**options)  # type: ignore[arg-type]
        for round_ in range(2):  # first sight (cache misses), then cache hits
            for n, line in enumerate(lines, 1):
                want = general(line, n, **options)
                assert parser.parse(line, n) == want, (options, round_, line)
                events += isinstance(want, Event)
    assert events > 50  # the corpus is not all rejects


def test_parse_lines_equals_parse_line_by_line() -> None:
    lines = corpus()
    shuffled = lines * 3
    random.Random(5).shuffle(shuffled)
    one = LogParser()
    many = LogParser()
    expected = [r for n, line in enumerate(shuffled, 1) if (r := one.parse(line, n)) is not None]
    assert list(many.parse_lines(shuffled)) == expected
    assert many.stats.as_dict() == one.stats.as_dict()


def test_prefix_filter_is_kept_by_the_cached_link() -> None:
    parser = LogParser(prefix="calico-packet")
    other = ISO.replace("calico-packet: ", "[UFW BLOCK] ") + LINK + TCP
    for _ in range(3):
        assert list(parser.parse_lines([ISO + LINK + TCP, other])) == [general(ISO + LINK + TCP, 1)]
    assert parser.stats.filtered == 3
    assert parser.stats.events == 3


def test_reference_values_through_the_inlined_assembly() -> None:
    parser = LogParser()
    lines = [ISO + LINK + TCP, ISO + LINK + UDP, ISO + LINK + ICMP] * 2
    results = list(parser.parse_lines(lines))
    assert all(isinstance(r, Event) for r in results)
    tcp, udp, icmp = results[3:]
    assert isinstance(tcp, Event)
    assert isinstance(udp, Event)
    assert isinstance(icmp, Event)
    assert (tcp.src, tcp.dst, tcp.src_port, tcp.dst_port, tcp.tcp_flags, tcp.window) == (
        "10.244.0.179",
        "203.0.113.9",
        53940,
        443,
        ("SYN",),
        64240,
    )
    assert (udp.tos, udp.prec, udp.ttl, udp.udp_len, udp.ip_flags, udp.proto_num) == (
        0x10,
        0x20,
        64,
        56,
        (),
        17,
    )
    assert (icmp.icmp_type, icmp.icmp_code, icmp.icmp_id, icmp.icmp_seq, icmp.src_port) == (
        8,
        0,
        77,
        3,
        None,
    )
    assert tcp.uptime == 6236.551431
    assert tcp.line_no == 4


def test_blocks_keep_line_numbers_counts_and_order() -> None:
    """parse_lines works in blocks of BLOCK lines: numbers, order and counts must not depend on
    where a block ends, and parse_block alone gives the same list."""
    pattern = [ISO + LINK + TCP, "noise", ISO + LINK + UDP.replace("TTL=64", "TTL=640"), ""]
    lines = [pattern[i % 4] if i % 7 else ISO + LINK + ICMP for i in range(5 * BLOCK + 3)]
    one = LogParser()
    expected = [r for n, text in enumerate(lines, 10) if (r := one.parse(text, n)) is not None]
    for count in (0, 1, BLOCK - 1, BLOCK, BLOCK + 1, len(lines)):
        many = LogParser()
        got = list(many.parse_lines(lines[:count], start=10))
        assert got == [r for r in expected if r.line_no < 10 + count]
        assert many.stats.lines == count
    block = LogParser()
    assert block.parse_block(lines, 10) == expected
    assert block.stats.as_dict() == one.stats.as_dict()


def test_parse_lines_reads_a_block_at_a_time() -> None:
    """An endless input is consumed block by block, as the results are taken."""
    source = itertools.count()
    lines = (ISO + LINK + TCP for _ in source)
    parser = LogParser()
    results = parser.parse_lines(lines, start=1)
    first = list(itertools.islice(results, 3))
    assert [r.line_no for r in first] == [1, 2, 3]
    assert next(source) == BLOCK  # one block was read, no more
    assert parser.stats.events == BLOCK

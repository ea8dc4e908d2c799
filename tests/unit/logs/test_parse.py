"""LogParser: both layers joined, prefix filtering and decoding, counts, the fast path."""

from __future__ import annotations

from datetime import datetime

import pytest

from egressguard.logs.events import Event, Issue
from egressguard.logs.parse import LogParser, parse_line, parse_lines, prefix_matches

PAYLOAD = (
    "IN=azv7c40892f581 OUT=eth0 MAC=02:00:00:00:00:02:02:00:00:00:00:01:08:00 SRC=10.244.0.179 "
    "DST=203.0.113.9 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=27413 DF PROTO=TCP SPT=53940 DPT=443 "
    "WINDOW=64240 RES=0x00 SYN URGP=0 "
)
ISO = "2025-01-19T16:13:46.406155+00:00 node-1 kernel: [ 6236.551431] "


def line(prefix: str = "calico-packet: ", payload: str = PAYLOAD, wrapper: str = ISO) -> str:
    return f"{wrapper}{prefix}{payload}"


def test_reference_line_fields() -> None:
    e = parse_line(line(), 3)
    assert isinstance(e, Event)
    assert (e.line_no, e.wrapper, e.time, e.host, e.uptime) == (
        3,
        "iso8601",
        "2025-01-19T16:13:46.406155+00:00",
        "node-1",
        6236.551431,
    )
    assert (e.prefix, e.in_iface, e.out_iface, e.src, e.dst) == (
        "calico-packet",
        "azv7c40892f581",
        "eth0",
        "10.244.0.179",
        "203.0.113.9",
    )
    assert (e.proto, e.src_port, e.dst_port, e.tcp_flags, e.ip_flags) == (
        "TCP",
        53940,
        443,
        ("SYN",),
        ("DF",),
    )
    assert (e.mac_dst, e.mac_src, e.ethertype) == ("02:00:00:00:00:02", "02:00:00:00:00:01", 0x800)


def test_fast_and_general_paths_agree_on_the_common_shapes() -> None:
    payloads = [
        PAYLOAD,
        PAYLOAD.replace("SYN ", "ACK PSH ") + "MARK=0x1f",
        "IN= OUT=eth0 SRC=10.0.0.1 DST=192.0.2.1 LEN=93 TOS=0x1C PREC=0xE0 TTL=0 ID=0 CE MF "
        "PROTO=UDP SPT=0 DPT=65535 LEN=73",
        "IN=cali1 OUT=eth0 SRC=10.0.0.1 DST=192.0.2.1 LEN=84 TOS=0x00 PREC=0x00 TTL=255 "
        "ID=65535 DF PROTO=ICMP TYPE=0 CODE=255 ID=1 SEQ=2 ",
    ]
    for payload in payloads:
        for text in (line(payload=payload), f"5,1,2,-;calico-packet: {payload}"):
            fast = LogParser().parse(text, 1)
            slow = LogParser()._slow(text, 1)  # the general path alone
            assert isinstance(fast, Event)
            assert fast == slow, text


def test_fast_path_rejects_what_the_general_path_rejects() -> None:
    bad = [
        PAYLOAD.replace("SYN ", "SYN ACK "),
        PAYLOAD.replace("TTL=63", "TTL=300"),
    ]
    for payload in bad:
        assert isinstance(LogParser().parse(line(payload=payload), 1), Issue), payload


def test_a_mac_that_is_not_14_bytes_is_kept_raw_by_both_paths() -> None:
    text = line(payload=PAYLOAD.replace("02:00:00:00:00:02:02:00:00:00:00:01:08:00", "0" * 41))
    fast, slow = LogParser().parse(text, 1), LogParser()._slow(text, 1)
    assert isinstance(fast, Event)
    assert fast == slow
    assert (fast.mac, fast.mac_src, fast.ethertype) == ("0" * 41, None, None)


def test_glued_record_in_front_is_rejected_even_on_the_fast_shape() -> None:
    glued = ISO + "Jan 19 16:13:46 node-1 kernel: calico-packet: " + PAYLOAD
    result = parse_line(glued)
    assert isinstance(result, Issue)
    assert result.code == "glued"


def test_prefix_filter() -> None:
    assert prefix_matches("calico-packet", "calico-packet")
    assert prefix_matches("calico-packet gnp:x", "calico-packet")
    assert not prefix_matches("calico-packets", "calico-packet")
    assert prefix_matches("calico-packet gnp:default/x", "calico-packet %k:%p")
    assert not prefix_matches("[UFW BLOCK]", "calico-packet")
    parser = LogParser(prefix="calico-packet")
    lines = [line(), line(prefix="[UFW BLOCK] "), line(prefix="calico-packet gnp:x: ")]
    kept = [r for r in parser.parse_lines(lines) if isinstance(r, Event)]
    assert [e.line_no for e in kept] == [1, 3]
    assert parser.stats.as_dict() == {
        "events": 2,
        "filtered": 1,
        "issues": 0,
        "lines": 3,
        "skipped": 0,
    }


def test_prefix_filter_applies_to_issues_with_a_known_prefix() -> None:
    bad = PAYLOAD.replace("SRC=10.244.0.179", "SRC=10.244.0")
    parser = LogParser(prefix="calico-packet")
    assert parser.parse(line(prefix="[UFW BLOCK] ", payload=bad), 1) is None
    result = parser.parse(line(payload=bad), 2)
    assert isinstance(result, Issue)
    assert result.prefix == "calico-packet"
    assert parser.stats.filtered == 1


@pytest.mark.parametrize("fast", [True, False])
def test_template_fills_policy_fields(fast: bool) -> None:
    payload = PAYLOAD if fast else PAYLOAD.replace("URGP=0 ", "URGP=0 UID=0 GID=0 ")
    parser = LogParser(prefix="calico-packet %t %k:%p")
    e = parser.parse(
        line(prefix="calico-packet egressguard np:prod/deny-bad: ", payload=payload), 1
    )
    assert isinstance(e, Event)
    assert (e.tier, e.policy_kind, e.policy_namespace, e.policy) == (
        "egressguard",
        "np",
        "prod",
        "deny-bad",
    )
    other = parser.parse(line(prefix="calico-packet: ", payload=payload), 2)
    assert other is None  # does not decode under the template: filtered


def test_non_packet_lines_are_skipped_silently() -> None:
    parser = LogParser()
    lines = [
        "Jan 19 16:13:49 node sshd[42]: Accepted publickey for root",
        "2025-01-19T16:13:46Z node kernel: [ 1.000000] EXT4-fs (vda): mounted",
        '{"_TRANSPORT":"kernel","MESSAGE":"usb 1-1: new device"}',
        "",
    ]
    assert list(parser.parse_lines(lines)) == []
    assert parser.stats.skipped == 4


def test_line_endings_and_line_numbers() -> None:
    results = list(parse_lines([line() + "\n", line() + "\r\n", "noise\n", line()]))
    assert [r.line_no for r in results] == [1, 2, 4]
    assert all(isinstance(r, Event) and r.dst_port == 443 for r in results)


def test_rfc3164_reference_and_boot_time() -> None:
    text = "Dec  4 01:30:07 node3 kernel: [307753.360525] calico-packet: " + PAYLOAD
    assert parse_line(text, reference=datetime(2025, 1, 5)).time == "2024-12-04T01:30:07"  # type: ignore[union-attr]
    assert parse_line(text).time is None  # type: ignore[union-attr]
    kmsg = "5,9,1500000,-;calico-packet: " + PAYLOAD
    e = parse_line(kmsg, boot_time=1_737_303_225.0)
    assert isinstance(e, Event)
    assert (e.time, e.seq, e.uptime) == ("2025-01-19T16:13:46.500000+00:00", 9, 1.5)


def test_nothing_escapes_on_odd_input() -> None:
    parser = LogParser()
    odd = [
        "\x00IN=\x00",
        "IN= OUT=" + " " * 5000,
        "{" * 10 + "IN=",
        "[ 1.0] IN=",
        "<5>",
        "\ud800IN=",
    ]
    for text in odd:
        result = parser.parse(text, 1)
        assert result is None or isinstance(result, Issue)


# Decimal digits other than 0-9 (U+0660..U+0669 are the Arabic-Indic ones): int(), float(),
# str.isdigit() and \d in a str pattern all take them, the kernel and syslog daemons never write
# them. A field holding one is not a number, an address or a time, on either path.
NON_ASCII_DIGITS = [
    ("ID=27413", "ID=2741\u0663"),
    ("TTL=63", "TTL=6\u0663"),
    ("LEN=60", "LEN=6\u0660"),
    ("SRC=10.244.0.179", "SRC=10.244.0.17\u0669"),
    ("DST=203.0.113.9", "DST=203.0.113.\u0669"),
    ("SPT=53940", "SPT=5394\u0660"),
    ("DPT=443", "DPT=44\u0663"),
    ("WINDOW=64240", "WINDOW=6424\u0660"),
    ("URGP=0", "URGP=\u0660"),
    ("16:13:46", "1\u0666:13:46"),
    ("2025-01-19", "2025-01-1\u0669"),
    ("[ 6236.551431]", "[ 6236.55143\u0661]"),
]


@pytest.mark.parametrize(("old", "new"), NON_ASCII_DIGITS)
def test_non_ascii_digits_are_not_numbers(old: str, new: str) -> None:
    text = line().replace(old, new)
    assert text != line()
    for result in (LogParser().parse(text, 1), LogParser()._slow(text, 1, fast=False)):
        assert isinstance(result, Issue), result


def test_non_ascii_digits_in_journald_and_kmsg_wrappers() -> None:
    record = (
        '{"_TRANSPORT":"kernel","__REALTIME_TIMESTAMP":"17373032264061\u0665\u0665",'
        '"MESSAGE":"calico-packet: ' + PAYLOAD + '"}'
    )
    result = parse_line(record)
    assert isinstance(result, Issue)
    assert result.code == "bad-wrapper"
    # a kmsg header with a foreign digit is no kmsg header: the line is a bare message whose
    # prefix is that text, never an event with sequence number 77
    kmsg = parse_line("5,7\u0667,1500000,-;calico-packet: " + PAYLOAD)
    assert isinstance(kmsg, Event)
    assert (kmsg.wrapper, kmsg.seq) == ("bare", None)


def test_a_bracket_ends_an_interface_name_outside_a_quoted_header() -> None:
    """Linux allows ']' in an interface name; only inside an ICMP error's quoted '[...]' header
    does a trailing ']' close it. Both paths read the name whole."""
    text = line(payload=PAYLOAD.replace("OUT=eth0", "OUT=eth]"))
    for result in (LogParser().parse(text, 1), LogParser()._slow(text, 1, fast=False)):
        assert isinstance(result, Event), result
        assert result.out_iface == "eth]"

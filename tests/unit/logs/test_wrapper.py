"""Layer 1: every wrapper, who wrote the line, and the time in it."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from egressguard.logs.wrapper import Rejected, Wrapped, split_uptime, unwrap

MSG = "calico-packet: IN= OUT=eth0 SRC=192.0.2.1 DST=198.51.100.7"


def test_rsyslog_high_precision() -> None:
    w = unwrap(f"2025-01-19T16:13:46.406155-07:00 node-1 kernel: [ 6236.551431] {MSG}")
    assert w == Wrapped(
        "iso8601", "2025-01-19T16:13:46.406155-07:00", "node-1", None, 6236.551431, None, MSG
    )


def test_rfc3164_day_padding_host_and_pri() -> None:
    ref = datetime(2025, 6, 1)
    padded = unwrap(f"Dec  4 01:30:07 node3 kernel: [307753.360525] {MSG}", reference=ref)
    assert (padded.kind, padded.time, padded.host, padded.uptime) == (
        "rfc3164",
        "2024-12-04T01:30:07",  # December is after June 2025: last year's
        "node3",
        307753.360525,
    )
    collapsed = unwrap(f"Sep 5 14:34:40 node kernel: {MSG}", reference=ref)
    assert collapsed.time == "2024-09-05T14:34:40"
    with_pri = unwrap(f"<5>Jan 19 16:13:49 node kernel: {MSG}", reference=ref)
    assert (with_pri.priority, with_pri.time, with_pri.message) == (5, "2025-01-19T16:13:49", MSG)
    no_host = unwrap(f"Jan 19 16:13:49 kernel: {MSG}", reference=ref)
    assert (no_host.host, no_host.message) == (None, MSG)


@pytest.mark.parametrize(
    ("stamp", "reference", "expected"),
    [
        ("Jan  1 00:30:00", datetime(2025, 12, 31, 23, 50), "2026-01-01T00:30:00"),  # clock skew
        ("Dec 31 23:59:59", datetime(2026, 1, 1, 0, 5), "2025-12-31T23:59:59"),  # new year
        ("Feb 29 12:00:00", datetime(2025, 3, 1), "2024-02-29T12:00:00"),  # last leap day
        ("Jun 15 08:00:00", datetime(2025, 6, 15, 9), "2025-06-15T08:00:00"),
    ],
)
def test_rfc3164_year_is_inferred_from_the_reference(
    stamp: str, reference: datetime, expected: str
) -> None:
    assert unwrap(f"{stamp} n kernel: {MSG}", reference=reference).time == expected


def test_rfc3164_without_reference_has_no_time_but_checks_the_day() -> None:
    assert unwrap(f"Feb 29 12:00:00 n kernel: {MSG}").time is None
    with pytest.raises(Rejected, match="not a day"):
        unwrap(f"Feb 30 12:00:00 n kernel: {MSG}")


def test_rfc5424_with_structured_data_bom_and_nil_values() -> None:
    w = unwrap(
        f'<4>1 2025-01-19T16:13:46.406155Z node-1 kernel - - [a@1 b="x\\]y"][c@2] \ufeff{MSG}'
    )
    assert (w.kind, w.time, w.host, w.priority, w.message) == (
        "rfc5424",
        "2025-01-19T16:13:46.406155Z",
        "node-1",
        4,
        MSG,
    )
    nil = unwrap(f"<6>1 - - kernel - - - {MSG}")
    assert (nil.time, nil.host, nil.priority) == (None, None, 6)


def test_journald_records() -> None:
    record = {
        "_TRANSPORT": "kernel",
        "MESSAGE": MSG,
        "__REALTIME_TIMESTAMP": "1737303226406155",
        "_SOURCE_MONOTONIC_TIMESTAMP": "6236551431",
        "_HOSTNAME": "node-1",
        "PRIORITY": "5",
    }
    w = unwrap(json.dumps(record))
    assert w == Wrapped(
        "journald", "2025-01-19T16:13:46.406155+00:00", "node-1", 5, 6236.551431, None, MSG
    )
    record["MESSAGE"] = list(MSG.encode())
    assert unwrap(json.dumps(record)).message == MSG


def test_dmesg_and_dmesg_t() -> None:
    assert unwrap(f"[ 6236.551431] {MSG}") == Wrapped(
        "dmesg", None, None, None, 6236.551431, None, MSG
    )
    boot = unwrap(f"[   10.500000] {MSG}", boot_time=1_737_303_216.0)
    assert boot.time == "2025-01-19T16:13:46.500000+00:00"
    caller = unwrap(f"[  123.456789][ T1234] {MSG}")
    assert (caller.uptime, caller.message) == (123.456789, MSG)
    human = unwrap(f"[Sun Jan 19 16:13:46 2025] {MSG}")
    assert (human.kind, human.time) == ("dmesg-T", "2025-01-19T16:13:46")
    assert unwrap(f"[Sun Jan  5 16:13:46 2025] {MSG}").time == "2025-01-05T16:13:46"


def test_kmsg_records() -> None:
    w = unwrap(f"4,344,107477159,-;{MSG}")
    assert w == Wrapped("kmsg", None, None, 4, 107.477159, 344, MSG)
    caller = unwrap(f"6,339,5140900,-,caller=T1;{MSG}", boot_time=1_000_000.0)
    assert (caller.seq, caller.time) == (339, "1970-01-12T13:46:45.140900+00:00")


def test_bare_message_and_ufw_style_prefix_are_not_dmesg() -> None:
    assert unwrap(MSG) == Wrapped("bare", None, None, None, None, None, MSG)
    ufw = f"[UFW BLOCK] {MSG}"
    assert unwrap(ufw).kind == "bare"


def test_split_uptime_accepts_the_seven_digit_copy_error() -> None:
    assert split_uptime("[ 6236.5514311] x") == (6236.5514311, "x")
    assert split_uptime("x") == (None, "x")


@pytest.mark.parametrize(
    ("line", "code", "reason"),
    [
        (f"Jan 19 16:13:49 node root: {MSG}", "not-kernel", "'root'"),
        (f"2025-01-19T16:13:46Z node kernel[42]: {MSG}", "not-kernel", "kernel[42]"),
        (f"<13>Jan 19 16:13:49 node kernel: {MSG}", "not-kernel", "facility 1"),
        (f"<13>1 2025-01-19T16:13:46Z node kernel - - - {MSG}", "not-kernel", "facility 1"),
        (f"<5>1 2025-01-19T16:13:46Z node logger - - - {MSG}", "not-kernel", "'logger'"),
        (f"12,7,100,-;{MSG}", "not-kernel", "userspace"),
        (json.dumps({"_TRANSPORT": "syslog", "MESSAGE": MSG}), "not-kernel", "'syslog'"),
        (json.dumps({"MESSAGE": MSG}), "not-kernel", "None"),
        (json.dumps({"_TRANSPORT": "kernel"}), "bad-wrapper", "no MESSAGE"),
        ('{"_TRANSPORT": "kernel", "MESSAGE": "IN=', "bad-wrapper", "not a journald JSON"),
        (f"2025-02-30T16:13:46Z node kernel: {MSG}", "bad-wrapper", "2025-02-30"),
        (f"<200>Jan 19 16:13:49 node kernel: {MSG}", "bad-wrapper", "0-191"),
        (f"<5>garbage {MSG}", "bad-wrapper", "timestamp"),
        (f"[Mon Jan 19 16:13:46 2025] {MSG}", "bad-wrapper", "Mon"),
        (f"<5>1 2025-01-19 node kernel - - - {MSG}", "bad-wrapper", "RFC 3339"),
        (f"<5>1 2025-01-19T16:13:46Z node kernel - - [x@1 {MSG}", "bad-wrapper", "not closed"),
    ],
)
def test_rejected(line: str, code: str, reason: str) -> None:
    with pytest.raises(Rejected) as caught:
        unwrap(line, reference=datetime(2025, 6, 1))
    assert caught.value.code == code
    assert reason in caught.value.message

"""Real kernel log lines against hand-written expectations (tables in data/log_*_expected.json).

- ``log-samples-real.txt`` (shared data, 24 published lines): every field of every event, or
  the rejection code and reason; the whole ``Event`` must equal the table's, so a field the
  table leaves out must be at its default.
- ``log_kmsg_real.txt``: /dev/kmsg records this machine's kernel wrote for nft log rules
  (flags all, marks, ICMP errors, IPv6 fragments); the fields each entry names.
- ``log_journald.jsonl``: journalctl -o json records around real kernel messages, including
  forged ones only ``_TRANSPORT`` exposes.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from egressguard.logs.events import Event, Issue, Packet
from egressguard.logs.parse import LogParser

DATA = Path(__file__).parent / "data"


def _table(name: str) -> dict[str, Any]:
    table: dict[str, Any] = json.loads((DATA / name).read_text())
    return table


def _value(field: str, value: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    if field == "inner" and isinstance(value, dict):
        return Packet(**{k: _value(k, v) for k, v in value.items()})
    return value


def _parse_all(path: Path, parser: LogParser) -> dict[int, Event | Issue | None]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return {n: parser.parse(line, n) for n, line in enumerate(lines, 1)}


SAMPLES = _table("log_samples_expected.json")


@pytest.fixture(scope="module")
def samples(data_dir: Path) -> dict[int, Event | Issue | None]:
    reference = datetime.fromisoformat(SAMPLES["reference_time"])
    return _parse_all(data_dir / "log-samples-real.txt", LogParser(reference=reference))


def test_table_covers_every_line(data_dir: Path) -> None:
    count = len((data_dir / "log-samples-real.txt").read_text().splitlines())
    assert sorted(map(int, SAMPLES["lines"])) == list(range(1, count + 1))


@pytest.mark.parametrize("line_no", sorted(map(int, SAMPLES["lines"])))
def test_real_sample(samples: dict[int, Event | Issue | None], line_no: int) -> None:
    expected = SAMPLES["lines"][str(line_no)]
    result = samples[line_no]
    if "issue" in expected:
        assert isinstance(result, Issue), f"line {line_no} must be rejected, got {result}"
        assert result.line_no == line_no
        assert result.code == expected["issue"]
        assert expected["reason"] in result.issue
        return
    assert isinstance(result, Event), f"line {line_no}: {result}"
    want = Event(line_no=line_no, **{k: _value(k, v) for k, v in expected.items()})
    differences = {
        name: (getattr(result, name), getattr(want, name))
        for name in Event._fields
        if getattr(result, name) != getattr(want, name)
    }
    assert not differences, f"line {line_no}: field: (parsed, expected) {differences}"


def _check_named_fields(result: Event | Issue | None, expected: dict[str, Any], where: str) -> None:
    if "issue" in expected:
        assert isinstance(result, Issue), f"{where} must be rejected, got {result}"
        assert result.code == expected["issue"]
        assert expected["reason"] in result.issue
        return
    if expected.get("skipped"):
        assert result is None, f"{where} is not a packet log, got {result}"
        return
    assert isinstance(result, Event), f"{where}: {result}"
    for field, value in expected.items():
        if field == "inner":
            assert result.inner is not None, f"{where}: no quoted header"
            for inner_field, inner_value in value.items():
                got = getattr(result.inner, inner_field)
                assert got == _value(inner_field, inner_value), f"{where} inner.{inner_field}"
        else:
            assert getattr(result, field) == _value(field, value), f"{where} {field}"


KMSG = _table("log_kmsg_real_expected.json")


def test_real_kmsg_records() -> None:
    results = _parse_all(DATA / "log_kmsg_real.txt", LogParser())
    assert sorted(results) == sorted(map(int, KMSG["lines"]))
    for key, expected in KMSG["lines"].items():
        line_no = int(key)
        _check_named_fields(results[line_no], expected, f"kmsg line {line_no}")
        event = results[line_no]
        assert isinstance(event, Event)
        assert event.wrapper == "kmsg"
        assert event.priority == 4  # facility kern, level warning: the nft rules say 'level warn'


def test_real_kmsg_times_with_boot_time() -> None:
    line = (DATA / "log_kmsg_real.txt").read_text().splitlines()[0]
    event = LogParser(boot_time=1_737_301_553.136_219).parse(line, 1)
    assert isinstance(event, Event)
    assert event.time == "2025-01-19T16:13:46.406155+00:00"  # boot + 1673.269936 s


JOURNALD = _table("log_journald_expected.json")


def test_journald_records() -> None:
    results = _parse_all(DATA / "log_journald.jsonl", LogParser())
    assert sorted(results) == sorted(map(int, JOURNALD["lines"]))
    for key, expected in JOURNALD["lines"].items():
        _check_named_fields(results[int(key)], expected, f"journald line {key}")


def test_the_same_message_in_every_wrapper() -> None:
    """The payload of a real record parses to the same packet whatever carried it."""
    record = (DATA / "log_kmsg_real.txt").read_text().splitlines()[9]  # ICMP error, quoted UDP
    message = record.split(";", 1)[1]
    wrapped = {
        "kmsg": record,
        "bare": message,
        "dmesg": f"[ 1674.572095] {message}",
        "dmesg-T": f"[Sun Jan 19 16:13:47 2025] {message}",
        "iso8601": f"2025-01-19T16:13:47.709314+00:00 node-1 kernel: [ 1674.572095] {message}",
        "rfc3164": f"Jan 19 16:13:47 node-1 kernel: {message}",
        "rfc3164-pri": f"<4>Jan 19 16:13:47 node-1 kernel: [ 1674.572095] {message}",
        "rfc5424": f"<4>1 2025-01-19T16:13:47.709314Z node-1 kernel - - - {message}",
        "journald": json.dumps({"_TRANSPORT": "kernel", "MESSAGE": message}),
    }
    parser = LogParser(reference=datetime(2025, 6, 1))
    results = {kind: parser.parse(line, 1) for kind, line in wrapped.items()}
    payload_fields = Event._fields[Event._fields.index("prefix") :]
    first = results["kmsg"]
    assert isinstance(first, Event)
    for kind, event in results.items():
        assert isinstance(event, Event), f"{kind}: {event}"
        assert event.wrapper == kind.removesuffix("-pri")
        for name in payload_fields:
            assert getattr(event, name) == getattr(first, name), f"{kind}: {name}"
    assert results["dmesg-T"].time == "2025-01-19T16:13:47"
    assert results["rfc3164"].time == "2025-01-19T16:13:47"
    assert results["rfc5424"].time == "2025-01-19T16:13:47.709314Z"
    assert results["rfc3164-pri"].priority == 4
    assert results["dmesg"].uptime == results["iso8601"].uptime == 1674.572095

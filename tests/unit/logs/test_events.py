"""Event values: JSON form, epochs, and the module's public names."""

from __future__ import annotations

import copy
import importlib
import json
import pickle
from datetime import timedelta, timezone

import pytest

from egressguard.logs.events import Event, Issue, Packet, event_epoch, event_to_json, issue_to_json

REQUIRED = {
    "line_no", "time", "host", "prefix", "in_iface", "out_iface", "src", "dst", "proto",
    "src_port", "dst_port", "icmp_type", "icmp_code", "fragment",
}  # fmt: skip
ENRICHMENT = {"set", "feeds", "country", "src_pod", "src_namespace", "repeat_count"}


def test_json_has_the_documented_keys_and_round_trips() -> None:
    e = Event(
        line_no=1, src="192.0.2.1", ip_flags=("DF",), inner=Packet(family=4, tcp_flags=("SYN",))
    )
    out = event_to_json(e)
    assert set(out) == set(Event._fields)
    assert set(out) >= REQUIRED
    assert set(out) >= ENRICHMENT
    assert out["ip_flags"] == ["DF"]
    assert out["inner"]["tcp_flags"] == ["SYN"]
    assert json.loads(json.dumps(out)) == out


def test_issue_json() -> None:
    assert issue_to_json(Issue(4, "glued", "two records")) == {
        "line_no": 4,
        "code": "glued",
        "issue": "two records",
    }
    assert issue_to_json(Issue(4, "glued", "x", "p"), source="f")["source"] == "f"


def test_event_epoch() -> None:
    assert event_epoch(Event()) is None
    assert event_epoch(Event(time="2025-01-19T16:13:46Z")) == 1_737_303_226
    naive = Event(time="2025-01-19T16:13:46")
    assert event_epoch(naive) == 1_737_303_226
    assert event_epoch(naive, naive_tz=timezone(timedelta(hours=1))) == 1_737_303_226 - 3600


def test_enrichment_is_added_by_replace() -> None:
    e = Event(dst="203.0.113.9")._replace(set="blocklist", feeds=("tor",), country="NL")
    assert (e.set, e.feeds, e.country, e.src_pod) == ("blocklist", ("tor",), "NL", None)


def test_every_field_reads_back_and_counts_in_equality() -> None:
    """Each field, whether it has a slot of its own or sits in a nested run, is read by its
    name, changed alone by ``_replace``, and makes two events differ."""
    base = Event(line_no=7, src="192.0.2.1", dst="198.51.100.2", ip_flags=("DF",))
    for name in Event._fields:
        marker = object()
        changed = base._replace(**{name: marker})
        assert getattr(changed, name) is marker
        assert changed != base
        assert hash(changed) != hash(base._replace(**{name: object()}))
        others = [n for n in Event._fields if n != name]
        assert [getattr(changed, n) for n in others] == [getattr(base, n) for n in others]
        assert changed._replace(**{name: getattr(base, name)}) == base


def test_construction_keyword_positional_and_defaults_agree() -> None:
    values = tuple(f"v{i}" for i in range(len(Event._fields)))
    by_position = Event(*values)
    by_name = Event(**dict(zip(Event._fields, values, strict=True)))
    assert by_position == by_name
    assert by_position._values() == values
    assert list(by_position._asdict()) == list(Event._fields)
    assert Event()._values() == tuple(Event._field_defaults.values())
    assert Event(3, "kmsg", seq=9) == Event(line_no=3, wrapper="kmsg", seq=9)


def test_wrong_names_and_arguments_are_refused() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'dport'"):
        Event(dport=443)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="multiple values"):
        Event(1, line_no=2)  # type: ignore[misc]
    with pytest.raises(TypeError, match="positional arguments"):
        Event(*range(78))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dport"):
        Event()._replace(dport=443)
    with pytest.raises(AttributeError):
        Event().src = "192.0.2.1"  # type: ignore[misc]


def test_copies_and_pickles_are_equal_events() -> None:
    e = Event(line_no=2, src="192.0.2.1", inner=Packet(family=4), feeds=("tor",), mark=0x1F)
    pickled = pickle.loads(pickle.dumps(e))  # noqa: S301  (our own bytes)
    for other in (copy.copy(e), copy.deepcopy(e), pickled):
        assert other == e
        assert type(other) is Event
        assert other.mark == 0x1F


def test_repr_names_every_field() -> None:
    text = repr(Event(src="192.0.2.1", tcp_flags=("SYN",)))
    assert text.startswith("Event(line_no=0, wrapper='bare', ")
    assert "src='192.0.2.1'" in text
    assert "tcp_flags=('SYN',)" in text
    assert text.count("=") == len(Event._fields)


PUBLIC = {
    "egressguard.logprefix": {
        "DEFAULT_TEMPLATE", "IPTABLES_MAX_LENGTH", "KIND_SHORT_NAMES", "MAX_LENGTH", "PrefixInfo",
        "decode", "encode", "has_specifiers", "is_decodable", "normalise", "validate_template",
    },
    "egressguard.logs": {
        "Event", "Issue", "LogParser", "Packet", "ParseStats", "event_to_json", "issue_to_json",
        "parse_line", "parse_lines",
    },
    "egressguard.logs.metrics": {"MetricFamily", "Metrics", "Sample", "render_text"},
    "egressguard.adapters.logsource": {
        "AUTO_FILES", "FileSource", "JournaldSource", "KmsgSource", "LinesSource", "LogSource",
        "SourceStats", "boot_time", "open_source",
    },
    "egressguard.adapters.metrics": {"CONTENT_TYPE", "MetricsEndpoint", "MetricsServer"},
}  # fmt: skip


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_exported_members(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert set(module.__all__) == PUBLIC[module_name]
    for name in module.__all__:
        assert hasattr(module, name)

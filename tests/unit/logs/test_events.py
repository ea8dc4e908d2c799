"""Event values: JSON form, epochs, and the module's public names."""

from __future__ import annotations

import importlib
import json
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

"""Folding events into counters: labels, bounds, flows, lag, and the text format."""

from __future__ import annotations

import re

from egressguard.logs.events import Event, Issue
from egressguard.logs.metrics import Metrics, render_text

NOW = 1_737_303_300.0


def ev(**fields: object) -> Event:
    base: dict[str, object] = {
        "src": "10.244.0.5",
        "dst": "203.0.113.9",
        "proto": "TCP",
        "proto_num": 6,
        "src_port": 40000,
        "dst_port": 443,
    }
    base.update(fields)
    return Event(**base)  # type: ignore[arg-type]


def series(m: Metrics) -> dict[str, float]:
    """name{labels} -> value, from the rendered text."""
    out: dict[str, float] = {}
    for line in m.render().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_absent_enrichment_is_unknown() -> None:
    m = Metrics()
    m.observe_event(ev(), now=NOW)
    s = series(m)
    labels = 'set="unknown",country="unknown",namespace="unknown",proto="TCP"'
    assert s["egressguard_blocked_packets_total{" + labels + "}"] == 1
    assert s['egressguard_blocked_packets_by_feed_total{feed="unknown"}'] == 1


def test_enriched_event_counts_repeat_and_every_feed() -> None:
    m = Metrics()
    e = ev(
        set="bad-nets",
        country="RU",
        src_namespace="shop",
        feeds=("spamhaus", "firehol"),
        repeat_count=3,
    )
    m.observe_event(e, now=NOW)
    s = series(m)
    labels = 'set="bad-nets",country="RU",namespace="shop",proto="TCP"'
    key = "egressguard_blocked_packets_total{" + labels + "}"
    assert s[key] == 3
    assert s[key.replace("packets", "flows")] == 1
    assert s['egressguard_blocked_packets_by_feed_total{feed="spamhaus"}'] == 3
    assert s['egressguard_blocked_packets_by_feed_total{feed="firehol"}'] == 3
    assert s['egressguard_blocked_flows_by_feed_total{feed="firehol"}'] == 1


def test_syn_retries_are_one_flow_within_the_window() -> None:
    m = Metrics(flow_window=120)
    for t in (0, 1, 3, 7, 15):  # the kernel's SYN retransmissions
        m.observe_event(ev(), now=NOW + t)
    m.observe_event(ev(src_port=40001), now=NOW + 16)  # a new connection
    m.observe_event(ev(), now=NOW + 15 + 121)  # the same tuple, long after
    s = series(m)
    key = 'set="unknown",country="unknown",namespace="unknown",proto="TCP"}'
    assert s["egressguard_blocked_packets_total{" + key] == 7
    assert s["egressguard_blocked_flows_total{" + key] == 3


def test_flow_memory_is_bounded() -> None:
    m = Metrics(flow_capacity=10)
    for port in range(100):
        m.observe_event(ev(src_port=port), now=NOW)
    assert len(m._recent) <= 10


def test_label_cardinality_is_bounded() -> None:
    m = Metrics(top_n=3)
    for i in range(10):
        m.observe_event(ev(country=f"C{i}", src_port=i), now=NOW)
    countries = {
        re.search(r'country="([^"]+)"', name).group(1)  # type: ignore[union-attr]
        for name in series(m)
        if name.startswith("egressguard_blocked_packets_total")
    }
    assert countries == {"C0", "C1", "C2", "other"}
    assert series(m)['egressguard_metrics_label_overflow_total{label="country"}'] == 7


def test_series_cap_folds_into_other() -> None:
    m = Metrics(top_n=100, max_series=5)
    for i in range(20):
        m.observe_event(ev(set=f"s{i}", src_port=i), now=NOW)
    packet_series = [n for n in series(m) if n.startswith("egressguard_blocked_packets_total")]
    assert len(packet_series) == 6  # 5 admitted + the all-"other" series
    assert series(m)['egressguard_metrics_label_overflow_total{label="series"}'] == 15


def test_issues_lines_source_and_lag() -> None:
    m = Metrics()
    m.observe_issue(Issue(1, "glued", "x"))
    m.observe_issue(Issue(2, "glued", "y"))
    m.observe_lines({"events": 5, "issues": 2, "skipped": 10, "filtered": 1, "lines": 18})
    m.observe_source({"rotation": 2, "truncation": 1})
    m.observe_event(ev(time="2025-01-19T16:13:46+00:00"), now=1_737_303_236.5)
    s = series(m)
    assert s['egressguard_log_parse_issues_total{code="glued"}'] == 2
    assert s['egressguard_log_parse_issues_total{code="not-kernel"}'] == 0
    assert s['egressguard_log_lines_total{result="skipped"}'] == 10
    assert s['egressguard_log_source_events_total{event="rotation"}'] == 2
    assert s["egressguard_log_lag_seconds"] == 10.5
    assert s["egressguard_log_last_event_timestamp_seconds"] == 1_737_303_226


def test_text_format_escapes_label_values() -> None:
    m = Metrics()
    m.observe_event(ev(set='we"ird\\set\nname'), now=NOW)
    text = m.render()
    assert 'set="we\\"ird\\\\set\\nname"' in text
    assert text.endswith("\n")
    # every family has HELP and TYPE before its samples
    names = re.findall(r"^# TYPE (\S+) (counter|gauge)$", text, flags=re.M)
    assert {n for n, _ in names} >= {
        "egressguard_blocked_packets_total",
        "egressguard_log_lines_total",
    }


def test_render_text_numbers() -> None:
    from egressguard.logs.metrics import MetricFamily, Sample

    text = render_text(
        [MetricFamily("x", "gauge", "h", (Sample((), 1.5), Sample((("a", "b"),), 2.0)))]
    )
    assert text == '# HELP x h\n# TYPE x gauge\nx 1.5\nx{a="b"} 2\n'

"""Fold events into Prometheus-style counters with bounded label cardinality (pure, no I/O).

The HTTP exposition lives in ``egressguard.adapters.metrics``; this module only counts and
renders the text format (version 0.0.4), so the counting is testable without a server and the
core never imports a metrics library.

Series (all prefixed ``egressguard_``):

- ``blocked_packets_total{set,country,namespace,proto}`` and ``blocked_flows_total{...}``:
  packets (``repeat_count`` when enrichment de-duplicated them, else 1) and flows (a
  (src, dst, proto, ports) tuple not seen in the last ``flow_window`` seconds);
- ``blocked_packets_by_feed_total{feed}`` / ``blocked_flows_by_feed_total{feed}``: a destination
  can sit in several feeds; it counts once in each, so these are kept apart from the series
  above, whose sums stay exact;
- ``log_lines_total{result}`` (event, issue, skipped, filtered), ``log_parse_issues_total{code}``;
- ``log_lag_seconds`` (time between an event's own timestamp and when it was folded) and
  ``log_last_event_timestamp_seconds``;
- ``log_source_events_total{event}`` (rotation, truncation, reopen, lost) from the follower;
- ``metrics_label_overflow_total{label}``: how often a value was folded into ``other``.

Cardinality: enrichment fields are ``unknown`` when absent. Each label admits its first
``top_n`` distinct values (default 20); later values become ``other``. (A true top-N by
frequency would move counts between series, which counters must never do.) ``proto`` is the
parser's bounded protocol name. A ``max_series`` cap (default 2000) folds any further label
combination into the all-``other`` series. Values are cut to 64 characters.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import UTC, tzinfo
from typing import NamedTuple

from egressguard.logs.events import ISSUE_CODES, Event, Issue, event_epoch

__all__ = ["MetricFamily", "Metrics", "Sample", "render_text"]

UNKNOWN = "unknown"
OTHER = "other"
MAX_VALUE_LENGTH = 64
BLOCK_LABELS = ("set", "country", "namespace", "proto")
SOURCE_EVENTS = ("rotation", "truncation", "reopen", "lost")
LINE_RESULTS = ("event", "issue", "skipped", "filtered")
#: ``ParseStats`` count -> the ``result`` it is exposed as (``LINE_RESULTS``)
_LINE_COUNTS = {"events": "event", "issues": "issue", "skipped": "skipped", "filtered": "filtered"}


class Sample(NamedTuple):
    labels: tuple[tuple[str, str], ...]
    value: float


class MetricFamily(NamedTuple):
    name: str
    type: str  # "counter" | "gauge"
    help: str
    samples: tuple[Sample, ...]


class _Limiter:
    """First ``top_n`` distinct values pass, the rest become ``other``."""

    __slots__ = ("admitted", "overflow", "top_n")

    def __init__(self, top_n: int) -> None:
        self.top_n = top_n
        self.admitted: set[str] = set()
        self.overflow = 0

    def __call__(self, value: str | None) -> str:
        if value is None or value == "":
            return UNKNOWN
        value = value[:MAX_VALUE_LENGTH]
        if value in self.admitted:
            return value
        if len(self.admitted) < self.top_n:
            self.admitted.add(value)
            return value
        self.overflow += 1
        return OTHER


class Metrics:
    """The counters one follower exposes. Feed it events, issues and parser/source counts."""

    def __init__(
        self,
        *,
        top_n: int = 20,
        max_series: int = 2000,
        flow_window: float = 120.0,
        flow_capacity: int = 100_000,
        naive_tz: tzinfo | None = None,
    ) -> None:
        self.max_series = max_series
        self.flow_window = flow_window
        self.flow_capacity = flow_capacity
        self.naive_tz = naive_tz
        self._limit = {name: _Limiter(top_n) for name in (*BLOCK_LABELS, "feed")}
        self.packets: dict[tuple[str, ...], float] = {}
        self.flows: dict[tuple[str, ...], float] = {}
        self.feed_packets: dict[str, float] = {}
        self.feed_flows: dict[str, float] = {}
        self.issues: dict[str, float] = dict.fromkeys(ISSUE_CODES, 0.0)
        self.lines: dict[str, float] = dict.fromkeys(LINE_RESULTS, 0.0)
        self.source: dict[str, float] = dict.fromkeys(SOURCE_EVENTS, 0.0)
        self.series_overflow = 0
        self.lag: float | None = None
        self.last_event_time: float | None = None
        self._recent: OrderedDict[tuple[object, ...], float] = OrderedDict()

    # -- folding -------------------------------------------------------------------------

    def _key(self, event: Event) -> tuple[str, ...]:
        limit = self._limit
        key = (
            limit["set"](event.set),
            limit["country"](event.country),
            limit["namespace"](event.src_namespace),
            limit["proto"](event.proto),
        )
        if key not in self.packets and len(self.packets) >= self.max_series:
            self.series_overflow += 1
            return (OTHER, OTHER, OTHER, OTHER)
        return key

    def _new_flow(self, event: Event, now: float) -> bool:
        flow = (event.src, event.dst, event.proto_num, event.src_port, event.dst_port)
        recent = self._recent
        while recent:
            oldest, seen = next(iter(recent.items()))
            if now - seen <= self.flow_window and len(recent) < self.flow_capacity:
                break
            del recent[oldest]
        seen = recent.pop(flow, -1.0)
        recent[flow] = now
        return seen < 0 or now - seen > self.flow_window

    def observe_event(self, event: Event, *, now: float) -> None:
        """Count one event; ``now`` is the wall clock (seconds since the epoch)."""
        packets = float(event.repeat_count or 1)
        new_flow = self._new_flow(event, now)
        key = self._key(event)
        self.packets[key] = self.packets.get(key, 0.0) + packets
        if new_flow:
            self.flows[key] = self.flows.get(key, 0.0) + 1.0
        elif key not in self.flows:
            self.flows[key] = 0.0
        for feed in event.feeds or (None,):
            name = self._limit["feed"](feed)
            self.feed_packets[name] = self.feed_packets.get(name, 0.0) + packets
            self.feed_flows[name] = self.feed_flows.get(name, 0.0) + (1.0 if new_flow else 0.0)
        when = event_epoch(event, naive_tz=self.naive_tz or UTC)
        if when is not None:
            self.last_event_time = when
            self.lag = max(0.0, now - when)

    def observe_issue(self, issue: Issue) -> None:
        self.issues[issue.code] = self.issues.get(issue.code, 0.0) + 1.0

    def observe_lines(self, counts: Mapping[str, int]) -> None:
        """Mirror the parser's monotonic counts (``ParseStats.as_dict()``)."""
        for name, result in _LINE_COUNTS.items():
            self.lines[result] = float(counts.get(name, 0))

    def observe_source(self, counts: Mapping[str, int]) -> None:
        """Mirror the follower's monotonic counts (rotation, truncation, reopen, lost)."""
        for name in SOURCE_EVENTS:
            self.source[name] = float(counts.get(name, 0))

    # -- reading -------------------------------------------------------------------------

    def families(self) -> list[MetricFamily]:
        """Every series, in a stable order."""

        def labelled(
            names: tuple[str, ...], table: Mapping[tuple[str, ...], float]
        ) -> tuple[Sample, ...]:
            return tuple(
                Sample(tuple(zip(names, key, strict=True)), value)
                for key, value in sorted(table.items())
            )

        def single(name: str, table: Mapping[str, float]) -> tuple[Sample, ...]:
            return tuple(Sample(((name, k),), v) for k, v in sorted(table.items()))

        overflow = {name: float(limit.overflow) for name, limit in self._limit.items()}
        overflow["series"] = float(self.series_overflow)
        out = [
            MetricFamily(
                "egressguard_blocked_packets_total",
                "counter",
                "Blocked packets seen in the kernel log, by network set, country, source "
                "namespace and protocol.",
                labelled(BLOCK_LABELS, self.packets),
            ),
            MetricFamily(
                "egressguard_blocked_flows_total",
                "counter",
                "Blocked flows (new src/dst/proto/ports tuples within the flow window).",
                labelled(BLOCK_LABELS, self.flows),
            ),
            MetricFamily(
                "egressguard_blocked_packets_by_feed_total",
                "counter",
                "Blocked packets by feed; a destination in several feeds counts in each.",
                single("feed", self.feed_packets),
            ),
            MetricFamily(
                "egressguard_blocked_flows_by_feed_total",
                "counter",
                "Blocked flows by feed; a destination in several feeds counts in each.",
                single("feed", self.feed_flows),
            ),
            MetricFamily(
                "egressguard_log_lines_total",
                "counter",
                "Log lines read, by result (event, issue, skipped, filtered).",
                single("result", self.lines),
            ),
            MetricFamily(
                "egressguard_log_parse_issues_total",
                "counter",
                "Rejected log lines by reason.",
                single("code", self.issues),
            ),
            MetricFamily(
                "egressguard_log_source_events_total",
                "counter",
                "Follower events: rotation, truncation, reopen, lost records.",
                single("event", self.source),
            ),
            MetricFamily(
                "egressguard_metrics_label_overflow_total",
                "counter",
                "Label values folded into 'other' by the cardinality limits.",
                single("label", overflow),
            ),
        ]
        if self.lag is not None:
            out.append(
                MetricFamily(
                    "egressguard_log_lag_seconds",
                    "gauge",
                    "Seconds between the last event's own timestamp and when it was read.",
                    (Sample((), self.lag),),
                )
            )
        if self.last_event_time is not None:
            out.append(
                MetricFamily(
                    "egressguard_log_last_event_timestamp_seconds",
                    "gauge",
                    "Timestamp of the last event, seconds since the epoch.",
                    (Sample((), self.last_event_time),),
                )
            )
        return out

    def render(self) -> str:
        return render_text(self.families())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def render_text(families: Iterable[MetricFamily]) -> str:
    """The Prometheus text exposition format (0.0.4)."""
    lines: list[str] = []
    for family in families:
        help_text = family.help.replace("\\", "\\\\").replace("\n", "\\n")
        lines.append(f"# HELP {family.name} {help_text}")
        lines.append(f"# TYPE {family.name} {family.type}")
        for sample in family.samples:
            if sample.labels:
                inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sample.labels)
                lines.append(f"{family.name}{{{inner}}} {_number(sample.value)}")
            else:
                lines.append(f"{family.name} {_number(sample.value)}")
    return "\n".join(lines) + "\n"

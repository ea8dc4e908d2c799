"""Kernel packet-log parsing: blocked-packet lines → events, issues and metrics (pure, no I/O).

Layer 1 (``wrapper``) takes the syslog/journald/dmesg/kmsg wrapper off; layer 2 (``payload``)
parses the netfilter payload exactly as ``nf_log_syslog.c`` prints it. ``parse.LogParser``
joins them with a fast path for the common Calico shape. ``metrics`` folds events into
bounded counters. Spec: reference/netfilter-log-format.md; schema: docs/log-events.md.
"""

from __future__ import annotations

from egressguard.logs.events import Event, Issue, Packet, event_to_json, issue_to_json
from egressguard.logs.parse import LogParser, ParseStats, parse_line, parse_lines

__all__ = [
    "Event",
    "Issue",
    "LogParser",
    "Packet",
    "ParseStats",
    "event_to_json",
    "issue_to_json",
    "parse_line",
    "parse_lines",
]

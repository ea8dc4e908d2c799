"""Tor exit lists (shared reference feed-and-geo-formats.md §10).

``exit-addresses`` (TorDNSEL) has records of ``ExitNode <fingerprint>``, ``Published``,
``LastStatus`` and one or more ``ExitAddress <ip> <date> <time>`` lines. Only ``ExitAddress``
lines carry addresses; many relays share an address, so the count of *unique* addresses is
what matters (``entries`` counts ExitAddress lines, the set holds unique addresses). The
newest ``ExitAddress`` time is taken as the feed date. The simpler bulk list
(``torbulkexitlist``, one IP per line) is a ``plain`` list.
"""

from __future__ import annotations

from typing import Any

from egressguard.feeds.result import (
    Collector,
    FeedFormatError,
    FeedMeta,
    ParsedFeed,
    decode_text,
    numbered_lines,
)

__all__ = ["parse_tor_exits"]

_KEYWORDS = ("ExitNode", "Published", "LastStatus", "ExitAddress")


def parse_tor_exits(data: bytes, options: dict[str, Any] | None = None) -> ParsedFeed:
    text = decode_text(data, what="tor-exits")
    out = Collector()
    nodes = 0
    newest: str | None = None
    for number, line in numbered_lines(text):
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word == "ExitNode":
            nodes += 1
        elif word == "ExitAddress":
            fields = rest.split()
            if not fields:
                out.issue(number, "ExitAddress without an address", line)
                continue
            out.add_line(number, fields[0])
            if len(fields) >= 3:
                stamp = f"{fields[1]}T{fields[2]}+00:00"
                newest = stamp if newest is None or stamp > newest else newest
        elif word not in _KEYWORDS:
            out.issue(number, f"unknown keyword {word!r}", line)
    if nodes == 0 and out.entries == 0 and out.issue_count:
        raise FeedFormatError("tor-exits: no ExitNode records: not a TorDNSEL exit list")
    return out.finish("tor-exits", FeedMeta(date=newest, extra={"exit_nodes": str(nodes)}))

"""Spamhaus DROP in both published forms (shared reference feed-and-geo-formats.md §7).

* ``spamhaus-text`` (``drop.txt``, ``dropv6.txt``): ``;`` comments, ``CIDR ; SBLnnn`` lines, and
  a final ``; EOF`` line. The trailer is the truncation check: without it the download is
  incomplete and the whole file is refused. The header's ``Last-Modified:`` (or the title's
  ``YYYY/MM/DD``) becomes the feed date; the real files carry a malformed ``Expires:`` line,
  which is therefore ignored.
* ``spamhaus-json`` (``drop_v4.json``, ``drop_v6.json``): one JSON object per line, each
  ``{"cidr": ..., "sblid": ..., "rir": ...}``, and a last line ``{"type": "metadata",
  "timestamp": ..., "records": N, ...}``. A missing metadata line, a ``records`` count that
  differs from the data lines, or data after the metadata refuses the file.

Spamhaus asks for at most one download per hour (``MIN_INTERVAL``); ``app.sources`` enforces it.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from egressguard.feeds.result import (
    Collector,
    FeedFormatError,
    FeedMeta,
    ParsedFeed,
    decode_text,
    numbered_lines,
    utc_date,
)

__all__ = ["MIN_INTERVAL", "parse_spamhaus_json", "parse_spamhaus_text"]

#: Seconds between downloads that Spamhaus allows (their DROP FAQ: not more than once an hour).
MIN_INTERVAL = 3600

_TITLE_DATE = re.compile(r"(\d{4})/(\d{2})/(\d{2})")
_LAST_MODIFIED = re.compile(r"^;\s*Last-Modified:\s*(.+?)\s*$", re.IGNORECASE)


def parse_spamhaus_text(data: bytes, options: dict[str, Any] | None = None) -> ParsedFeed:
    text = decode_text(data, what="spamhaus-text")
    out = Collector()
    date: str | None = None
    seen_eof = False
    for number, line in numbered_lines(text):
        if not line:
            continue
        if line.startswith(";"):
            body = line[1:].strip()
            if body.upper() == "EOF":
                seen_eof = True
            elif m := _LAST_MODIFIED.match(line):
                stamp = utc_date(m.group(1), "%a, %d %b %Y %H:%M:%S UTC")
                date = stamp or date or m.group(1)
            elif date is None and number == 1 and (t := _TITLE_DATE.search(body)):
                date = f"{t.group(1)}-{t.group(2)}-{t.group(3)}"
            continue
        if seen_eof:
            raise FeedFormatError(
                "spamhaus-text: entries after '; EOF': the file was altered or concatenated"
            )
        out.add_line(number, line)
    if not seen_eof:
        raise FeedFormatError(
            "spamhaus-text: no '; EOF' line: the download is incomplete",
            hint="Spamhaus lists end with '; EOF'; the last good copy is kept",
        )
    return out.finish("spamhaus-text", FeedMeta(date=date))


def parse_spamhaus_json(data: bytes, options: dict[str, Any] | None = None) -> ParsedFeed:
    text = decode_text(data, what="spamhaus-json")
    out = Collector()
    metadata: dict[str, Any] | None = None
    records = 0
    for number, line in numbered_lines(text):
        if not line:
            continue
        if metadata is not None:
            raise FeedFormatError(
                "spamhaus-json: data after the metadata line: the file was altered"
            )
        try:
            obj = json.loads(line)
        except ValueError:
            out.issue(number, "not a JSON object", line)
            continue
        if not isinstance(obj, dict):
            out.issue(number, "not a JSON object", line)
            continue
        if obj.get("type") == "metadata":
            metadata = obj
            continue
        records += 1
        cidr = obj.get("cidr")
        if not isinstance(cidr, str):
            out.issue(number, "record without a 'cidr' string", line)
            continue
        out.add_line(number, cidr.strip())
    if metadata is None:
        raise FeedFormatError(
            "spamhaus-json: no metadata line at the end: the download is incomplete",
            hint='the last line of a Spamhaus JSON list is {"type": "metadata", ...}',
        )
    declared = metadata.get("records")
    if not isinstance(declared, int) or declared != records:
        raise FeedFormatError(
            f"spamhaus-json: metadata says records={declared!r} but {records} data lines "
            "were read: truncated or altered"
        )
    date = None
    stamp = metadata.get("timestamp")
    if isinstance(stamp, int | float):
        date = datetime.fromtimestamp(stamp, UTC).isoformat()
    extra: dict[str, str] = {k: str(metadata[k]) for k in ("copyright", "terms") if k in metadata}
    return out.finish("spamhaus-json", FeedMeta(date=date, declared=declared, extra=extra))

"""Plain lists: one address, CIDR or range per line (FireHOL netset/ipset, abuse.ch, ipdeny, ...).

Line grammar (shared-reference feed-and-geo-formats.md, general rules and §8, §9):

* ``#`` and ``;`` start comments, at the beginning of a line or after whitespace
  (``1.10.16.0/20 ; SBL256894``), as FireHOL's ``iprange`` treats them.
* An entry is an address, a CIDR (host bits are cleared, with a note) or a range ``a-b`` /
  ``a - b``: the grammar of ``egressguard.cidr.parse``, whose fast bulk parser reads the body.
* Lines that are not entries become counted issues with their line number; hostnames are never
  resolved (iprange would, and pfBlockerNG learned what that costs).

Self-checks, when the file carries them:

* FireHOL header ``# Entries : N subnets, M unique IPs`` (netset) or ``# Entries : M unique
  IPs`` (ipset): N must equal the entries read and M the addresses they cover. FireHOL writes
  iprange-merged lists, so a mismatch means a truncated or altered file. ``Source File Date``
  becomes the feed date.
* abuse.ch trailer ``# END n entries``: n must equal the entries read. ``Last updated:`` is the
  feed date. Format ``abusech`` *requires* the trailer, so a cut download is caught even when
  the cut falls on a line boundary.
"""

from __future__ import annotations

import re
from typing import Any

from egressguard.feeds.result import (
    Collector,
    FeedFormatError,
    FeedMeta,
    ParsedFeed,
    decode_text,
    numbered_lines,
    parse_list,
    utc_date,
)

__all__ = ["parse_abusech", "parse_plain"]

_FIREHOL_ENTRIES = re.compile(
    r"^#\s*Entries\s*:\s*(?:(\d+)\s+subnets?,\s*)?(\d+)\s+unique\s+IPs", re.IGNORECASE
)
_FIREHOL_DATE = re.compile(r"^#\s*Source File Date\s*:\s*(.+?)\s*$", re.IGNORECASE)
_ABUSECH_END = re.compile(r"^#\s*END\s+(\d+)\s+entries\b", re.IGNORECASE)
_ABUSECH_DATE = re.compile(r"^#\s*Last updated\s*:\s*(.+?)\s*#?\s*$", re.IGNORECASE)
_HEADER_FACTS = re.compile(r"^#\s*(Maintainer|Version|Category|List source URL)\s*:\s*(.+?)\s*$")


def parse_plain(data: bytes, options: dict[str, Any] | None = None) -> ParsedFeed:
    """A plain list. Checks FireHOL and abuse.ch self-descriptions when they are present."""
    return _parse(data, "plain", require_trailer=False)


def parse_abusech(data: bytes, options: dict[str, Any] | None = None) -> ParsedFeed:
    """An abuse.ch text list: like ``plain``, but the ``# END n entries`` trailer is required."""
    return _parse(data, "abusech", require_trailer=True)


def _parse(data: bytes, fmt: str, *, require_trailer: bool) -> ParsedFeed:
    text = decode_text(data, what=fmt)
    declared_subnets: int | None = None
    declared_ips: int | None = None
    trailer: int | None = None
    trailer_line = 0
    date: str | None = None
    extra: dict[str, str] = {}
    for number, line in numbered_lines(text):
        if not line:
            continue
        if line[0] != "#":
            if trailer is not None and line[0] != ";":
                raise FeedFormatError(
                    f"{fmt}: entries after the '# END {trailer} entries' trailer "
                    f"(line {trailer_line}): the file was altered or concatenated"
                )
            continue
        if m := _FIREHOL_ENTRIES.match(line):
            declared_subnets = int(m.group(1)) if m.group(1) else None
            declared_ips = int(m.group(2))
        elif m := _FIREHOL_DATE.match(line):
            date = utc_date(m.group(1), "%a %b %d %H:%M:%S UTC %Y") or m.group(1)
        elif m := _ABUSECH_END.match(line):
            trailer, trailer_line = int(m.group(1)), number
        elif m := _ABUSECH_DATE.match(line):
            date = utc_date(m.group(1), "%Y-%m-%d %H:%M:%S UTC") or m.group(1)
        elif m := _HEADER_FACTS.match(line):
            extra[m.group(1).lower().replace(" ", "_")] = m.group(2)
    parsed = parse_list(text)
    out = Collector()
    out.add_parsed(parsed)
    addresses = parsed.v4.address_count + parsed.v6.address_count
    declared: int | None = None
    if declared_subnets is not None and declared_subnets != out.entries:
        raise FeedFormatError(
            f"{fmt}: the FireHOL header declares {declared_subnets} subnets but "
            f"{out.entries} entries were read: truncated or altered"
        )
    if declared_ips is not None:
        if declared_ips != addresses:
            raise FeedFormatError(
                f"{fmt}: the FireHOL header declares {declared_ips} unique IPs but the entries "
                f"read cover {addresses}: truncated or altered"
            )
        declared = declared_subnets if declared_subnets is not None else declared_ips
    if trailer is not None:
        if trailer != out.entries:
            raise FeedFormatError(
                f"{fmt}: the trailer says '# END {trailer} entries' but {out.entries} "
                "entries were read: truncated or altered"
            )
        declared = trailer
    elif require_trailer:
        raise FeedFormatError(
            f"{fmt}: no '# END <n> entries' trailer: the download is incomplete",
            hint="abuse.ch lists end with that line; retry later",
        )
    return out.finish(fmt, FeedMeta(date=date, declared=declared, extra=extra))

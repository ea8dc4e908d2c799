"""CSV feeds: the address is one column, chosen by name or by index.

Options (the source's ``csv:`` mapping, or keys beside ``format: csv``):

* ``column``: a header name (``dst_ip``) or a **0-based** index (``1``), like Calico
  Enterprise's GlobalThreatFeed ``csv.fieldNum``. Required.
* ``header``: whether the first non-comment row is a header; defaults to true when ``column``
  is a name and false when it is an index. When the name is not in the first row, the last
  comment line before the data is tried as the header: abuse.ch writes its header as
  ``# first_seen_utc,dst_ip,dst_port,...``.
* ``delimiter``: one character, default ``,``. ``comment``: default ``#``.

The cell may hold an address, a CIDR or a range. Quoted cells (with commas inside) are read
with the ``csv`` module, one physical line at a time so issues keep their line numbers.
"""

from __future__ import annotations

import csv
from typing import Any

from egressguard.feeds.result import (
    Collector,
    FeedFormatError,
    FeedMeta,
    ParsedFeed,
    decode_text,
    numbered_lines,
)

__all__ = ["parse_csv"]


def _row(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line], delimiter=delimiter), [])


def parse_csv(data: bytes, options: dict[str, Any] | None = None) -> ParsedFeed:
    opts = options or {}
    column = opts.get("column")
    if not isinstance(column, str | int) or isinstance(column, bool):
        raise FeedFormatError(
            "csv: the source needs 'column' (a header name or a 0-based index)",
            hint="e.g. column: dst_ip, or column: 1",
        )
    delimiter = str(opts.get("delimiter", ","))
    comment = str(opts.get("comment", "#"))
    header = bool(opts.get("header", isinstance(column, str)))
    text = decode_text(data, what="csv")
    out = Collector()
    index: int | None = column if isinstance(column, int) else None
    last_comment: str | None = None
    seen_first = False
    for number, line in numbered_lines(text):
        if not line:
            continue
        if comment and line.startswith(comment):
            last_comment = line[len(comment) :].strip()
            continue
        cells = [c.strip() for c in _row(line, delimiter)]
        if not seen_first:
            seen_first = True
            if index is None:
                # the named column is in this first row, or in the commented header above it
                names = [c.strip() for c in _row(last_comment, delimiter)] if last_comment else []
                if column in cells:
                    index = cells.index(str(column))
                    continue
                if column not in names:
                    raise FeedFormatError(
                        f"csv: no column named {column!r} in the header (line {number})",
                        hint=f"the header has: {', '.join(cells[:12])}",
                    )
                index = names.index(str(column))
            elif header:
                continue
        if index is None:  # pragma: no cover - set on the first row above
            raise AssertionError("column index unset")
        if index >= len(cells):
            out.issue(number, f"row has {len(cells)} cells, column {index} is missing", line)
            continue
        cell = cells[index]
        if not cell:
            out.issue(number, "empty address cell", line)
            continue
        out.add_line(number, cell)
    return out.finish("csv", FeedMeta())

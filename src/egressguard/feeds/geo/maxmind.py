"""MaxMind GeoLite2/GeoIP2 Country: the CSV edition and the country field of MMDB records.

**Which country counts** (``country_field``), the same choice for CSV and MMDB:

* ``country`` (default): where the block is *used* (CSV ``geoname_id``, MMDB ``country``),
  falling back to where it is *registered* (``registered_country``) when the block has no
  used-in country or only a continent (GeoLite2 places some blocks only on a continent,
  e.g. geoname 6255148 Europe, and leaves ``geoname_id`` empty for others such as 1.0.0.0/24).
  Set ``country_fallback: false`` to drop such blocks instead.
* ``registered_country``: where the ISP registered the block (what RIR data says too).
* ``represented_country``: the country represented by the users (military bases); rare.
* ``any``: every country named by any of the three, FireHOL's choice; a network may then be
  in two countries' sets.

Blocks placed nowhere under the chosen policy are counted in ``skipped``.

**CSV edition** (shared reference §1): ``GeoLite2-Country-Blocks-IPv4.csv`` and ``-IPv6.csv``
(``network,geoname_id,registered_country_geoname_id,represented_country_geoname_id,...``, 6
columns in older files, 7 with ``is_anycast``), joined on ``geoname_id`` with
``GeoLite2-Country-Locations-<lang>.csv`` for ``country_iso_code``. Given either the download
zip (one dated folder) or the files themselves. Columns are found by header name.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from egressguard.cidr import addresses
from egressguard.feeds.geo import normalise_code
from egressguard.feeds.result import (
    Blob,
    Collector,
    FeedFormatError,
    FeedMeta,
    ParsedFeed,
    decode_text,
    expand_archives,
)

__all__ = [
    "COUNTRY_FIELDS",
    "countries_of_record",
    "parse_maxmind_csv",
    "parse_mmdb_records",
]

COUNTRY_FIELDS = ("country", "registered_country", "represented_country", "any")
_CSV_COLUMN = {
    "country": "geoname_id",
    "registered_country": "registered_country_geoname_id",
    "represented_country": "represented_country_geoname_id",
}
_DATED = re.compile(r"(GeoLite2|GeoIP2)-Country-CSV_(\d{4})(\d{2})(\d{2})")


def _policy(options: Mapping[str, Any] | None) -> tuple[str, bool]:
    opts = options or {}
    field = str(opts.get("country_field", "country"))
    if field not in COUNTRY_FIELDS:
        raise FeedFormatError(
            f"maxmind: unknown country_field {field!r}",
            hint=f"one of: {', '.join(COUNTRY_FIELDS)}",
        )
    return field, bool(opts.get("country_fallback", True))


def _choose(codes: Mapping[str, str | None], field: str, fallback: bool) -> list[str]:
    """Countries for one block given its codes per field (None = empty or continent only)."""
    if field == "any":
        return sorted({c for c in codes.values() if c})
    code = codes.get(field)
    if code is None and field == "country" and fallback:
        code = codes.get("registered_country")
    return [code] if code else []


def countries_of_record(record: Any, field: str = "country", fallback: bool = True) -> list[str]:
    """ISO codes an MMDB Country record counts for under the policy above."""
    codes: dict[str, str | None] = {}
    if isinstance(record, Mapping):
        for key in ("country", "registered_country", "represented_country"):
            part = record.get(key)
            iso = part.get("iso_code") if isinstance(part, Mapping) else None
            codes[key] = normalise_code(iso) if isinstance(iso, str) else None
    return _choose(codes, field, fallback)


def parse_mmdb_records(
    records: Iterable[tuple[int, int, int, Any]],
    options: Mapping[str, Any] | None = None,
    *,
    meta: Mapping[str, str] | None = None,
) -> ParsedFeed:
    """``(family, first, last, record)`` tuples (from ``adapters.geodb``) → per-country sets."""
    field, fallback = _policy(options)
    out = Collector()
    for family, first, last, record in records:
        codes = countries_of_record(record, field, fallback)
        if not codes:
            out.skipped += 1
            continue
        for code in codes:
            out.add(family, first, last, code)
        out.entries += 1
    extra = dict(meta or {})
    return out.finish("maxmind-mmdb", FeedMeta(date=extra.pop("date", None), extra=extra))


def _rows(blob: Blob) -> tuple[list[str], list[tuple[int, list[str]]]]:
    text = decode_text(blob.data, what=f"maxmind-csv {blob.name}")
    lines = text.splitlines()
    rows = list(csv.reader(lines))
    if not rows:
        return [], []
    return rows[0], [(n, row) for n, row in enumerate(rows[1:], start=2) if row]


def parse_maxmind_csv(
    blobs: Sequence[Blob], options: Mapping[str, Any] | None = None
) -> ParsedFeed:
    field, fallback = _policy(options)
    files = expand_archives(blobs, what="maxmind-csv")
    blocks = [b for b in files if "Blocks-IPv" in b.name]
    locs = [b for b in files if "Locations-" in b.name]
    if not blocks or not locs:
        raise FeedFormatError(
            "maxmind-csv: need the Blocks-IPv4/IPv6 and a Locations-<lang> CSV "
            f"(got: {', '.join(b.name for b in files) or 'nothing'})",
            hint="give the GeoLite2-Country-CSV zip, or the CSV files from it",
        )
    # English names are not needed, only codes; any language file has the same codes.
    loc = sorted(locs, key=lambda b: ("Locations-en" not in b.name, b.name))[0]
    header, rows = _rows(loc)
    if "geoname_id" not in header or "country_iso_code" not in header:
        raise FeedFormatError(f"maxmind-csv {loc.name}: not a Locations file (header {header})")
    gi, ci = header.index("geoname_id"), header.index("country_iso_code")
    iso: dict[str, str | None] = {}
    for _n, row in rows:
        if len(row) > max(gi, ci):
            iso[row[gi]] = normalise_code(row[ci])
    out = Collector()
    for blob in blocks:
        out.file = blob.name.rsplit("/", 1)[-1]
        header, rows = _rows(blob)
        if "network" not in header:
            raise FeedFormatError(f"maxmind-csv {blob.name}: not a Blocks file (header {header})")
        ni = header.index("network")
        cols = {key: header.index(col) for key, col in _CSV_COLUMN.items() if col in header}
        for number, row in rows:
            if len(row) <= ni:
                out.issue(number, "short row", ",".join(row))
                continue
            try:
                cidr = addresses.parse_cidr(row[ni], strict=True)
            except ValueError as exc:
                out.issue(number, str(exc), ",".join(row))
                continue
            codes: dict[str, str | None] = {}
            unknown = False
            for key, idx in cols.items():
                gid = row[idx] if idx < len(row) else ""
                if gid and gid not in iso:
                    unknown = True
                codes[key] = iso.get(gid) if gid else None
            if unknown:
                out.issue(number, "geoname_id not in the Locations file", ",".join(row))
            chosen = _choose(codes, field, fallback)
            if not chosen:
                out.skipped += 1
                continue
            for code in chosen:
                out.add(cidr.family, cidr.first, cidr.last, code)
            out.entries += 1
    date = None
    extra: dict[str, str] = {"locations": loc.name.rsplit("/", 1)[-1]}
    for b in files:
        if m := _DATED.search(b.name):
            date = f"{m.group(2)}-{m.group(3)}-{m.group(4)}"
            extra["edition"] = m.group(0)
            break
    return out.finish("maxmind-csv", FeedMeta(date=date, extra=extra))

"""IP2Location LITE DB1 CSV: ``"ip_from","ip_to","country_code","country_name"`` (reference §4).

Addresses are **decimal integers**, ranges inclusive, ``"-"`` marks unallocated space (skipped).
The IPv6 edition (``IP2LOCATION-LITE-DB1.IPV6.CSV``) numbers everything in 128 bits and embeds
the IPv4 data three more times, which must not become IPv6 blocks of their own:

* ``::ffff:0:0/96`` (IPv4-mapped) is mapped back to IPv4;
* ``2002::/16`` (6to4) and ``2001::/32`` (Teredo) are derived copies of IPv4 data and are cut
  out (IP2Location's own libraries treat them that way), counted in metadata.

A file is read in 128-bit numbering when any value exceeds 2^32-1 (the IPv6 edition always
reaches ``ffff:...``); otherwise as IPv4. Licence: the LITE terms require the attribution
sentence kept in the result's metadata.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from typing import Any

from egressguard.feeds.geo import PSEUDO_CODES, normalise_code
from egressguard.feeds.result import Blob, Collector, FeedMeta, ParsedFeed, decode_text

__all__ = ["ATTRIBUTION", "parse_ip2location_csv"]

ATTRIBUTION = "This product uses the IP2Location LITE database for IP geolocation"

_V4_MAX = (1 << 32) - 1
_MAPPED = (0xFFFF << 32, (0xFFFF << 32) | _V4_MAX)  # ::ffff:0:0/96
_DERIVED = (
    (0x2002 << 112, ((0x2002 << 112) | ((1 << 112) - 1))),  # 2002::/16 6to4
    (0x2001 << 112, ((0x2001 << 112) | ((1 << 96) - 1))),  # 2001::/32 Teredo
)


def _cut(lo: int, hi: int, window: tuple[int, int]) -> list[tuple[int, int]]:
    """``[lo, hi]`` minus ``window``: zero, one or two pieces."""
    a, b = window
    if hi < a or lo > b:
        return [(lo, hi)]
    pieces = []
    if lo < a:
        pieces.append((lo, a - 1))
    if hi > b:
        pieces.append((b + 1, hi))
    return pieces


def parse_ip2location_csv(
    blobs: Sequence[Blob], options: Mapping[str, Any] | None = None
) -> ParsedFeed:
    out = Collector()
    derived = 0
    for blob in blobs:
        out.file = blob.name.rsplit("/", 1)[-1]
        text = decode_text(blob.data, what=f"ip2location-csv {blob.name}")
        rows: list[tuple[int, list[str]]] = [
            (n, row) for n, row in enumerate(csv.reader(text.splitlines()), start=1) if row
        ]
        wide = any(
            len(row) >= 2 and row[1].strip().isdigit() and int(row[1]) > _V4_MAX for _n, row in rows
        )
        for number, row in rows:
            if len(row) < 3:
                out.issue(number, f"expected 4 columns, got {len(row)}", ",".join(row))
                continue
            code = normalise_code(row[2])
            if code is None or code in PSEUDO_CODES:
                out.skipped += 1
                continue
            lo_text, hi_text = row[0].strip(), row[1].strip()
            if not (lo_text.isdigit() and hi_text.isdigit()):
                out.issue(number, "ip_from/ip_to are not decimal integers", ",".join(row))
                continue
            lo, hi = int(lo_text), int(hi_text)
            if hi < lo or hi >= (1 << (128 if wide else 32)):
                out.issue(number, "ip_from/ip_to do not form a range", ",".join(row))
                continue
            if not wide:
                out.add(4, lo, hi, code)
                out.entries += 1
                continue
            pieces = [(lo, hi)]
            for window in _DERIVED:
                pieces = [p for lo_, hi_ in pieces for p in _cut(lo_, hi_, window)]
            if sum(b - a + 1 for a, b in pieces) != hi - lo + 1:
                derived += 1
            for a, b in pieces:
                ma, mb = max(a, _MAPPED[0]), min(b, _MAPPED[1])
                if ma <= mb:
                    out.add(4, ma - _MAPPED[0], mb - _MAPPED[0], code)
                for pa, pb in _cut(a, b, _MAPPED):
                    out.add(6, pa, pb, code)
            if pieces:
                out.entries += 1
    extra = {"attribution": ATTRIBUTION, "derived_rows_cut": str(derived)}
    return out.finish("ip2location-csv", FeedMeta(extra=extra))

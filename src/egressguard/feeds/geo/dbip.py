"""DB-IP "IP to Country Lite" CSV: ``ip_start,ip_end,country_code`` (shared reference §3).

No header, inclusive ranges that are **not** CIDR-aligned (``1.32.200.0,1.32.202.128,SG``),
IPv4 and IPv6 rows possibly in one file, optionally gzipped (``.csv.gz``, unpacked here).
``ZZ`` marks unknown space and is skipped. Licence CC BY 4.0: attribution to DB-IP.com is
recorded in the result's metadata so the build can carry it.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from typing import Any

from egressguard.cidr import addresses
from egressguard.feeds.geo import PSEUDO_CODES, normalise_code
from egressguard.feeds.result import Blob, Collector, FeedMeta, ParsedFeed, decode_text

__all__ = ["ATTRIBUTION", "parse_dbip_csv"]

ATTRIBUTION = "IP Geolocation by DB-IP (https://db-ip.com), CC BY 4.0"


def parse_dbip_csv(blobs: Sequence[Blob], options: Mapping[str, Any] | None = None) -> ParsedFeed:
    out = Collector()
    for blob in blobs:
        out.file = blob.name.rsplit("/", 1)[-1]
        text = decode_text(blob.data, what=f"dbip-csv {blob.name}")
        for number, row in enumerate(csv.reader(text.splitlines()), start=1):
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) < 3:
                out.issue(number, f"expected 3 columns, got {len(row)}", ",".join(row))
                continue
            code = normalise_code(row[2])
            if code is None or code in PSEUDO_CODES:
                out.skipped += 1
                continue
            try:
                fam_a, first = addresses.parse_address(row[0].strip())
                fam_b, last = addresses.parse_address(row[1].strip())
            except ValueError as exc:
                out.issue(number, str(exc), ",".join(row))
                continue
            if fam_a != fam_b or last < first:
                out.issue(number, "start and end do not form a range", ",".join(row))
                continue
            out.add(fam_a, first, last, code)
            out.entries += 1
    return out.finish("dbip-csv", FeedMeta(extra={"attribution": ATTRIBUTION}))

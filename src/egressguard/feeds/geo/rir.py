"""RIR statistics exchange files, "delegated-extended" (shared reference §5).

``version|registry|serial|records|startdate|enddate|UTCoffset``, then summary lines
``registry|*|type|*|count|summary``, then records
``registry|cc|type|start|value|date|status[|opaque-id[|extensions]]``.

* Only ``allocated`` and ``assigned`` records count; ``available``/``reserved`` (cc ``ZZ`` or
  empty) and ASN records are skipped.
* IPv4 ``value`` is a **number of addresses**, not always a power of two (AFRINIC has 41 such
  records): the range ``start .. start+value-1`` is kept as a range and turned into exact CIDRs
  by the CIDR engine, never by ``32 - log2(value)``.
* IPv6 ``value`` is a **prefix length**.
* Completeness: the version line's ``records`` and each summary line's ``count`` must equal the
  records read; otherwise the file is truncated and refused. The ``serial`` (YYYYMMDD) is the
  feed date.
* The country is the registrant's, not where addresses are used.

The RIR's ``.md5`` file is checked by the caller (``feeds.checksums``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
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
    numbered_lines,
)

__all__ = ["KEPT_STATUSES", "parse_rir"]

KEPT_STATUSES = frozenset({"allocated", "assigned"})


def parse_rir(blobs: Sequence[Blob], options: dict[str, Any] | None = None) -> ParsedFeed:
    """Parse one or more delegated-extended files into per-country networks."""
    out = Collector()
    dates: list[str] = []
    registries: list[str] = []
    for blob in blobs:
        out.file = blob.name
        version = _parse_one(blob, out)
        dates.append(version[0])
        registries.append(version[1])
    extra = {"registries": ",".join(registries)}
    date = min(dates) if dates else None
    return out.finish("rir", FeedMeta(date=date, extra=extra))


def _parse_one(blob: Blob, out: Collector) -> tuple[str, str]:
    text = decode_text(blob.data, what=f"rir {blob.name}")
    declared_total: int | None = None
    declared: dict[str, int] = {}
    seen: Counter[str] = Counter()
    registry = ""
    serial = ""
    for number, line in numbered_lines(text):
        if not line or line.startswith("#"):
            continue
        fields = line.split("|")
        if declared_total is None:
            if len(fields) < 4 or not fields[3].isdigit():
                raise FeedFormatError(
                    f"rir {blob.name}:{number}: no version line: not a delegated-extended file"
                )
            registry, serial, declared_total = fields[1], fields[2], int(fields[3])
            continue
        if len(fields) >= 6 and fields[1] == "*" and fields[5].strip() == "summary":
            if fields[4].isdigit():
                declared[fields[2]] = int(fields[4])
            continue
        if len(fields) < 7:
            out.issue(number, f"record has {len(fields)} fields, expected 7 or more", line)
            continue
        cc, kind, start, value, status = fields[1], fields[2], fields[3], fields[4], fields[6]
        seen[kind] += 1
        if kind not in ("ipv4", "ipv6"):
            continue
        if status not in KEPT_STATUSES:
            out.skipped += 1
            continue
        code = normalise_code(cc)
        if code is None or code == "ZZ":
            out.skipped += 1
            continue
        try:
            family, first = addresses.parse_address(start)
        except ValueError as exc:
            out.issue(number, str(exc), line)
            continue
        if not value.isdigit() or family != (4 if kind == "ipv4" else 6):
            out.issue(number, f"bad {kind} start/value", line)
            continue
        if family == 4:
            last = first + int(value) - 1
            if int(value) == 0 or last >= 1 << 32:
                out.issue(number, f"IPv4 count {value} does not fit at {start}", line)
                continue
        else:
            plen = int(value)
            if not 1 <= plen <= 128:
                out.issue(number, f"IPv6 prefix length {value} out of range", line)
                continue
            host = (1 << (128 - plen)) - 1
            if first & host:
                out.issue(number, "IPv6 start has host bits set; the network is used", line)
                first &= ~host
            last = first | host
        out.add(family, first, last, code)
        out.entries += 1
    if declared_total is None:
        raise FeedFormatError(f"rir {blob.name}: empty file: no version line")
    total = sum(seen.values())
    if total != declared_total:
        raise FeedFormatError(
            f"rir {blob.name}: the version line declares {declared_total} records but "
            f"{total} were read: truncated or altered"
        )
    for kind, count in declared.items():
        if seen[kind] != count:
            raise FeedFormatError(
                f"rir {blob.name}: the summary declares {count} {kind} records but "
                f"{seen[kind]} were read: truncated or altered"
            )
    date = f"{serial[:4]}-{serial[4:6]}-{serial[6:8]}" if len(serial) == 8 else serial
    return date, registry

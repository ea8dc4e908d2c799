"""Names a config may use for ``format:`` (feeds) and ``geo.provider:`` (geo-IP), and their parsers.

``FORMATS[name].parse(data: bytes, options: dict) -> ParsedFeed`` for single-file feeds;
``PROVIDERS[name].parse(blobs: Sequence[Blob], options: dict) -> ParsedFeed`` for geo data,
tagged by ISO country code. A provider with ``decoder="mmdb"`` has no byte parser (``parse``
is None): ``adapters.geodb`` reads the database (the MMDB reader is a library that does I/O)
and ``feeds.geo.maxmind.parse_mmdb_records`` turns its records into a ``ParsedFeed``.
``per_part`` says whether each file of a multi-file source can be parsed (and validated, and
fallen back) on its own; ``checksum_suffix`` is the sidecar file a provider publishes next to
each data file. ``min_interval`` is the provider's politeness floor in seconds between
downloads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from egressguard.feeds import csvlist, plain, spamhaus, tor
from egressguard.feeds.geo import cidrdir, dbip, ip2location, maxmind, rir
from egressguard.feeds.result import Blob, ParsedFeed

__all__ = ["FORMATS", "PROVIDERS", "FeedFormat", "GeoProvider", "ParserVersion"]

#: Bumped when any parser's output for the same bytes changes, so cached parses are redone.
ParserVersion = 1

FeedParse = Callable[[bytes, dict[str, Any]], ParsedFeed]
GeoParse = Callable[[Sequence[Blob], dict[str, Any]], ParsedFeed]


@dataclass(frozen=True, slots=True)
class FeedFormat:
    name: str
    parse: FeedParse
    description: str
    min_interval: int = 0


@dataclass(frozen=True, slots=True)
class GeoProvider:
    name: str
    parse: GeoParse | None
    description: str
    per_part: bool = True
    checksum_suffix: str | None = None
    decoder: str | None = None
    min_interval: int = 0


FORMATS: Mapping[str, FeedFormat] = {
    f.name: f
    for f in (
        FeedFormat(
            "plain",
            plain.parse_plain,
            "one address/CIDR/range per line; FireHOL "
            "netset/ipset headers and abuse.ch trailers are checked when present",
        ),
        FeedFormat("netset", plain.parse_plain, "FireHOL .netset (alias of plain)"),
        FeedFormat("ipset", plain.parse_plain, "FireHOL .ipset (alias of plain)"),
        FeedFormat(
            "abusech", plain.parse_abusech, "abuse.ch text list; '# END n entries' trailer required"
        ),
        FeedFormat("csv", csvlist.parse_csv, "CSV; address column by name or 0-based index"),
        FeedFormat(
            "spamhaus-text",
            spamhaus.parse_spamhaus_text,
            "Spamhaus DROP text; '; EOF' required",
            spamhaus.MIN_INTERVAL,
        ),
        FeedFormat(
            "spamhaus-json",
            spamhaus.parse_spamhaus_json,
            "Spamhaus DROP JSON lines; metadata 'records' checked",
            spamhaus.MIN_INTERVAL,
        ),
        FeedFormat("tor-exits", tor.parse_tor_exits, "TorDNSEL exit-addresses"),
    )
}


PROVIDERS: Mapping[str, GeoProvider] = {
    p.name: p
    for p in (
        GeoProvider(
            "rir",
            rir.parse_rir,
            "RIR delegated-extended statistics (registrant country; no key needed)",
            checksum_suffix=".md5",
        ),
        GeoProvider(
            "maxmind-csv",
            maxmind.parse_maxmind_csv,
            "MaxMind GeoLite2/GeoIP2 Country CSV (zip or files)",
            per_part=False,
            min_interval=12 * 3600,
        ),
        GeoProvider(
            "maxmind-mmdb",
            None,
            "MaxMind-schema Country MMDB (GeoLite2, DB-IP, sapics)",
            decoder="mmdb",
            min_interval=12 * 3600,
        ),
        GeoProvider("dbip-csv", dbip.parse_dbip_csv, "DB-IP IP-to-Country Lite CSV"),
        GeoProvider(
            "ip2location-csv",
            ip2location.parse_ip2location_csv,
            "IP2Location LITE DB1 CSV (IPv4 or IPv6 edition)",
        ),
        GeoProvider(
            "cidr-dir",
            cidrdir.parse_cidr_dir,
            "one CIDR file per ISO code (herrbischoff, ipdeny)",
            per_part=False,
        ),
    )
}

"""Threat-feed parsers against the real samples in ../shared/data/feeds.

Expected values are derived independently of the parsers: FireHOL's own header counts, the
abuse.ch trailer, a regex over the Tor file, and ``ipaddress`` for the address sets.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import os
import re
from pathlib import Path

import pytest

from egressguard.cidr.sets import AddressSet
from egressguard.feeds import csvlist, plain, spamhaus, tor
from egressguard.feeds.result import FeedFormatError, ParsedFeed

# parametrisation needs the list at collection time, so resolve ../shared as conftest does
_SHARED = Path(
    os.environ.get("EGRESSGUARD_SHARED", Path(__file__).resolve().parents[3].parent / "shared")
)
FIREHOL = sorted((_SHARED / "data/feeds/firehol-2022").glob("*set"))


def ipaddress_set(cidrs: list[str]) -> set[str]:
    """The collapsed CIDRs as text, computed with the standard library only."""
    nets = [ipaddress.ip_network(c.strip(), strict=False) for c in cidrs]
    v4 = [n for n in nets if n.version == 4]
    v6 = [n for n in nets if n.version == 6]
    return {str(n) for n in (*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6))}


def cidr_texts(result: ParsedFeed) -> set[str]:
    return {str(c) for c in result.addresses.cidrs()}


@pytest.mark.parametrize("path", FIREHOL, ids=[p.name for p in FIREHOL])
def test_firehol_sets_match_their_header_and_ipaddress(path: Path) -> None:
    text = path.read_text()
    header = re.search(r"^# Entries\s*:\s*(?:(\d+) subnets, )?(\d+) unique IPs", text, re.M)
    assert header is not None
    entries = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    got = plain.parse_plain(path.read_bytes())
    assert got.entries == len(entries)
    assert got.issue_count == 0
    assert got.addresses.v4.address_count == int(header.group(2))
    assert cidr_texts(got) == ipaddress_set(entries)
    assert got.meta.date is not None
    assert got.meta.date.startswith(("2018", "2021", "2022"))


def test_the_firehol_samples_are_there() -> None:
    assert len(FIREHOL) == 13, f"FireHOL samples missing under {_SHARED}"


@pytest.mark.parametrize("name", ["feodo.ipset", "feodo_badips.ipset", "sslbl.ipset"])
def test_dead_firehol_feeds_parse_to_zero_entries(data_dir: Path, name: str) -> None:
    got = plain.parse_plain((data_dir / "feeds/firehol-2022" / name).read_bytes())
    assert got.entries == 0
    assert not got.addresses
    assert got.meta.declared == 0


def test_firehol_level1_contains_private_ranges_by_design(data_dir: Path) -> None:
    got = plain.parse_plain((data_dir / "feeds/firehol-2022/firehol_level1.netset").read_bytes())
    for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "0.0.0.0/8", "224.0.0.0/3"):
        assert net in got.addresses


def test_firehol_truncation_is_detected(data_dir: Path) -> None:
    body = (data_dir / "feeds/firehol-2022/spamhaus_drop.netset").read_bytes()
    cut = b"".join(body.splitlines(keepends=True)[:-3])
    with pytest.raises(FeedFormatError, match="declares 986 subnets"):
        plain.parse_plain(cut)


ABUSECH = "feeds/abusech/feodo_ipblocklist_recommended.2022-07-08.txt"


def test_abusech_trailer_and_date(data_dir: Path) -> None:
    got = plain.parse_abusech((data_dir / ABUSECH).read_bytes())
    assert got.entries == 244
    assert got.meta.declared == 244
    assert got.meta.date == "2022-07-08T02:09:47+00:00"
    assert got.addresses.contains_address("8.8.8.8")  # the mirror's planted guard-rail case


def test_abusech_missing_or_wrong_trailer(data_dir: Path) -> None:
    lines = (data_dir / ABUSECH).read_bytes().splitlines(keepends=True)
    with pytest.raises(FeedFormatError, match="no '# END"):
        plain.parse_abusech(b"".join(lines[:-1]))
    with pytest.raises(FeedFormatError, match="END 244 entries"):
        plain.parse_abusech(b"".join(lines[:20] + lines[21:]))
    # plain checks the trailer when present, but does not require it
    assert plain.parse_plain(b"".join(lines[:-1])).entries == 244


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"<!DOCTYPE html>\n<html><body>502</body></html>", "HTML"),
        (b"   <html>\n", "HTML"),
        (b"192.0.2.1\n\x00\x00\x00", "binary"),
        (b"192.0.2.1\n\xff\xfe\xfa", "not UTF-8"),
    ],
)
def test_whole_file_garbage_is_refused(body: bytes, match: str) -> None:
    with pytest.raises(FeedFormatError, match=match):
        plain.parse_plain(body)


def test_plain_lines_issues_notes_and_gzip() -> None:
    body = (
        b"# comment\n192.0.2.0/24\n198.51.100.7 ; inline\nexample.com\n"
        b"203.0.113.9/24\n2001:db8::/32\r\n192.0.2.10 - 192.0.2.20\n010.1.1.1\n"
    )
    for data in (body, gzip.compress(body)):
        got = plain.parse_plain(data)
        assert got.entries == 5
        assert got.issue_count == 2
        assert [i.line for i in got.issues] == [4, 8]
        assert got.note_count == 1  # host bits in 203.0.113.9/24
        assert "203.0.113.0/24" in got.addresses
        assert "2001:db8::/32" in got.addresses


def test_spamhaus_json_real_sample(data_dir: Path) -> None:
    body = (data_dir / "feeds/spamhaus/drop_v4.json").read_bytes()
    rows = [json.loads(line) for line in body.splitlines()]
    cidrs = [r["cidr"] for r in rows if "cidr" in r]
    got = spamhaus.parse_spamhaus_json(body)
    assert got.entries == len(cidrs) == 1406
    assert got.meta.declared == 1406
    assert got.meta.date == "2025-04-15T02:07:54+00:00"
    assert cidr_texts(got) == ipaddress_set(cidrs)


def test_spamhaus_json_truncations(data_dir: Path) -> None:
    lines = (data_dir / "feeds/spamhaus/drop_v4.json").read_bytes().splitlines(keepends=True)
    with pytest.raises(FeedFormatError, match="no metadata"):
        spamhaus.parse_spamhaus_json(b"".join(lines[:-1]))
    with pytest.raises(FeedFormatError, match="records=1406 but 1405"):
        spamhaus.parse_spamhaus_json(b"".join(lines[1:]))
    with pytest.raises(FeedFormatError, match="after the metadata"):
        spamhaus.parse_spamhaus_json(b"".join(lines) + lines[0])


def test_spamhaus_text_real_sample_and_missing_eof(data_dir: Path) -> None:
    body = (data_dir / "feeds/spamhaus/drop.txt.textformat-2025-03-02").read_bytes()
    cidrs = [ln.split(";")[0] for ln in body.decode().splitlines() if ln and ln[0] != ";"]
    got = spamhaus.parse_spamhaus_text(body)
    assert got.entries == len(cidrs) == 1360
    assert got.meta.date == "2025-03-02T14:37:54+00:00"
    assert cidr_texts(got) == ipaddress_set(cidrs)
    # the CIDR-only mirror copy has no trailer at all: as a spamhaus-text feed it is incomplete
    with pytest.raises(FeedFormatError, match="EOF"):
        spamhaus.parse_spamhaus_text((data_dir / "feeds/spamhaus/drop.txt").read_bytes())


def test_tor_exit_addresses_unique_count(data_dir: Path) -> None:
    body = (data_dir / "feeds/tor/exit-addresses").read_bytes()
    found = re.findall(rb"^ExitAddress (\S+) ", body, re.M)
    unique = {ip.decode() for ip in found}
    assert len(unique) == 1174
    got = tor.parse_tor_exits(body)
    assert got.entries == len(found) == 2378
    assert got.addresses.v4.address_count == 1174
    assert got.meta.extra["exit_nodes"] == "2372"
    assert AddressSet.of(*unique) == got.addresses


ABUSE_CSV = b"""################################################################
# abuse.ch Feodo Tracker Botnet C2 IP Blocklist (CSV)          #
################################################################
#
# "first_seen_utc","dst_ip","dst_port","c2_status","last_online","malware"
"2021-01-17 07:30:05","192.0.2.10","443","online","2022-07-07","Emotet"
"2021-01-17 07:44:46","198.51.100.20","8080","offline","2022-07-06","Dridex"
"2021-02-01 00:00:00","not-an-ip","8080","offline","2022-07-06","Dridex"
# END 3 entries
"""


def test_csv_column_by_name_in_commented_header() -> None:
    got = csvlist.parse_csv(ABUSE_CSV, {"column": "dst_ip"})
    assert got.entries == 2
    assert got.issue_count == 1
    assert got.issues[0].line == 8
    assert got.addresses == AddressSet.of("192.0.2.10", "198.51.100.20")


def test_csv_column_by_index_and_header_row() -> None:
    body = b"ip,score\n192.0.2.1,9\n2001:db8::1,3\n"
    assert csvlist.parse_csv(body, {"column": "ip"}).entries == 2
    by_index = csvlist.parse_csv(body, {"column": 0, "header": True})
    assert by_index.addresses == AddressSet.of("192.0.2.1", "2001:db8::1")
    no_header = csvlist.parse_csv(b"x;192.0.2.7\n", {"column": 1, "delimiter": ";"})
    assert no_header.addresses == AddressSet.of("192.0.2.7")
    with pytest.raises(FeedFormatError, match="no column named"):
        csvlist.parse_csv(body, {"column": "dst_ip"})
    with pytest.raises(FeedFormatError, match="needs 'column'"):
        csvlist.parse_csv(body, {})


def test_parse_cache_round_trip(data_dir: Path) -> None:
    got = spamhaus.parse_spamhaus_json((data_dir / "feeds/spamhaus/drop_v4.json").read_bytes())
    back = ParsedFeed.from_bytes(got.to_bytes())
    assert back == got

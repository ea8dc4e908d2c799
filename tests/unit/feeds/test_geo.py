"""Geo providers against the real samples (RIR, GeoLite2 CSV excerpts, MMDB fixture, DB-IP,
IP2Location, herrbischoff country files), with expectations computed by ``ipaddress``.

Licence note: GeoLite2/DB-IP/IP2Location rows are read from ../shared/data at test time and
never copied here; the IP2Location IPv6 rows below are synthetic, built from the documented
layout of the IPv6 edition.
"""

from __future__ import annotations

import hashlib
import ipaddress
from pathlib import Path

import pytest

from egressguard.adapters.geodb import mmdb_records
from egressguard.cidr.sets import AddressSet, CidrSet
from egressguard.feeds import checksums
from egressguard.feeds.geo import cidrdir, dbip, ip2location, maxmind, rir, select
from egressguard.feeds.result import Blob, FeedFormatError, union_sets

RIR = "rir/delegated-afrinic-extended-latest"


def rir_blob(data_dir: Path) -> Blob:
    return Blob("delegated-afrinic-extended-latest", (data_dir / RIR).read_bytes())


def test_rir_matches_an_independent_ipaddress_conversion(data_dir: Path) -> None:
    expected: dict[str, list[ipaddress.IPv4Network | ipaddress.IPv6Network]] = {}
    odd = 0
    for line in (data_dir / RIR).read_text().splitlines():
        f = line.split("|")
        if len(f) < 7 or f[2] not in ("ipv4", "ipv6") or f[6] not in ("allocated", "assigned"):
            continue
        if f[2] == "ipv4":
            count = int(f[4])
            odd += count & (count - 1) != 0
            start = ipaddress.IPv4Address(f[3])
            nets = list(ipaddress.summarize_address_range(start, start + count - 1))
        else:
            nets = [ipaddress.IPv6Network(f"{f[3]}/{f[4]}")]
        expected.setdefault(f[1], []).extend(nets)
    assert odd > 0, "the sample must contain non-power-of-two IPv4 counts"
    got = rir.parse_rir([rir_blob(data_dir)])
    assert sorted(got.by_tag) == sorted(expected)
    for code, nets in expected.items():
        want = AddressSet.of(*(str(n) for n in nets))
        assert got.by_tag[code] == want, code
    assert got.meta.date == "2023-03-23"


def test_rir_every_non_power_of_two_record_becomes_exact_cidrs(data_dir: Path) -> None:
    for line in (data_dir / RIR).read_text().splitlines():
        f = line.split("|")
        if len(f) < 7 or f[2] != "ipv4" or f[6] not in ("allocated", "assigned"):
            continue
        count = int(f[4])
        if count & (count - 1) == 0:
            continue
        one = rir.parse_rir([Blob("x", ("2|afrinic|1|1|0|0|0\n" + line + "\n").encode())])
        start = ipaddress.IPv4Address(f[3])
        want = [str(n) for n in ipaddress.summarize_address_range(start, start + count - 1)]
        assert [str(c) for c in one.addresses.cidrs()] == want, line


def test_rir_truncation_and_md5(data_dir: Path) -> None:
    body = (data_dir / RIR).read_bytes()
    with pytest.raises(FeedFormatError, match="declares 15019 records"):
        rir.parse_rir([Blob("cut", body[: len(body) // 2].rsplit(b"\n", 1)[0] + b"\n")])
    published = checksums.parse_checksum((data_dir / (RIR + ".md5")).read_bytes())
    assert published.algorithm == "md5"
    assert published.name == "delegated-afrinic-extended-latest"
    checksums.verify(body, published, what="afrinic")
    tampered = body.replace(b"|ZA|ipv4|", b"|ZW|ipv4|", 1)
    with pytest.raises(checksums.ChecksumError, match="MD5 mismatch"):
        checksums.verify(tampered, published, what="afrinic")


def test_checksum_file_shapes() -> None:
    data = b"hello"
    sha = hashlib.sha256(data).hexdigest()
    gnu = checksums.parse_checksum(f"{sha}  GeoLite2-Country-CSV_20240105.zip\n".encode())
    assert (gnu.algorithm, gnu.name) == ("sha256", "GeoLite2-Country-CSV_20240105.zip")
    checksums.verify(data, gnu, what="x")
    md5 = hashlib.md5(data).hexdigest()  # noqa: S324 - the RIRs publish MD5
    checksums.verify(data, checksums.parse_checksum(md5.encode()), what="x")
    with pytest.raises(checksums.ChecksumError):
        checksums.parse_checksum(b"<html>not found</html>")


def geolite(data_dir: Path) -> list[Blob]:
    folder = data_dir / "geo-formats"
    return [Blob(p.name, p.read_bytes()) for p in sorted(folder.glob("GeoLite2-Country-*.csv"))]


def test_maxmind_csv_country_policies(data_dir: Path) -> None:
    used = maxmind.parse_maxmind_csv(geolite(data_dir))
    # 1.0.0.0/24 has no used-in country; the default falls back to registered (AU)
    assert "1.0.0.0/24" in used.by_tag["AU"]
    # 2.16.1.0/24: used in DE (2921044), registered in NL (2750405)
    assert "2.16.1.0/24" in used.by_tag["DE"]
    assert "NL" not in used.by_tag or "2.16.1.0/24" not in used.by_tag["NL"]
    strict = maxmind.parse_maxmind_csv(geolite(data_dir), {"country_fallback": False})
    assert "1.0.0.0/24" not in strict.by_tag["AU"]
    assert strict.skipped > used.skipped
    registered = maxmind.parse_maxmind_csv(
        geolite(data_dir), {"country_field": "registered_country"}
    )
    assert "2.16.1.0/24" in registered.by_tag["NL"]
    both = maxmind.parse_maxmind_csv(geolite(data_dir), {"country_field": "any"})
    assert "2.16.1.0/24" in both.by_tag["DE"]
    assert "2.16.1.0/24" in both.by_tag["NL"]
    with pytest.raises(FeedFormatError, match="country_field"):
        maxmind.parse_maxmind_csv(geolite(data_dir), {"country_field": "city"})


def test_maxmind_mmdb_through_the_adapter(data_dir: Path) -> None:
    content = mmdb_records((data_dir / "geo-formats/tiny-country-fixture.mmdb").read_bytes())
    assert content.meta["database_type"] == "GeoLite2-Country"
    got = maxmind.parse_mmdb_records(content.records)
    assert "1.0.0.0/24" in got.by_tag["AU"]  # only registered_country in the record
    assert "2001:200::/32" in got.by_tag["JP"]
    assert "1.0.1.0/24" in got.by_tag["CN"]
    strict = maxmind.parse_mmdb_records(content.records, {"country_fallback": False})
    assert "1.0.0.0/24" not in strict.by_tag["AU"]
    assert strict.skipped == 1


def test_dbip_unaligned_ranges_become_exact_cidrs(data_dir: Path) -> None:
    blobs = [
        Blob(p.name, p.read_bytes())
        for p in sorted((data_dir / "geo-formats").glob("dbip-country-lite-*.csv"))
    ]
    got = dbip.parse_dbip_csv(blobs)
    expected: dict[str, list[str]] = {}
    for blob in blobs:
        for line in blob.data.decode().splitlines():
            start, end, code = line.split(",")
            nets = ipaddress.summarize_address_range(
                ipaddress.ip_address(start), ipaddress.ip_address(end)
            )
            expected.setdefault(code, []).extend(str(n) for n in nets)
    assert sorted(got.by_tag) == sorted(expected)
    for code, nets in expected.items():
        assert got.by_tag[code] == AddressSet.of(*nets), code
    assert "DB-IP" in got.meta.extra["attribution"]


def test_ip2location_ipv4_sample(data_dir: Path) -> None:
    path = data_dir / "geo-formats/IP2LOCATION-LITE-DB1.sample.CSV"
    got = ip2location.parse_ip2location_csv([Blob(path.name, path.read_bytes())])
    assert got.skipped == sum(1 for ln in path.read_text().splitlines() if '"-"' in ln)
    assert got.by_tag["AU"].v4 == CidrSet.from_ranges(
        4, [(16777216, 16777471), (16778240, 16779263)]
    )
    assert "1.0.1.0/24" in got.by_tag["CN"]


def test_ip2location_ipv6_edition_maps_ipv4_and_cuts_derived_copies() -> None:
    mapped = 0xFFFF << 32
    six_to_four = 0x2002 << 112
    teredo = 0x2001 << 112
    native = int(ipaddress.IPv6Address("2001:db8::"))
    rows = [
        (0, mapped - 1, "-"),
        (
            mapped + int(ipaddress.IPv4Address("192.0.2.0")),
            mapped + int(ipaddress.IPv4Address("192.0.2.255")),
            "US",
        ),
        (teredo, teredo + (1 << 96) - 1, "US"),
        (six_to_four, six_to_four + (1 << 112) - 1, "DE"),
        (native, native + (1 << 96) - 1, "FR"),
        ((1 << 128) - 2, (1 << 128) - 1, "-"),
    ]
    body = "".join(f'"{a}","{b}","{c}","name, with comma"\n' for a, b, c in rows).encode()
    got = ip2location.parse_ip2location_csv([Blob("IP2LOCATION-LITE-DB1.IPV6.CSV", body)])
    assert got.by_tag["US"] == AddressSet.of("192.0.2.0/24")
    assert got.by_tag["FR"] == AddressSet.of("2001:db8::/32")
    assert "DE" not in got.by_tag or not got.by_tag["DE"]
    assert got.meta.extra["derived_rows_cut"] == "2"


def test_cidr_dir_world_and_selection(data_dir: Path) -> None:
    root = data_dir / "countries/herrbischoff-2025-09"
    blobs = [
        Blob(p.relative_to(root).as_posix(), p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    ]
    got = cidrdir.parse_cidr_dir(blobs)
    # the files are already minimal per country, so each file's lines are its CIDRs
    de_lines = [ln for ln in (root / "ipv4/de.cidr").read_text().splitlines() if ln]
    assert [str(c) for c in got.by_tag["DE"].v4.cidrs()] == sorted(
        de_lines, key=ipaddress.ip_network
    )
    assert got.addresses.v4.cidr_count == 18892  # DESIGN §7: 172,627 CIDRs -> 18,892
    assert got.issue_count == 0
    assert "README.md" in got.meta.extra["ignored_files"]
    chosen = select(got, ["de", "FR", "XK", "QQ"])
    assert sorted(chosen.by_country) == ["DE", "FR"] + (["XK"] if "XK" in got.by_tag else [])
    assert "QQ" in chosen.missing
    all_but = select(got, None, ["US", "DE"])
    assert "US" not in all_but.by_country
    assert "DE" not in all_but.by_country
    kept = [t for t in got.by_tag if t not in ("US", "DE", "EU", "AP", "ZZ")]
    assert sorted(all_but.by_country) == sorted(kept)
    others = union_sets(got.by_tag[t] for t in got.by_tag if t != "US")
    us_only = got.by_tag["US"] - others
    assert us_only
    assert all_but.addresses.isdisjoint(us_only)
    assert got.by_tag["FR"] <= all_but.addresses


def test_country_of_file_names() -> None:
    assert cidrdir.country_of_file("ipv4/de.cidr") == "DE"
    assert cidrdir.country_of_file("us-aggregated.zone") == "US"
    assert cidrdir.country_of_file("README.md") is None
    assert cidrdir.country_of_file("LICENSE") is None

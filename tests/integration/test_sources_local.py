"""Sources read from local files and directories (real file system, real state directory)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from egressguard.adapters.http import FakeFetcher
from egressguard.adapters.state import DirectoryStateStore
from egressguard.app.sources import SourceLoader, SourceSpec, Status
from egressguard.cidr.sets import AddressSet
from egressguard.errors import ConfigError

pytestmark = pytest.mark.integration


def loader(tmp_path: Path) -> SourceLoader:
    return SourceLoader(fetcher=FakeFetcher({}), state=DirectoryStateStore(tmp_path / "state"))


def test_static_source() -> None:
    load = SourceLoader(fetcher=FakeFetcher({}), state=DirectoryStateStore("/nonexistent"))
    got = load.load({"name": "mine", "static": ["192.0.2.0/24", "2001:db8::/48"]})
    assert got.status is Status.FRESH
    assert got.addresses == AddressSet.of("192.0.2.0/24", "2001:db8::/48")
    bad = load.load({"name": "mine", "static": ["192.0.2.0/24", "not-an-ip"]})
    assert bad.status is Status.FAILED
    assert bad.issues[0].line == 2


def test_file_source_falls_back_when_the_file_goes_bad(tmp_path: Path, data_dir: Path) -> None:
    path = tmp_path / "level1.netset"
    shutil.copy(data_dir / "feeds/firehol-2022/firehol_level1.netset", path)
    load = loader(tmp_path)
    src = {"name": "level1", "file": str(path), "format": "netset"}
    good = load.load(src)
    assert good.status is Status.FRESH
    assert good.entries == 2511
    again = load.load(src)
    assert again.status is Status.NOT_MODIFIED
    assert again.parts[0].parsed is False
    path.write_text("# Entries : 5 subnets, 5 unique IPs\n192.0.2.1\n")
    broken = load.load(src)
    assert broken.status is Status.FALLBACK
    assert "declares 5 subnets" in (broken.reason or "")
    assert broken.addresses == good.addresses
    path.unlink()
    gone = load.load(src)
    assert gone.status is Status.FALLBACK
    assert "cannot read" in (gone.reason or "")


def test_rir_files_with_md5_sidecar(tmp_path: Path, data_dir: Path) -> None:
    for name in ("delegated-afrinic-extended-latest", "delegated-afrinic-extended-latest.md5"):
        shutil.copy(data_dir / "rir" / name, tmp_path / name)
    data = tmp_path / "delegated-afrinic-extended-latest"
    src: dict[str, Any] = {
        "name": "africa",
        "geo": {"provider": "rir", "files": [str(data)], "exclude_countries": ["ZA"]},
    }
    good = loader(tmp_path).load(src)
    assert good.status is Status.FRESH
    assert good.parts[0].checksum == "md5 verified"
    assert "ZA" not in good.by_country
    assert "NG" in good.by_country
    data.write_bytes(data.read_bytes().replace(b"|NG|ipv4|", b"|GH|ipv4|", 1))
    bad = loader(tmp_path).load(src)
    assert bad.status is Status.FALLBACK
    assert "MD5 mismatch" in (bad.reason or "")
    assert bad.by_country.keys() == good.by_country.keys()


def test_required_checksum_missing_fails(tmp_path: Path, data_dir: Path) -> None:
    data = tmp_path / "delegated-afrinic-extended-latest"
    shutil.copy(data_dir / "rir" / data.name, data)
    src = {"name": "a", "geo": {"provider": "rir", "files": [str(data)], "checksum": "required"}}
    got = loader(tmp_path).load(src)
    assert got.status is Status.FAILED
    assert "checksum file missing" in (got.reason or "")


def test_cidr_dir_source_with_country_tags(tmp_path: Path, data_dir: Path) -> None:
    src = {
        "name": "geo",
        "geo": {
            "provider": "cidr-dir",
            "files": [str(data_dir / "countries/herrbischoff-2025-09")],
            "countries": ["kp", "IR"],
        },
    }
    got = loader(tmp_path).load(src)
    assert got.status is Status.FRESH, got.reason
    assert sorted(got.by_country) == ["IR", "KP"]
    kp = (data_dir / "countries/herrbischoff-2025-09/ipv4/kp.cidr").read_text().split()
    assert got.by_country["KP"].v4 == AddressSet.of(*kp).v4
    assert got.addresses == got.by_country["KP"] | got.by_country["IR"]


def test_maxmind_csv_files_as_one_part(tmp_path: Path, data_dir: Path) -> None:
    folder = data_dir / "geo-formats"
    files = [str(p) for p in sorted(folder.glob("GeoLite2-Country-*.csv"))]
    src = {"name": "mm", "geo": {"provider": "maxmind-csv", "files": files, "countries": ["JP"]}}
    got = loader(tmp_path).load(src)
    assert got.status is Status.FRESH, got.reason
    assert "2001:200::/32" in got.addresses
    assert len(got.parts) == 1


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"name": "x", "url": "https://a/b"}, "format"),
        ({"name": "x", "url": "https://a/b", "file": "/f", "format": "plain"}, "exactly one"),
        ({"name": "x", "geo": {"provider": "nope", "files": ["/f"]}}, "not a geo provider"),
        ({"name": "x", "geo": {"provider": "rir", "files": ["/f"], "countries": ["USA"]}}, "ISO"),
        ({"name": "x", "geo": {"provider": "rir", "urls": ["u"], "license_key": "k"}}, "unknown"),
        ({"geo": {"provider": "rir", "files": ["/f"]}}, "name"),
    ],
)
def test_spec_validation(spec: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SourceSpec.from_dict(spec)

"""For IPv4, egressguard's minimal CIDR list is byte-for-byte what ``iprange --optimize`` prints,
on every real list in ../shared/data: all countries together, each country file, each feed file,
and the union of the feeds. iprange (Debian package ``iprange``) runs in the test.

iprange resolves any line it cannot read as an address through DNS. To keep the tests off the
network, a file goes to iprange only when egressguard's strict parse accepts every line of it
(so it holds no hostname-looking line) and it has no IPv6 entries (iprange 1.0 is IPv4-only and
would try to resolve them). That excludes the Tor exit list and the Spamhaus JSON lines, which
need their own parsers (``egressguard.feeds``); the RIR file is not an address list at all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from egressguard.cidr import parse

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("EGRESSGUARD_SHARED", REPO.parent / "shared")) / "data"
COUNTRIES = DATA / "countries/herrbischoff-2025-09/ipv4"
FEEDS = DATA / "feeds"
IPRANGE = shutil.which("iprange")

if IPRANGE is None:  # pragma: no cover - the bootstrap installs it
    pytest.fail("iprange is not installed (scripts/bootstrap installs it)", pytrace=False)


def iprange(files: list[Path]) -> list[str]:
    done = subprocess.run(
        [str(IPRANGE), "--optimize", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stderr == "", done.stderr  # iprange complained about a line: not comparable
    return done.stdout.splitlines()


def ours(files: list[Path]) -> list[str]:
    result = parse.parse_many([(f.name, f.read_bytes()) for f in files])
    return result.v4.cidr_strings(bare_hosts=True)


def accepted_by_iprange(path: Path) -> bool:
    result = parse.parse(path.read_bytes())
    return result.ok and not result.v6


COUNTRY_FILES = sorted(COUNTRIES.glob("*.cidr"))
FEED_FILES = sorted(p for p in FEEDS.rglob("*") if p.is_file())


def test_the_data_is_there() -> None:
    assert len(COUNTRY_FILES) == 241
    assert len(FEED_FILES) >= 15


def test_world_ipv4_country_set() -> None:
    expected = iprange(COUNTRY_FILES)
    assert len(expected) == 18892
    assert ours(COUNTRY_FILES) == expected


@pytest.mark.parametrize("path", COUNTRY_FILES, ids=lambda p: p.stem)
def test_each_country(path: Path) -> None:
    assert ours([path]) == iprange([path])


@pytest.mark.parametrize("path", FEED_FILES, ids=lambda p: str(p.relative_to(FEEDS)))
def test_each_feed_file(path: Path) -> None:
    if not accepted_by_iprange(path):
        result = parse.parse(path.read_bytes())
        pytest.skip(
            f"not a plain address list ({len(result.issues)} of {result.lines} lines are not "
            "addresses); iprange would resolve them through DNS"
        )
    assert ours([path]) == iprange([path])


def test_union_of_all_plain_feeds_and_countries() -> None:
    files = [p for p in FEED_FILES if accepted_by_iprange(p)]
    assert len(files) >= 14  # the FireHOL sets, Spamhaus text forms, the Feodo list
    assert ours(files) == iprange(files)
    everything = files + COUNTRY_FILES
    assert ours(everything) == iprange(everything)


def test_the_command_prints_what_iprange_prints() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "egressguard", "aggregate", "-4", *map(str, COUNTRY_FILES)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == iprange(COUNTRY_FILES)


def test_iprange_agrees_on_ranges_and_host_bits(tmp_path: Path) -> None:
    # synthetic but iprange-safe input: unaligned ranges, host bits, overlaps, singles
    lines = [
        "192.0.2.5 - 192.0.2.17",
        "198.51.100.77/24",
        "203.0.113.0/25",
        "203.0.113.128 - 203.0.113.255",
        "10.0.0.1",
        "10.0.0.2",
        "10.0.0.3",
        "0.0.0.0/8 ; bogon",
        "255.255.255.255",
        "100.64.0.0/255.192.0.0",
    ]
    path = tmp_path / "mixed.txt"
    path.write_text("\n".join(lines) + "\n")
    assert ours([path]) == iprange([path])

"""Sources against a real loopback server: every fault falls back to the last good copy.

The last good copy lives in a real state directory; the server serves a good list first, then
each fault. A fault must never change what the source contributes, and the result must say
why (DESIGN §6).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from egressguard.adapters.http import HttpxFetcher, NullProgress
from egressguard.adapters.state import DirectoryStateStore
from egressguard.app.sources import SourceLoader, SourceResult, Status
from egressguard.feeds import registry
from egressguard.feeds.result import ParsedFeed

sys.path.insert(0, str(Path(__file__).parent))
from feedserver import FeedServer, Route, feed_server, tls_feed_server

pytestmark = pytest.mark.integration
__all__ = ["feed_server", "tls_feed_server"]


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def loader(tmp_path: Path, clock: Clock | None = None, **kw: Any) -> SourceLoader:
    fetcher = HttpxFetcher(
        backoff=0.01,
        backoff_cap=0.02,
        sleep=lambda _s: None,
        progress=NullProgress(),
        ca_file=kw.pop("ca_file", None),
    )
    return SourceLoader(
        fetcher=fetcher,
        state=DirectoryStateStore(tmp_path / "state"),
        clock=clock or Clock(),
        **kw,
    )


def spec(url: str, fmt: str, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "feed",
        "url": url,
        "format": fmt,
        "insecure_http": True,
        "timeout": 0.5,
        "attempts": 2,
        "min_interval": 0,
    }
    base.update(extra)
    return base


@pytest.fixture(scope="module")
def spamhaus_text(data_dir: Path) -> bytes:
    return (data_dir / "feeds/spamhaus/drop.txt.textformat-2025-03-02").read_bytes()


def _cut_before_eof(body: bytes) -> bytes:
    lines = body.splitlines(keepends=True)
    return b"".join(lines[: len(lines) // 2])


FAULTS: list[tuple[str, dict[str, Any], str]] = [
    ("slow", {"delay": 5.0}, "timed out"),
    ("http-500", {"status": 500}, "HTTP 500"),
    ("http-503", {"status": 503}, "HTTP 503"),
    ("empty-200", {"body": b""}, "empty response body"),
    ("garbage-text", {"body": b"lorem ipsum dolor\nsit amet\n; EOF\n"}, "0 entries"),
    ("garbage-binary", {"body": bytes(range(256)) * 4}, "binary data"),
    ("html-error-page", {"body": b"<!DOCTYPE html><html><body>Error</body></html>"}, "HTML"),
    ("truncated", {"body": "TRUNCATE"}, "no '; EOF'"),
    ("oversized", {"body": "HUGE"}, "size cap"),
]


@pytest.mark.parametrize(("fault", "route", "why"), FAULTS, ids=[f[0] for f in FAULTS])
def test_fault_falls_back_to_last_good_copy(  # noqa: PLR0917 - fixtures + parameters
    tmp_path: Path,
    feed_server: FeedServer,
    spamhaus_text: bytes,
    fault: str,
    route: dict[str, Any],
    why: str,
) -> None:
    feed_server.routes["/drop.txt"] = Route(spamhaus_text)
    src = spec(feed_server.url("/drop.txt"), "spamhaus-text", size_cap=len(spamhaus_text) + 1000)
    load = loader(tmp_path)
    good = load.load(src)
    assert good.status is Status.FRESH
    assert good.entries == 1360

    body = route.get("body", spamhaus_text)
    if body == "TRUNCATE":
        body = _cut_before_eof(spamhaus_text)
    elif body == "HUGE":
        body = spamhaus_text * 3
    feed_server.routes["/drop.txt"] = Route(
        body, status=route.get("status", 200), delay=route.get("delay", 0.0)
    )
    again = load.load(src)
    assert again.status is Status.FALLBACK
    assert why in (again.reason or "")
    assert (again.reason or "").count(feed_server.url("/drop.txt")) == 1  # named once
    assert again.addresses == good.addresses
    assert again.entries == good.entries
    assert again.parts[0].sha256 == good.parts[0].sha256

    # and without a last good copy the same fault leaves nothing to contribute
    fresh = loader(tmp_path / "other").load(src)
    assert fresh.status is Status.FAILED
    assert not fresh.ok
    assert not fresh.addresses
    assert why in (fresh.reason or "")


@pytest.mark.parametrize(
    ("fmt", "path", "damage", "why"),
    [
        ("spamhaus-json", "feeds/spamhaus/drop_v4.json", "drop-data-line", "records=1406"),
        ("spamhaus-json", "feeds/spamhaus/drop_v4.json", "drop-last-line", "no metadata"),
        (
            "abusech",
            "feeds/abusech/feodo_ipblocklist_recommended.2022-07-08.txt",
            "drop-data-line",
            "END 244 entries",
        ),
        ("plain", "feeds/firehol-2022/dshield.netset", "drop-last-line", "declares 19 subnets"),
    ],
)
def test_integrity_markers_catch_truncation(  # noqa: PLR0917 - fixtures + parameters
    tmp_path: Path,
    feed_server: FeedServer,
    data_dir: Path,
    fmt: str,
    path: str,
    damage: str,
    why: str,
) -> None:
    good_body = (data_dir / path).read_bytes()
    lines = good_body.splitlines(keepends=True)
    if damage == "drop-last-line":
        bad = b"".join(lines[:-1])
    else:  # remove one data line in the middle
        data = [i for i, ln in enumerate(lines) if ln[:1] not in (b"#", b"{") or b'"cidr"' in ln]
        bad = b"".join(ln for i, ln in enumerate(lines) if i != data[len(data) // 2])
    feed_server.routes["/list"] = Route(good_body)
    load = loader(tmp_path)
    good = load.load(spec(feed_server.url("/list"), fmt))
    assert good.status is Status.FRESH
    feed_server.routes["/list"] = Route(bad)
    again = load.load(spec(feed_server.url("/list"), fmt))
    assert again.status is Status.FALLBACK
    assert why in (again.reason or "")
    assert again.addresses == good.addresses


def test_conditional_request_and_304_without_reparsing(
    tmp_path: Path, feed_server: FeedServer, data_dir: Path
) -> None:
    body = (data_dir / "feeds/spamhaus/drop_v4.json").read_bytes()
    feed_server.routes["/drop_v4.json"] = Route(body, etag='"abc"')
    calls: list[int] = []
    real = registry.FORMATS["spamhaus-json"]

    def counting(data: bytes, options: dict[str, Any]) -> ParsedFeed:
        calls.append(len(data))
        return real.parse(data, options)

    formats = dict(registry.FORMATS)
    formats["spamhaus-json"] = registry.FeedFormat("spamhaus-json", counting, "counted", 0)
    clock = Clock()
    load = loader(tmp_path, clock, formats=formats)
    src = spec(feed_server.url("/drop_v4.json"), "spamhaus-json")
    first = load.load(src)
    assert first.status is Status.FRESH
    assert first.entries == 1406
    assert calls == [len(body)]

    clock.now += 7200
    second = load.load(src)
    assert feed_server.seen[-1].headers.get("if-none-match") == '"abc"'
    assert second.status is Status.NOT_MODIFIED
    assert second.parts[0].parsed is False
    assert calls == [len(body)], "a 304 must not parse the stored copy again"
    assert second.addresses == first.addresses
    assert second.parts[0].checked_at == clock.now
    assert second.parts[0].fetched_at == first.parts[0].fetched_at

    # a fresh loader process (same state dir) also answers from the parse cache
    third = loader(tmp_path, clock, formats=formats).load(src)
    assert third.status is Status.NOT_MODIFIED
    assert calls == [len(body)]
    assert third.addresses == first.addresses


def test_provider_min_interval_is_respected(
    tmp_path: Path, feed_server: FeedServer, spamhaus_text: bytes
) -> None:
    feed_server.routes["/drop.txt"] = Route(spamhaus_text)
    clock = Clock()
    load = loader(tmp_path, clock)
    src = spec(feed_server.url("/drop.txt"), "spamhaus-text")
    del src["min_interval"]  # Spamhaus' own floor: one download per hour
    assert load.load(src).status is Status.FRESH
    clock.now += 600
    limited = load.load(src)
    assert limited.status is Status.NOT_MODIFIED
    assert "min_interval" in (limited.parts[0].reason or "")
    assert len(feed_server.seen) == 1
    clock.now += 3600
    assert load.load(src).status is Status.NOT_MODIFIED  # identical bytes
    assert len(feed_server.seen) == 2


def test_empty_feed_is_a_failure_unless_allowed(
    tmp_path: Path, feed_server: FeedServer, data_dir: Path
) -> None:
    feodo = (data_dir / "feeds/firehol-2022/feodo.ipset").read_bytes()
    feed_server.routes["/feodo.ipset"] = Route(feodo)
    strict = loader(tmp_path / "a").load(spec(feed_server.url("/feodo.ipset"), "plain"))
    assert strict.status is Status.FAILED
    assert "0 entries" in (strict.reason or "")
    lenient = loader(tmp_path / "b").load(
        spec(feed_server.url("/feodo.ipset"), "plain", allow_empty=True)
    )
    assert lenient.status is Status.FRESH
    assert lenient.entries == 0
    assert not lenient.addresses


def test_rir_md5_checked_and_tampered_copy_refused(
    tmp_path: Path, feed_server: FeedServer, data_dir: Path
) -> None:
    rir = data_dir / "rir/delegated-afrinic-extended-latest"
    body = rir.read_bytes()
    md5 = (data_dir / "rir/delegated-afrinic-extended-latest.md5").read_bytes()
    feed_server.routes["/afrinic"] = Route(body)
    feed_server.routes["/afrinic.md5"] = Route(md5)
    src = {
        "name": "africa",
        "geo": {"provider": "rir", "urls": [feed_server.url("/afrinic")], "countries": ["ZA"]},
        "insecure_http": True,
        "timeout": 2,
    }
    load = loader(tmp_path)
    good = load.load(src)
    assert good.status is Status.FRESH
    assert good.parts[0].checksum == "md5 verified"
    assert sorted(good.by_country) == ["ZA"]

    # one digit changed inside a record: still parses, but the MD5 no longer matches
    tampered = body.replace(b"|ZA|ipv4|164.146.0.0|", b"|ZA|ipv4|164.147.0.0|", 1)
    assert tampered != body
    feed_server.routes["/afrinic"] = Route(tampered)
    bad = load.load(src)
    assert bad.status is Status.FALLBACK
    assert "MD5 mismatch" in (bad.reason or "")
    assert bad.addresses == good.addresses


def test_licence_key_comes_from_the_environment_and_is_never_stored(
    tmp_path: Path, feed_server: FeedServer, data_dir: Path
) -> None:
    mmdb = (data_dir / "geo-formats/tiny-country-fixture.mmdb").read_bytes()
    feed_server.routes["/db?license_key=s3cret&suffix=tar"] = Route(mmdb)
    src = {
        "name": "mm",
        "geo": {
            "provider": "maxmind-mmdb",
            "urls": [feed_server.url("/db?license_key={license_key}&suffix=tar")],
            "countries": ["CN"],
            "license_key_env": "EG_TEST_MAXMIND_KEY",
        },
        "insecure_http": True,
    }
    missing = loader(tmp_path / "a", environ={}).load(src)
    assert missing.status is Status.FAILED
    assert "EG_TEST_MAXMIND_KEY" in (missing.reason or "")

    got = loader(tmp_path / "b", environ={"EG_TEST_MAXMIND_KEY": "s3cret"}).load(src)
    assert got.status is Status.FRESH, got.reason
    assert got.addresses.contains_address("1.0.1.1")
    assert "s3cret" not in got.parts[0].location
    stored = b"".join(p.read_bytes() for p in (tmp_path / "b").rglob("meta.json"))
    assert b"s3cret" not in stored


def test_redirect_to_http_when_https_required_falls_back(
    tmp_path: Path,
    tls_feed_server: tuple[FeedServer, str],
    feed_server: FeedServer,
    spamhaus_text: bytes,
) -> None:
    server, ca_file = tls_feed_server
    server.routes["/drop.txt"] = Route(spamhaus_text)
    src = {"name": "drop", "url": server.url("/drop.txt"), "format": "spamhaus-text"}
    load = loader(tmp_path, ca_file=ca_file)
    good = load.load({**src, "min_interval": 0})
    assert good.status is Status.FRESH
    feed_server.routes["/drop.txt"] = Route(b"198.51.100.0/24\n; EOF\n")
    server.routes["/drop.txt"] = Route(redirect=feed_server.url("/drop.txt"))
    again: SourceResult = load.load({**src, "min_interval": 0})
    assert again.status is Status.FALLBACK
    assert "redirected to plain http" in (again.reason or "")
    assert again.addresses == good.addresses
    assert feed_server.seen == []

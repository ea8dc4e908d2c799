"""The HTTP fetcher against a real server on loopback: every fault, TLS, redirects, 304."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from egressguard import __version__
from egressguard.adapters.http import (
    FetchError,
    FetchRequest,
    HttpxFetcher,
    NullProgress,
    TerminalProgress,
    auto_progress,
    redact_url,
)

sys.path.insert(0, str(Path(__file__).parent))
from feedserver import FeedServer, Route, feed_server, tls_feed_server

pytestmark = pytest.mark.integration
__all__ = ["feed_server", "tls_feed_server"]  # re-exported fixtures

BODY = b"192.0.2.0/24\n198.51.100.7\n"


def fetcher(**kw: object) -> HttpxFetcher:
    sleeps: list[float] = []
    f = HttpxFetcher(
        backoff=0.01,
        backoff_cap=0.05,
        sleep=sleeps.append,
        progress=NullProgress(),
        **kw,  # type: ignore[arg-type]
    )
    f.sleeps = sleeps  # type: ignore[attr-defined]
    return f


def req(url: str, **kw: object) -> FetchRequest:
    return FetchRequest(url=url, allow_http=True, **kw)  # type: ignore[arg-type]


def test_ok_sends_user_agent_and_returns_body_and_validators(feed_server: FeedServer) -> None:
    feed_server.routes["/list"] = Route(
        BODY, etag='"v1"', last_modified="Mon, 01 Jan 2024 00:00:00 GMT"
    )
    got = fetcher().fetch(req(feed_server.url("/list")))
    assert got.status == 200
    assert got.body == BODY
    assert got.etag == '"v1"'
    assert got.last_modified == "Mon, 01 Jan 2024 00:00:00 GMT"
    assert feed_server.seen[0].headers["user-agent"] == f"egressguard/{__version__}"
    assert "if-none-match" not in feed_server.seen[0].headers


def test_conditional_request_gets_304(feed_server: FeedServer) -> None:
    feed_server.routes["/list"] = Route(BODY, etag='"v1"')
    f = fetcher()
    first = f.fetch(req(feed_server.url("/list")))
    second = f.fetch(req(feed_server.url("/list"), etag=first.etag))
    assert feed_server.seen[1].headers["if-none-match"] == '"v1"'
    assert second.not_modified
    assert second.body == b""
    assert second.etag == '"v1"'


def test_if_modified_since_gets_304(feed_server: FeedServer) -> None:
    lm = "Tue, 02 Jan 2024 00:00:00 GMT"
    feed_server.routes["/list"] = Route(BODY, last_modified=lm)
    got = fetcher().fetch(req(feed_server.url("/list"), last_modified=lm))
    assert feed_server.seen[0].headers["if-modified-since"] == lm
    assert got.not_modified


def test_slow_server_times_out_as_transient(feed_server: FeedServer) -> None:
    feed_server.routes["/slow"] = Route(BODY, delay=10)
    with pytest.raises(FetchError) as info:
        fetcher().fetch(req(feed_server.url("/slow"), timeout=0.3, attempts=1))
    assert info.value.kind == "timeout"
    assert info.value.transient


def test_dripping_body_hits_the_overall_deadline(feed_server: FeedServer) -> None:
    # each byte arrives well within the per-read timeout, but the whole body never would
    feed_server.routes["/drip"] = Route(b"x" * 200, drip=0.05)
    with pytest.raises(FetchError) as info:
        fetcher().fetch(req(feed_server.url("/drip"), timeout=0.6, attempts=1))
    assert info.value.kind == "timeout"


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retried_then_reported(feed_server: FeedServer, status: int) -> None:
    feed_server.routes["/err"] = Route(b"oops", status=status)
    f = fetcher()
    with pytest.raises(FetchError) as info:
        f.fetch(req(feed_server.url("/err"), attempts=3))
    assert info.value.kind == "http-status"
    assert info.value.status == status
    assert info.value.transient
    assert feed_server.routes["/err"].hits == 3
    assert len(f.sleeps) == 2  # type: ignore[attr-defined]


def test_transient_failure_then_success(feed_server: FeedServer) -> None:
    feed_server.routes["/flaky"] = Route(BODY, fail_first=2, fail_status=503)
    got = fetcher().fetch(req(feed_server.url("/flaky"), attempts=3))
    assert got.body == BODY
    assert got.attempts == 3


def test_client_errors_are_not_retried(feed_server: FeedServer) -> None:
    with pytest.raises(FetchError) as info:
        fetcher().fetch(req(feed_server.url("/missing"), attempts=3))
    assert info.value.status == 404
    assert not info.value.transient
    assert len(feed_server.seen) == 1


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversized_body_is_aborted(feed_server: FeedServer, chunked: bool) -> None:
    feed_server.routes["/big"] = Route(b"1.2.3.4\n" * 200_000, chunked=chunked)
    with pytest.raises(FetchError) as info:
        fetcher().fetch(req(feed_server.url("/big"), size_cap=100_000))
    assert info.value.kind == "too-large"
    assert not info.value.transient


def test_plain_http_is_refused_unless_allowed(feed_server: FeedServer) -> None:
    feed_server.routes["/list"] = Route(BODY)
    with pytest.raises(FetchError) as info:
        fetcher().fetch(FetchRequest(url=feed_server.url("/list")))
    assert info.value.kind == "insecure"
    assert feed_server.seen == []  # refused before any byte went out


def test_redirect_is_followed(feed_server: FeedServer) -> None:
    feed_server.routes["/old"] = Route(redirect="/new")
    feed_server.routes["/new"] = Route(BODY)
    got = fetcher().fetch(req(feed_server.url("/old")))
    assert got.body == BODY
    assert got.url.endswith("/new")


def test_https_works_with_a_custom_ca(tls_feed_server: tuple[FeedServer, str]) -> None:
    server, ca_file = tls_feed_server
    server.routes["/list"] = Route(BODY)
    got = fetcher(ca_file=ca_file).fetch(FetchRequest(url=server.url("/list")))
    assert got.body == BODY


def test_https_rejects_an_unknown_certificate(tls_feed_server: tuple[FeedServer, str]) -> None:
    server, _ = tls_feed_server
    server.routes["/list"] = Route(BODY)
    with pytest.raises(FetchError) as info:
        fetcher().fetch(FetchRequest(url=server.url("/list"), attempts=1))
    assert info.value.kind == "network"


def test_redirect_from_https_to_http_is_refused(
    tls_feed_server: tuple[FeedServer, str], feed_server: FeedServer
) -> None:
    server, ca_file = tls_feed_server
    feed_server.routes["/list"] = Route(BODY)
    server.routes["/list"] = Route(redirect=feed_server.url("/list"))
    with pytest.raises(FetchError) as info:
        fetcher(ca_file=ca_file).fetch(FetchRequest(url=server.url("/list")))
    assert info.value.kind == "insecure"
    assert "redirected to plain http" in info.value.message
    assert feed_server.seen == []


def test_credentials_are_dropped_on_a_cross_origin_redirect(feed_server: FeedServer) -> None:
    other = FeedServer()
    other.start()
    try:
        other.routes["/file"] = Route(BODY)
        feed_server.routes["/dl"] = Route(redirect=other.url("/file"))
        got = fetcher().fetch(req(feed_server.url("/dl"), auth=("acct", "secret")))
        assert got.body == BODY
        assert "authorization" in feed_server.seen[0].headers
        assert "authorization" not in other.seen[0].headers
    finally:
        other.close()


def test_backoff_grows_and_is_capped() -> None:
    f = HttpxFetcher(backoff=1.0, backoff_cap=8.0, rng=lambda: 1.0, progress=NullProgress())
    assert [f.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    low = HttpxFetcher(backoff=1.0, backoff_cap=8.0, rng=lambda: 0.0, progress=NullProgress())
    assert [low.delay(n) for n in range(1, 4)] == [0.5, 1.0, 2.0]
    assert f.delay(1, retry_after=5.0) == 5.0
    assert f.delay(1, retry_after=500.0) == 8.0


def test_redact_url_hides_keys_and_user_info() -> None:
    url = "https://acct:pw@download.example/app?edition_id=X&license_key=abc123&suffix=zip"
    assert (
        redact_url(url)
        == "https://***@download.example/app?edition_id=X&license_key=***&suffix=zip"
    )


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_only_on_a_terminal(feed_server: FeedServer) -> None:
    assert isinstance(auto_progress(io.StringIO()), NullProgress)
    tty = _Tty()
    bar = auto_progress(tty)
    assert isinstance(bar, TerminalProgress)
    feed_server.routes["/list"] = Route(BODY)
    HttpxFetcher(progress=bar).fetch(req(feed_server.url("/list"), label="demo"))
    out = tty.getvalue()
    assert out.startswith("\rdemo [")
    assert "100%" in out
    assert out.endswith("\n")

"""HTTP fetching for feed and geo-IP sources; the only module that imports ``httpx``.

Why it looks the way it does (DESIGN §6, reference/blocklist-practice.md §3):

* **HTTPS by default.** A ``http://`` URL, or a redirect that lands on one, is refused unless the
  request says ``allow_http`` (a source's ``insecure_http: true``). Redirects are followed by
  hand so that the scheme of every hop is checked *before* it is requested, and credentials are
  dropped when a redirect leaves the origin (MaxMind redirects downloads to a storage host).
* **Bounded in time and size.** ``timeout`` is both httpx's per-operation timeout and an overall
  deadline checked while streaming, so a server that dribbles bytes cannot hold a build
  forever. The body is streamed and the download aborted as soon as it passes ``size_cap``
  (also when ``Content-Length`` announces more); decoded bytes count, so a gzip bomb is cut too.
* **Retries only what may succeed later**: timeouts, connection errors, 429 and 5xx, at most
  ``attempts`` tries, with exponential backoff and jitter (honouring a short ``Retry-After``).
  The decision lives in the error: ``FetchError.transient``.
* **Conditional requests**: ``If-None-Match`` / ``If-Modified-Since`` from the last good copy;
  a 304 comes back as a ``FetchResponse`` with ``not_modified`` set and no body.
* A ``User-Agent: egressguard/<version>`` so providers can tell who is asking.
* A progress line on stderr when stderr is a terminal, nothing otherwise.

``FakeFetcher`` (in this module, for unit tests of the use cases) answers from a table.
"""

from __future__ import annotations

import random
import ssl
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, TextIO
from urllib.parse import urljoin, urlsplit

import certifi
import httpx

from egressguard import __version__
from egressguard.errors import SourceError

__all__ = [
    "DEFAULT_ATTEMPTS",
    "DEFAULT_SIZE_CAP",
    "DEFAULT_TIMEOUT",
    "USER_AGENT",
    "FakeFetcher",
    "FetchError",
    "FetchRequest",
    "FetchResponse",
    "Fetcher",
    "HttpxFetcher",
    "NullProgress",
    "Progress",
    "TerminalProgress",
    "auto_progress",
    "redact_url",
]

USER_AGENT = f"egressguard/{__version__}"
DEFAULT_TIMEOUT = 30.0
DEFAULT_SIZE_CAP = 64 * 1024 * 1024
DEFAULT_ATTEMPTS = 3
_MAX_REDIRECTS = 5
_SECRET_QUERY_KEYS = ("license_key", "key", "token", "apikey", "api_key", "password")


def redact_url(url: str) -> str:
    """The URL with user info and secret-looking query values replaced by ``***``.

    MaxMind's legacy download URLs carry the licence key in the query string; URLs end up in
    logs, state metadata and status output, so they are redacted everywhere but on the wire.
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = []
        for item in query.split("&"):
            key, sep, value = item.partition("=")
            if sep and key.lower() in _SECRET_QUERY_KEYS:
                value = "***"
            pairs.append(f"{key}{sep}{value}")
        query = "&".join(pairs)
    return parts._replace(netloc=netloc, query=query).geturl()


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """One download. ``etag``/``last_modified`` come from the last good copy, if any."""

    url: str
    timeout: float = DEFAULT_TIMEOUT
    size_cap: int = DEFAULT_SIZE_CAP
    attempts: int = DEFAULT_ATTEMPTS
    allow_http: bool = False
    etag: str | None = None
    last_modified: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    auth: tuple[str, str] | None = None
    label: str = ""


@dataclass(frozen=True, slots=True)
class FetchResponse:
    """A successful answer: 200 with ``body``, or 304 (``not_modified``) with an empty body."""

    url: str
    status: int
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    attempts: int = 1

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class FetchError(SourceError):
    """A download failed. ``kind`` names the failure for status output and metrics.

    Kinds: ``timeout``, ``network``, ``http-status``, ``too-large``, ``insecure``,
    ``redirects``, ``bad-url``. ``status`` is the HTTP status when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        url: str,
        status: int | None = None,
        hint: str | None = None,
        transient: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, hint=hint, transient=transient)
        self.kind = kind
        self.url = url
        self.status = status
        self.retry_after = retry_after


class Fetcher(Protocol):
    """Downloads one URL under the rules above; raises ``FetchError``."""

    def fetch(self, request: FetchRequest) -> FetchResponse: ...


class Progress(Protocol):
    """Receives download progress; the terminal implementation draws one line on stderr."""

    def start(self, label: str, total: int | None) -> None: ...

    def advance(self, done: int) -> None: ...

    def finish(self) -> None: ...


class NullProgress:
    """Says nothing: the default when stderr is not a terminal (logs, CI, pipes)."""

    def start(self, label: str, total: int | None) -> None:
        return None

    def advance(self, done: int) -> None:
        return None

    def finish(self) -> None:
        return None


def _mib(n: int) -> str:
    return f"{n / 1048576:.1f} MiB"


class TerminalProgress:
    """One self-overwriting line on a terminal, redrawn at most ten times a second."""

    def __init__(self, stream: TextIO | None = None, *, width: int = 24) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._width = width
        self._label = ""
        self._total: int | None = None
        self._last = 0.0
        self._done = 0

    def start(self, label: str, total: int | None) -> None:
        self._label, self._total, self._last, self._done = label, total, 0.0, 0

    def advance(self, done: int) -> None:
        self._done = done
        now = time.monotonic()
        if now - self._last >= 0.1:
            self._last = now
            self._draw()

    def _draw(self) -> None:
        if self._total:
            frac = min(1.0, self._done / self._total)
            bar = "#" * int(frac * self._width)
            text = (
                f"{self._label} [{bar:<{self._width}}] {frac * 100:3.0f}% "
                f"{_mib(self._done)} / {_mib(self._total)}"
            )
        else:
            text = f"{self._label} {_mib(self._done)}"
        self._stream.write("\r" + text + "\x1b[K")
        self._stream.flush()

    def finish(self) -> None:
        self._draw()
        self._stream.write("\n")
        self._stream.flush()


def auto_progress(stream: TextIO | None = None) -> Progress:
    """``TerminalProgress`` when the stream (stderr by default) is a TTY, else ``NullProgress``."""
    target = stream if stream is not None else sys.stderr
    try:
        tty = target.isatty()
    except (AttributeError, ValueError):
        tty = False
    return TerminalProgress(target) if tty else NullProgress()


def _check_scheme(url: str, allow_http: bool, *, original: str) -> None:
    scheme = urlsplit(url).scheme.lower()
    if scheme == "https":
        return
    if scheme == "http":
        if allow_http:
            return
        was_redirect = url != original
        what = f"redirected to plain http ({redact_url(url)})" if was_redirect else "plain http"
        raise FetchError(
            f"{redact_url(original)}: {what} refused; HTTPS is required",
            kind="insecure",
            url=original,
            hint="use an https:// URL, or set insecure_http: true on the source if you must",
        )
    raise FetchError(
        f"{redact_url(original)}: unsupported URL scheme {scheme!r}",
        kind="bad-url",
        url=original,
        hint="feed URLs must start with https://",
    )


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    """System trust store plus certifi's bundle, plus ``ca_file`` when given; verification on."""
    ctx = ssl.create_default_context()
    ctx.load_verify_locations(cafile=certifi.where())
    if ca_file is not None:
        try:
            ctx.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise SourceError(
                f"{ca_file}: cannot load CA bundle: {exc}",
                hint="give a PEM file of CA certificates",
            ) from exc
    return ctx


def _same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)


class HttpxFetcher:
    """The real ``Fetcher``, on an ``httpx.Client``.

    ``sleep`` and ``rng`` are injectable so tests can bound the time spent in backoff;
    ``ca_file`` adds a CA bundle (a corporate proxy's CA, a test CA) to the system's trust
    store and certifi's; ``transport`` passes through to httpx (test transports).
    """

    def __init__(
        self,
        *,
        user_agent: str = USER_AGENT,
        backoff: float = 1.0,
        backoff_cap: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        progress: Progress | None = None,
        ca_file: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._user_agent = user_agent
        self._backoff = backoff
        self._backoff_cap = backoff_cap
        self._sleep = sleep
        self._rng = rng
        self._progress = progress if progress is not None else auto_progress()
        self._verify = _tls_context(ca_file)
        self._transport = transport

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before try ``attempt + 1``: capped exponential with equal jitter."""
        base = min(self._backoff_cap, self._backoff * 2.0 ** (attempt - 1))
        wait = base / 2 + self._rng() * base / 2
        if retry_after is not None:
            wait = max(wait, min(retry_after, self._backoff_cap))
        return wait

    def fetch(self, request: FetchRequest) -> FetchResponse:
        _check_scheme(request.url, request.allow_http, original=request.url)
        attempts = max(1, request.attempts)
        last: FetchError | None = None
        for attempt in range(1, attempts + 1):
            try:
                response = self._fetch_once(request)
            except FetchError as err:
                last = err
                if not err.transient or attempt == attempts:
                    raise
                self._sleep(self.delay(attempt, err.retry_after))
                continue
            return replace(response, attempts=attempt)
        raise AssertionError("unreachable") from last  # pragma: no cover

    def _client(self, timeout: float) -> httpx.Client:
        return httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            verify=self._verify,
            transport=self._transport,
            trust_env=False,
        )

    def _fetch_once(self, request: FetchRequest) -> FetchResponse:
        deadline = time.monotonic() + request.timeout
        headers = {"User-Agent": self._user_agent, "Accept-Encoding": "gzip"}
        headers.update(request.headers)
        if request.etag:
            headers["If-None-Match"] = request.etag
        if request.last_modified:
            headers["If-Modified-Since"] = request.last_modified
        auth = request.auth
        url = request.url
        shown = redact_url(request.url)
        try:
            with self._client(request.timeout) as client:
                for _hop in range(_MAX_REDIRECTS + 1):
                    _check_scheme(url, request.allow_http, original=request.url)
                    with client.stream("GET", url, headers=headers, auth=auth) as response:
                        if response.has_redirect_location:
                            location = response.headers.get("Location", "")
                            nxt = urljoin(url, location)
                            if not _same_origin(url, nxt):
                                auth = None
                                headers.pop("Authorization", None)
                            url = nxt
                            continue
                        return self._read(response, request, url, deadline)
                raise FetchError(
                    f"{shown}: more than {_MAX_REDIRECTS} redirects",
                    kind="redirects",
                    url=request.url,
                )
        except httpx.TimeoutException as exc:
            raise FetchError(
                f"{shown}: timed out after {request.timeout:g} s",
                kind="timeout",
                url=request.url,
                transient=True,
                hint="the provider is slow or unreachable; the last good copy is used meanwhile",
            ) from exc
        except httpx.HTTPError as exc:
            raise FetchError(
                f"{shown}: {type(exc).__name__}: {exc}",
                kind="network",
                url=request.url,
                transient=True,
            ) from exc

    def _read(
        self, response: httpx.Response, request: FetchRequest, url: str, deadline: float
    ) -> FetchResponse:
        shown = redact_url(request.url)
        status = response.status_code
        etag = response.headers.get("ETag")
        last_modified = response.headers.get("Last-Modified")
        content_type = response.headers.get("Content-Type")
        if status == 304:
            return FetchResponse(
                url=url, status=304, etag=etag or request.etag, last_modified=last_modified
            )
        if status != 200:
            transient = status == 429 or status >= 500
            raise FetchError(
                f"{shown}: HTTP {status} {response.reason_phrase}".rstrip(),
                kind="http-status",
                url=request.url,
                status=status,
                transient=transient,
                retry_after=_retry_after(response.headers.get("Retry-After")),
                hint=None if transient else "check the URL and any credentials the source needs",
            )
        announced = response.headers.get("Content-Length")
        total = int(announced) if announced and announced.isdigit() else None
        if total is not None and total > request.size_cap:
            raise self._too_large(shown, request, f"announces {total} bytes")
        chunks: list[bytes] = []
        done = 0
        self._progress.start(request.label or shown, total)
        try:
            for chunk in response.iter_bytes():
                done += len(chunk)
                if done > request.size_cap:
                    raise self._too_large(shown, request, f"passed {request.size_cap} bytes")
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("overall deadline passed", request=response.request)
                chunks.append(chunk)
                self._progress.advance(done)
        finally:
            self._progress.finish()
        return FetchResponse(
            url=url,
            status=200,
            body=b"".join(chunks),
            etag=etag,
            last_modified=last_modified,
            content_type=content_type,
        )

    @staticmethod
    def _too_large(shown: str, request: FetchRequest, detail: str) -> FetchError:
        return FetchError(
            f"{shown}: larger than the size cap of {request.size_cap} bytes ({detail})",
            kind="too-large",
            url=request.url,
            hint="raise size_cap on the source if the feed really grew",
        )


#: What a ``FakeFetcher`` answers for one URL: a response, an error, or a function of the request.
FakeAnswer = FetchResponse | FetchError | Callable[[FetchRequest], FetchResponse]


class FakeFetcher:
    """An in-memory ``Fetcher`` for unit tests: answers from a table and records requests.

    ``answers[url]`` is one answer or a sequence consumed in order (the last one repeats).
    The scheme rule is enforced as in the real fetcher, so a test cannot pass by accident on
    a plain-http URL.
    """

    def __init__(self, answers: Mapping[str, FakeAnswer | Sequence[FakeAnswer]]) -> None:
        self._answers: dict[str, Iterator[FakeAnswer]] = {}
        self._last: dict[str, FakeAnswer] = {}
        for url, answer in answers.items():
            seq: list[FakeAnswer] = (
                list(answer) if isinstance(answer, list | tuple) else [answer]  # type: ignore[list-item]
            )
            self._answers[url] = iter(seq)
        self.requests: list[FetchRequest] = []

    def fetch(self, request: FetchRequest) -> FetchResponse:
        _check_scheme(request.url, request.allow_http, original=request.url)
        self.requests.append(request)
        if request.url not in self._answers:
            raise FetchError(
                f"{request.url}: HTTP 404 Not Found",
                kind="http-status",
                url=request.url,
                status=404,
            )
        answer = next(self._answers[request.url], None)
        if answer is None:
            answer = self._last[request.url]
        self._last[request.url] = answer
        if isinstance(answer, FetchError):
            raise answer
        if isinstance(answer, FetchResponse):
            if len(answer.body) > request.size_cap:
                raise FetchError(
                    f"{request.url}: larger than the size cap of {request.size_cap} bytes",
                    kind="too-large",
                    url=request.url,
                )
            return answer
        return answer(request)

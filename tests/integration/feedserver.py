"""A real HTTP(S) server on loopback that serves feeds and every fault a feed can have.

Used by ``tests/integration/test_sources_*.py`` through the ``feed_server`` fixture below
(``tls_feed_server`` for HTTPS). It
binds 127.0.0.1 on a free port, runs ``ThreadingHTTPServer`` in a daemon thread and is shut
down in ``finally`` even when a test fails. Slow answers wait on an event that shutdown sets,
so no handler outlives the test by more than its bound.

Routes are declarative (``Route``); each request is recorded with its headers so tests can
assert what the client sent (``If-None-Match``, ``User-Agent``, ...).
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

__all__ = ["FeedServer", "Route", "feed_server", "tls_feed_server"]


@dataclass
class Route:
    """How one path answers.

    ``fail_first`` answers ``fail_status`` that many times before the normal answer (for
    retry tests). ``delay`` waits before the status line; ``drip`` sends the body one byte
    per ``drip`` seconds. ``etag``/``last_modified`` make it answer 304 to a matching
    conditional request. ``redirect`` answers 302 with that Location. ``chunked`` omits
    Content-Length.
    """

    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drip: float = 0.0
    etag: str | None = None
    last_modified: str | None = None
    redirect: str | None = None
    chunked: bool = False
    fail_first: int = 0
    fail_status: int = 503
    hits: int = 0


@dataclass
class Seen:
    path: str
    headers: dict[str, str]


class FeedServer:
    """Loopback server; ``url(path)`` gives the address of a route."""

    def __init__(self, *, tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Route] = {}
        self.seen: list[Seen] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return None

            def do_GET(self) -> None:
                server._handle(self)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                return None  # failed TLS handshakes and dropped clients are expected here

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=10)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path
        with self._lock:
            self.seen.append(Seen(path, {k.lower(): v for k, v in h.headers.items()}))
            route = self.routes.get(path)
            if route is not None:
                route.hits += 1
        try:
            if route is None:
                self._send(h, 404, b"not found\n", {})
                return
            if route.delay:
                self.stop.wait(route.delay)
            if route.hits <= route.fail_first:
                self._send(h, route.fail_status, b"<html><body>busy</body></html>", {})
                return
            if route.redirect is not None:
                self._send(h, 302, b"", {"Location": route.redirect})
                return
            inm = h.headers.get("If-None-Match")
            ims = h.headers.get("If-Modified-Since")
            if (route.etag and inm == route.etag) or (
                route.last_modified and ims == route.last_modified and not inm
            ):
                extra = {"ETag": route.etag} if route.etag else {}
                self._send(h, 304, b"", extra)
                return
            headers = dict(route.headers)
            if route.etag:
                headers["ETag"] = route.etag
            if route.last_modified:
                headers["Last-Modified"] = route.last_modified
            self._send(h, route.status, route.body, headers, chunked=route.chunked, drip=route.drip)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            return  # the client gave up (timeout, size cap): expected in fault tests

    def _send(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        headers: dict[str, str],
        *,
        chunked: bool = False,
        drip: float = 0.0,
    ) -> None:
        h.send_response(status)
        for key, value in headers.items():
            h.send_header(key, value)
        if status == 304:
            h.end_headers()
            return
        if chunked:
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            step = 65536
            for i in range(0, len(body), step):
                if self.stop.is_set():
                    return
                part = body[i : i + step]
                h.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            h.wfile.write(b"0\r\n\r\n")
            return
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if drip:
            for i in range(len(body)):
                if self.stop.wait(drip):
                    return
                h.wfile.write(body[i : i + 1])
                h.wfile.flush()
            return
        h.wfile.write(body)


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A plain-http loopback feed server (sources use ``insecure_http: true`` with it)."""
    server = FeedServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def tls_feed_server() -> Iterator[tuple[FeedServer, str]]:
    """An HTTPS loopback feed server with a throwaway CA; yields the server and the CA file."""
    import trustme

    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    server = FeedServer(tls=ctx)
    server.start()
    try:
        with ca.cert_pem.tempfile() as ca_file:
            yield server, ca_file
    finally:
        server.close()

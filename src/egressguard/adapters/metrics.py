"""The HTTP endpoint Prometheus scrapes: ``GET /metrics`` (text format 0.0.4) and ``/healthz``.

``probes`` adds or replaces plain-text endpoints whose answer is computed per request, e.g. the
controller's ``/healthz`` and ``/readyz``: a probe returns ``(ok, text)`` and is answered with
200 or 503, which is what kubelet's HTTP probes and load balancers act on. Without ``probes``,
``/healthz`` always answers ``ok``.

Why not ``prometheus_client``: the counters are folded by the pure core
(``egressguard.logs.metrics``), which may not import a metrics library, and already render the
text format; wrapping them in client-library collectors would keep a second copy of every
series for no gain. The format is small, and tests hold it to ``promtool check metrics`` and a
real Prometheus scrape. Serving is ``http.server`` on a daemon thread; ``render`` is called per
scrape and must be thread-safe (the follower folds and renders under one lock).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from egressguard.errors import EnvironmentProblem

__all__ = ["CONTENT_TYPE", "MetricsEndpoint", "MetricsServer"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_TEXT = "text/plain; charset=utf-8"

#: A health or readiness check: ``(ok, explanation)``; answered 200 when ok, else 503.
_Probe = Callable[[], tuple[bool, str]]


class MetricsEndpoint(Protocol):
    """Something that serves ``render()`` to scrapers until stopped."""

    @property
    def address(self) -> tuple[str, int]: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class MetricsServer:
    """Serve ``render()`` at ``http://host:port/metrics`` (``port=0``: pick a free one).

    ``probes`` maps paths (``"/healthz"``, ``"/readyz"``) to checks run on every request.
    """

    def __init__(
        self,
        render: Callable[[], str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        probes: Mapping[str, _Probe] | None = None,
    ):
        self._render = render
        self._probes: dict[str, _Probe] = dict(probes or {})
        self._host = host
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            return self._host, self._port
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        render = self._render
        probes = self._probes

        class Handler(BaseHTTPRequestHandler):
            server_version = "egressguard"

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    body = render().encode("utf-8")
                    self._reply(200, CONTENT_TYPE, body)
                elif path in probes:
                    ok, text = probes[path]()
                    self._reply(200 if ok else 503, _TEXT, (text.rstrip("\n") + "\n").encode())
                elif path == "/healthz":
                    self._reply(200, _TEXT, b"ok\n")
                else:
                    self._reply(404, _TEXT, b"not found\n")

            def _reply(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return  # scrapes every few seconds would drown the event stream on stderr

        try:
            self._server = ThreadingHTTPServer((self._host, self._port), Handler)
        except OSError as exc:
            raise EnvironmentProblem(
                f"cannot listen on {self._host}:{self._port} for metrics: {exc.strerror or exc}",
                hint="pick another --metrics-port, or free the port",
            ) from exc
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="egressguard-metrics", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

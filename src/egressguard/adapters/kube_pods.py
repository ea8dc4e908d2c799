"""The pods of one node, listed and then watched, for attributing blocked packets to pods.

``logs follow --kube`` keeps a ``logs.enrich.PodIndex`` current with this. Pods cross the
boundary as plain manifest dicts, like everywhere in egressguard, in ``PodChange`` values:

* ``PodChange("SYNC", pods=[...])`` — a complete list (at start, and again whenever the watch
  had to start over): the index closes the spans of pods the list no longer has;
* ``PodChange("ADDED" | "MODIFIED" | "DELETED", pod={...})`` — one change.

How (the list-then-watch protocol of the Kubernetes API, "Efficient detection of changes" in
the API concepts): ``GET /api/v1/pods?fieldSelector=spec.nodeName=<node>`` page by page
(``limit``/``continue``), then ``GET ...&watch=1&resourceVersion=<the list's>`` with
``allowWatchBookmarks`` and a server-side ``timeoutSeconds``; each watch request resumes from
the last resourceVersion seen (bookmarks keep it fresh). A ``410 Gone`` (as an HTTP status or
an ``ERROR`` event) means that version was compacted away: list again and send ``SYNC``. Other
failures are retried with capped backoff; the RBAC the DaemonSet needs is ``list`` and
``watch`` on ``pods``. Without a node (``--kube`` outside a pod, no ``NODE_NAME``) all pods of
the cluster are watched.

``stop()`` ends ``run`` from another thread within one read (it closes the open response).
``FakePodWatch`` is the in-package fake: it replays changes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx2
from lightkube.config.client_adapter import Client as _new_http_client
from lightkube.config.client_adapter import ConnectionParams

from egressguard.adapters.kube import RetryPolicy, from_kubeconfig, translate_error
from egressguard.errors import KubeError

__all__ = ["FakePodWatch", "KubePodWatch", "PodChange", "PodWatch", "connect_pods"]

log = logging.getLogger(__name__)

_PATH = "/api/v1/pods"


@dataclass(frozen=True)
class PodChange:
    """``SYNC`` with every pod, or one ``ADDED``/``MODIFIED``/``DELETED`` pod."""

    type: str
    pod: Mapping[str, Any] = field(default_factory=dict)
    pods: tuple[Mapping[str, Any], ...] = ()


class PodWatch(Protocol):
    """Pods as they change, handed to ``sink`` until ``stop`` is set."""

    def run(self, sink: Callable[[PodChange], None], stop: threading.Event) -> None: ...

    def stop(self) -> None: ...


class _Gone(Exception):
    """The watch's resourceVersion is too old: list again."""


class KubePodWatch:
    """:class:`PodWatch` over the Kubernetes API (list, then watch; see the module doc)."""

    def __init__(
        self,
        http: httpx2.Client,
        *,
        node: str | None = None,
        watch_timeout: int = 300,
        page_size: int = 500,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._http = http
        self.node = node
        self.watch_timeout = watch_timeout
        self.page_size = page_size
        self._retry = retry or RetryPolicy(attempts=1_000_000, initial_delay=0.5, max_delay=30.0)
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._response: httpx2.Response | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.lists = 0
        self.watches = 0

    def close(self) -> None:
        self._http.close()

    def _selector(self) -> dict[str, str]:
        return {"fieldSelector": f"spec.nodeName={self.node}"} if self.node else {}

    def _list(self) -> tuple[list[Mapping[str, Any]], str]:
        pods: list[Mapping[str, Any]] = []
        params: dict[str, Any] = {**self._selector(), "limit": self.page_size}
        while True:
            response = self._http.get(_PATH, params=params)
            response.raise_for_status()
            body = response.json()
            items = body.get("items") or []
            pods.extend(p for p in items if isinstance(p, Mapping))
            meta = body.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                self.lists += 1
                return pods, str(meta.get("resourceVersion") or "")
            params["continue"] = token

    def list_pods(self) -> list[Mapping[str, Any]]:
        """The pods now (one list, no watch), e.g. to attribute a log read after the fact."""
        try:
            return self._list()[0]
        except ValueError as exc:
            raise KubeError(f"Kubernetes API: list of pods answered garbage: {exc}") from exc
        except httpx2.HTTPError as exc:
            raise translate_error(exc, "list pods") from exc

    def _watch(self, version: str, sink: Callable[[PodChange], None], stop: threading.Event) -> str:
        """One watch request; returns the last resourceVersion seen."""
        params: dict[str, Any] = {
            **self._selector(),
            "watch": "1",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": self.watch_timeout,
        }
        if version:
            params["resourceVersion"] = version
        timeout = httpx2.Timeout(10.0, read=self.watch_timeout + 30.0)
        request = self._http.build_request("GET", _PATH, params=params, timeout=timeout)
        response = self._http.send(request, stream=True)
        with self._lock:
            self._response = response
        try:
            if response.status_code == 410:
                raise _Gone
            response.raise_for_status()
            self.watches += 1
            for line in response.iter_lines():
                if stop.is_set():
                    break
                if not line.strip():
                    continue
                event = json.loads(line)
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Gone
                    raise KubeError(
                        f"Kubernetes API: watch of pods failed: {obj.get('code')} "
                        f"{obj.get('reason')}: {obj.get('message')}",
                        status=obj.get("code"),
                        transient=True,
                    )
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    sink(PodChange(kind, pod=obj))
        finally:
            with self._lock:
                self._response = None
            response.close()
        return version

    def run(self, sink: Callable[[PodChange], None], stop: threading.Event) -> None:
        """List, send ``SYNC``, watch; again after a 410; until ``stop`` (or ``self.stop()``)."""
        version: str | None = None
        failures = 0
        while not stop.is_set() and not self._stopping.is_set():
            try:
                if version is None:
                    pods, version = self._list()
                    sink(PodChange("SYNC", pods=tuple(pods)))
                version = self._watch(version, sink, stop)
                failures = 0
            except _Gone:
                log.info("pod watch: resourceVersion too old, listing again")
                version = None
            except Exception as exc:
                if stop.is_set() or self._stopping.is_set():
                    return  # the stream was cut on purpose
                if not isinstance(exc, (httpx2.HTTPError, KubeError, ValueError)):
                    raise
                err = (
                    translate_error(exc, "watch pods")
                    if not isinstance(exc, ValueError)
                    else (KubeError(f"Kubernetes API: watch of pods answered garbage: {exc}"))
                )
                if err.status in (401, 403, 404):
                    raise err from exc
                failures += 1
                delay = self._retry.delay(failures, None, self._rng)
                log.warning("%s; retrying in %.1fs", err.message, delay)
                stop.wait(delay)

    def stop(self) -> None:
        """Make ``run`` return soon, from any thread: a read blocked on an idle watch stream is
        not woken by closing the response, so the socket under it is shut down."""
        self._stopping.set()
        with self._lock:
            response = self._response
        if response is None:
            return
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class FakePodWatch:
    """Replays ``changes`` into the sink, then waits for stop."""

    def __init__(self, changes: Iterable[PodChange]) -> None:
        self.changes = list(changes)
        self._stopping = threading.Event()

    def run(self, sink: Callable[[PodChange], None], stop: threading.Event) -> None:
        for change in self.changes:
            if stop.is_set() or self._stopping.is_set():
                return
            sink(change)
        while not stop.wait(0.05) and not self._stopping.is_set():
            pass

    def stop(self) -> None:
        self._stopping.set()


def connect_pods(
    kubeconfig: str | Path | None = None,
    *,
    context: str | None = None,
    node: str | None = None,
    timeout: float = 10.0,
    watch_timeout: int = 300,
) -> KubePodWatch:
    """A pod watch from a kubeconfig file, or from the environment (the pod's service account,
    ``KUBECONFIG``, ``~/.kube/config``) when ``kubeconfig`` is None (``kube.from_kubeconfig``)."""
    params = ConnectionParams(timeout=httpx2.Timeout(timeout))
    http = from_kubeconfig(
        kubeconfig, lambda single: _new_http_client(single, params), context=context
    )
    return KubePodWatch(http, node=node, watch_timeout=watch_timeout)

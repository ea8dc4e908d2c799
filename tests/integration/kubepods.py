"""Pods with LIST and WATCH on the test API server of ``kubeapi`` (kmock), for the pod watch.

``kubeapi.ApiServer`` keeps Calico objects and Leases and has no watch. This module adds, as
reactions installed on a running server (they take precedence over its fallback), the part of
the core API that ``adapters.kube_pods`` uses, with the semantics of a real API server
(Kubernetes "API Concepts": efficient detection of changes, watch bookmarks, 410 Gone):

* ``GET /api/v1/pods`` and ``/api/v1/namespaces/<ns>/pods``: a PodList whose
  ``metadata.resourceVersion`` is the server's current version; ``fieldSelector`` with
  ``spec.nodeName=<n>`` (and ``metadata.namespace``/``metadata.name``) filters; ``limit`` and
  ``continue`` page.
* ``...?watch=1&resourceVersion=<rv>``: a chunked stream of JSON lines ``{"type", "object"}``
  for every change after ``rv`` (from the change history), then live changes, until
  ``timeoutSeconds`` passes or the test ends. A version older than the oldest kept change
  (after :meth:`PodsApi.compact`) answers an ``ERROR`` event with a 410 Status, as a real server
  does for a watch. Without ``resourceVersion`` the current pods come first as ``ADDED``. With
  ``allowWatchBookmarks`` a ``BOOKMARK`` with the current version starts the stream (so the
  response headers go out at once, as a real server's do).
* Pods moved off the selected node (``spec.nodeName`` changed) are sent as ``DELETED`` to a
  watch that selects by node, as the real watch cache does for objects leaving a selector.

Test side: ``create``, ``update``, ``delete`` (each bumps the version and notifies watchers),
``compact`` (forget history), ``drop_watches`` (end every open watch, like a connection loss).
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import kmock
from kubeapi import TOKEN, KubeApi, json_answer, status_body


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _selector_matches(selector: str, pod: Mapping[str, Any]) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        key, op, value = (
            term.partition("!=") if "!=" in term else term.partition("==") if "==" in term
            else term.partition("=")
        )  # fmt: skip
        path = {
            "spec.nodeName": ("spec", "nodeName"),
            "metadata.namespace": ("metadata", "namespace"),
            "metadata.name": ("metadata", "name"),
        }.get(key.strip())
        if path is None:
            return False
        have: Any = pod
        for part in path:
            have = have.get(part) if isinstance(have, Mapping) else None
        equal = (have or "") == value.strip()
        if equal == (op == "!="):
            return False
    return True


class PodsApi:
    """Pods on a running ``KubeApi``; use :func:`pods_api`."""

    def __init__(self, api: KubeApi) -> None:
        self.api = api
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.history: list[tuple[int, str, dict[str, Any]]] = []
        self.oldest = 0  # changes at or below this version are forgotten
        self.watchers: list[asyncio.Queue[tuple[int, str, dict[str, Any]] | None]] = []
        self.watch_requests: list[dict[str, str]] = []
        self.list_requests: list[dict[str, str]] = []
        self.closing = False

    # -- server side (runs on the server's loop)

    def _version(self) -> int:
        return int(self.api.server._bump())

    @staticmethod
    def _is_pods(request: kmock.Request) -> bool:
        res = request.resource
        return (
            res is not None
            and res.group in ("", None)
            and res.version == "v1"
            and res.plural == "pods"
            and request.method.value == "GET"
        )

    def _answer(self, request: kmock.Request) -> Any:
        params = {k: str(v) for k, v in request.params.items()}
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return json_answer(401, status_body(401, "Unauthorized", "Unauthorized"))
        namespace = request.namespace
        selector = params.get("fieldSelector", "")
        if request.name is not None:
            pod = self.pods.get((namespace or "", request.name))
            if pod is None:
                return json_answer(404, status_body(404, "NotFound", "pod not found"))
            return json_answer(200, pod)
        if params.get("watch") in ("1", "true"):
            self.watch_requests.append(params)
            return self._watch(namespace, selector, params)
        self.list_requests.append(params)
        items = [
            copy.deepcopy(p)
            for (ns, _), p in sorted(self.pods.items())
            if (namespace is None or ns == namespace) and _selector_matches(selector, p)
        ]
        start = int(params.get("continue") or 0)
        limit = int(params.get("limit") or 0) or len(items) or 1
        page = items[start : start + limit]
        meta: dict[str, Any] = {"resourceVersion": str(self.api.server.version)}
        if start + limit < len(items):
            meta["continue"] = str(start + limit)
        return json_answer(200, {"apiVersion": "v1", "kind": "PodList", "metadata": meta,
                                 "items": page})  # fmt: skip

    async def _watch(
        self, namespace: str | None, selector: str, params: Mapping[str, str]
    ) -> AsyncIterator[Any]:
        def visible(pod: Mapping[str, Any]) -> bool:
            ns = (pod.get("metadata") or {}).get("namespace")
            return (namespace is None or ns == namespace) and _selector_matches(selector, pod)

        def event(kind: str, pod: Mapping[str, Any]) -> dict[str, Any]:
            return {"type": kind, "object": copy.deepcopy(pod)}

        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(params.get("timeoutSeconds") or 1800)
        queue: asyncio.Queue[tuple[int, str, dict[str, Any]] | None] = asyncio.Queue()
        self.watchers.append(queue)
        try:
            if params.get("allowWatchBookmarks") == "true":
                yield event("BOOKMARK", {"kind": "Pod", "apiVersion": "v1", "metadata": {
                    "resourceVersion": str(self.api.server.version)}})  # fmt: skip
            else:
                yield b""  # the headers go out now
            raw = params.get("resourceVersion")
            if not raw:
                for pod in sorted(self.pods.values(), key=lambda p: p["metadata"]["name"]):
                    if visible(pod):
                        yield event("ADDED", pod)
            else:
                since = int(raw)
                if since < self.oldest:
                    yield {
                        "type": "ERROR",
                        "object": status_body(410, "Expired", f"too old resource version: {since}"),
                    }
                    return
                for version, kind, pod in self.history:
                    if version > since and visible(pod):
                        yield event(kind, pod)
            while not self.closing:
                left = deadline - loop.time()
                if left <= 0:
                    return
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=min(left, 0.2))
                except TimeoutError:
                    continue
                if item is None:
                    return
                _, kind, pod = item
                if visible(pod):
                    yield event(kind, pod)
        finally:
            self.watchers.remove(queue)

    def _change(self, kind: str, pod: dict[str, Any]) -> None:
        version = self._version()
        pod["metadata"]["resourceVersion"] = str(version)
        item = (version, kind, copy.deepcopy(pod))
        self.history.append(item)
        for queue in self.watchers:
            queue.put_nowait(item)

    # -- test side

    def install(self) -> None:
        def install() -> None:
            self.api.server[self._is_pods] << self._answer

        self.api._in_loop(install)

    def create(self, pod: Mapping[str, Any]) -> dict[str, Any]:
        def do() -> dict[str, Any]:
            body = copy.deepcopy(dict(pod))
            meta = body.setdefault("metadata", {})
            meta.setdefault("namespace", "default")
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", _now())
            body.setdefault("apiVersion", "v1")
            body.setdefault("kind", "Pod")
            self.pods[(meta["namespace"], meta["name"])] = body
            self._change("ADDED", body)
            return copy.deepcopy(body)

        result: dict[str, Any] = self.api._in_loop(do)
        return result

    def update(self, namespace: str, name: str, **changes: Any) -> dict[str, Any]:
        """Merge ``changes`` (top-level keys: spec, status, metadata) into the pod."""

        def do() -> dict[str, Any]:
            body = self.pods[(namespace, name)]
            for key, value in changes.items():
                if isinstance(value, Mapping):
                    body.setdefault(key, {}).update(copy.deepcopy(dict(value)))
                else:
                    body[key] = copy.deepcopy(value)
            self._change("MODIFIED", body)
            return copy.deepcopy(body)

        result: dict[str, Any] = self.api._in_loop(do)
        return result

    def delete(self, namespace: str, name: str) -> None:
        def do() -> None:
            body = self.pods.pop((namespace, name))
            body["metadata"]["deletionTimestamp"] = _now()
            self._change("DELETED", body)

        self.api._in_loop(do)

    def compact(self) -> None:
        """Forget the change history: resuming a watch from an older version gets 410."""

        def do() -> None:
            self.history.clear()
            self.oldest = int(self.api.server.version) + 1

        self.api._in_loop(do)

    def drop_watches(self) -> None:
        """End every open watch stream (a connection loss, or the server's timeout)."""

        def do() -> None:
            for queue in list(self.watchers):
                queue.put_nowait(None)

        self.api._in_loop(do)

    def open_watches(self) -> int:
        result: int = self.api._in_loop(lambda: len(self.watchers))
        return result

    def close(self) -> None:
        def do() -> None:
            self.closing = True
            for queue in list(self.watchers):
                queue.put_nowait(None)

        self.api._in_loop(do)


@contextmanager
def pods_api(api: KubeApi) -> Iterator[PodsApi]:
    """Pods served on ``api`` until the block ends (open watches are ended then)."""
    pods = PodsApi(api)
    pods.install()
    try:
        yield pods
    finally:
        pods.close()


def pod(
    name: str,
    ip: str,
    *,
    namespace: str = "prod",
    node: str = "node-1",
    created: str | None = None,
    host_network: bool = False,
) -> dict[str, Any]:
    """A running Pod manifest with one address."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if created is not None:
        meta["creationTimestamp"] = created
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"nodeName": node, "hostNetwork": host_network, "containers": [{"name": "c"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    }

"""A Kubernetes API server for tests: kmock, plus the real-server behaviour egressguard relies on.

kmock (PyPI ``kmock`` 0.8, by the author of kopf) supplies the aiohttp server on loopback, the
recording of every request (``server.handler`` iterates over them), API discovery
(``/api``, ``/apis``, ``/apis/<group>``, ``/apis/<group>/<version>`` built from the declared
resources) and a DSL for injecting responses. Its ``KubernetesEmulator`` is "a database over
HTTP" (read in ``kmock/_internal/k8s.py`` of 0.8): it merges dicts on every PATCH whatever the
patch type, answers 404 to a PATCH of a missing object, has no resourceVersion, ignores
``labelSelector`` and ``limit`` on LIST, does not route PUT at all, and renders errors as
``application/json; charset=utf-8`` with a traceback. So the object handling here is our own,
written on kmock's ``KubernetesScaffold`` (discovery and routing only) as a fallback reaction;
injected reactions take precedence over it.

Behaviour of a real API server added because kmock lacks it:

1. **Server-side apply** (``PATCH`` with ``application/apply-patch+yaml``): creates a missing
   object (201); otherwise sets every field of the applied configuration, removes fields the same
   manager applied before and no longer applies (unless another manager also owns them), and
   keeps fields of other managers. Ownership is tracked per field (lists are atomic, as in
   Calico's CRD schemas); a field owned by another manager with a different value is a conflict:
   409 without ``force=true``, taken over with it. A no-op apply changes nothing, not even
   ``resourceVersion``.
2. **resourceVersion**: one counter for the whole server, bumped on every persisted change;
   ``PUT`` carrying a stale ``metadata.resourceVersion`` gets 409 Conflict; ``POST`` of an
   existing name gets 409 AlreadyExists; uid, creationTimestamp, generation and a simplified
   ``managedFields`` (manager, operation, fieldsV1) are maintained.
3. **dryRun=All** on POST/PUT/PATCH/DELETE: validated and answered, nothing persisted.
4. **LIST** with ``labelSelector`` (``=``, ``==``, ``!=``, ``in``, ``notin``, ``key``,
   ``!key``) and ``limit``/``continue`` pagination.
5. **MicroTime parsing** of a Lease's ``acquireTime``/``renewTime``: exactly six fraction
   digits or 400, as the real server's fixed layout demands.
6. **Kubernetes Status bodies** for every error, with ``Content-Type: application/json``
   exactly (lightkube only turns a response into ``ApiError`` for that exact header).
7. **Unserved resources** answer 404 like a real server, and one store serves both Calico API
   groups (the Calico API server keeps v3 objects in the v1 CRDs).
8. **Injected failures**: :meth:`KubeApi.inject` answers the next *n* matching requests with a
   status (503, 429 with ``Retry-After``, 403, 422, 409, …) and then lets requests through.
9. **Calico 3.32.0's SSA-create bug** (projectcalico/calico#12841), on request: an apply that
   would create a GlobalNetworkPolicy answers 404 NotFound.

The server runs on its own event loop in a background thread, so the synchronous lightkube
client of the code under test talks to it over real HTTP on 127.0.0.1 with a bearer token from a
kubeconfig file written by :func:`serve`.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kmock
import yaml

CALICO_GROUPS = ("projectcalico.org", "crd.projectcalico.org")
CALICO_RESOURCES = {
    "tiers": "Tier",
    "globalnetworksets": "GlobalNetworkSet",
    "globalnetworkpolicies": "GlobalNetworkPolicy",
}
TOKEN = "egressguard-test-token"  # noqa: S105 - a test credential the server checks

FieldPath = tuple[str, ...]


@dataclass
class Stored:
    """One object and who owns which of its fields."""

    obj: dict[str, Any]
    owners: dict[tuple[str, str], set[FieldPath]] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def leaves(obj: Mapping[str, Any]) -> dict[FieldPath, Any]:
    """The fields a manager can own: labels and annotations one by one, and every leaf of
    the rest (a list is one leaf: Calico's schemas declare no list merge keys)."""
    out: dict[FieldPath, Any] = {}

    def walk(path: FieldPath, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, sub in value.items():
                walk((*path, key), sub)
        else:
            out[path] = value

    for key, value in obj.items():
        if key in ("apiVersion", "kind", "status"):
            continue
        if key == "metadata":
            for part in ("labels", "annotations"):
                for name, sub in (value.get(part) or {}).items():
                    out[("metadata", part, name)] = sub
            continue
        walk((key,), value)
    return out


def _get(obj: Mapping[str, Any], path: FieldPath) -> Any:
    cur: Any = obj
    for key in path:
        if not isinstance(cur, Mapping) or key not in cur:
            return _MISSING
        cur = cur[key]
    return cur


def _set(obj: dict[str, Any], path: FieldPath, value: Any) -> None:
    cur = obj
    for key in path[:-1]:
        nxt = cur.get(key)
        if not isinstance(nxt, dict):
            nxt = cur[key] = {}
        cur = nxt
    cur[path[-1]] = copy.deepcopy(value)


def _remove(obj: dict[str, Any], path: FieldPath) -> None:
    parents = []
    cur: Any = obj
    for key in path[:-1]:
        if not isinstance(cur, dict) or key not in cur:
            return
        parents.append((cur, key))
        cur = cur[key]
    if isinstance(cur, dict):
        cur.pop(path[-1], None)
    for parent, key in reversed(parents):  # drop parents left empty, as SSA does
        if parent[key] == {} and key not in ("metadata",):
            del parent[key]


_MISSING = object()
_MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$")


def _fields_v1(paths: set[FieldPath]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        cur = tree
        for key in path:
            cur = cur.setdefault(f"f:{key}", {})
    return tree


# --------------------------------------------------------------------------- label selectors

_SET_REQ = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_selector(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def selector_matches(selector: str, labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics (set-based and equality-based requirements)."""
    for raw in _split_selector(selector):
        req = raw.strip()
        if m := _SET_REQ.match(req):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            inside = key in labels and labels[key] in values
            if (op == "in" and not inside) or (op == "notin" and inside):
                return False
        elif "!=" in req:
            key, value = (s.strip() for s in req.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in req:
            key, value = (s.strip() for s in req.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif req.startswith("!"):
            if req[1:].strip() in labels:
                return False
        elif req not in labels:
            return False
    return True


# --------------------------------------------------------------------------- the server


class ApiError(Exception):
    """An error answer with a Kubernetes Status body."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def json_answer(
    status: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> kmock.Response:
    return kmock.Response(
        status=status,
        payload=dict(payload),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


class ApiServer(kmock.KubernetesScaffold):
    """kmock's scaffold (discovery, routing, recording) with a stateful object store."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.store: dict[tuple[str, str | None, str], Stored] = {}
        self.version = 0
        self.ssa_create_not_found: set[str] = set()
        self.require_token = True
        self.fallback[self._is_object_request] << self._serve

    @staticmethod
    def _is_object_request(request: kmock.Request) -> bool:
        return request.resource is not None and request.resource.plural is not None

    # -- declaration

    def serve_resource(
        self, group: str, version: str, plural: str, kind: str, *, namespaced: bool
    ) -> None:
        verbs = {"get", "list", "create", "update", "patch", "delete"}
        self.resources[f"{group}/{version}/{plural}"] = kmock.ResourceInfo(
            kind=kind, namespaced=namespaced, verbs=verbs, singular=kind.lower()
        )

    def _served(self, request: kmock.Request) -> kmock.ResourceInfo | None:
        res = request.resource
        assert res is not None
        for known in self.resources:
            if (known.group, known.version, known.plural) == (res.group, res.version, res.plural):
                info: kmock.ResourceInfo = self.resources[known]
                return info
        return None

    @staticmethod
    def _store_group(group: str) -> str:
        return "calico" if group in CALICO_GROUPS else group

    def key(
        self, group: str, plural: str, namespace: str | None, name: str
    ) -> tuple[str, str | None, str]:
        return (f"{self._store_group(group)}/{plural}", namespace, name)

    def _bump(self) -> str:
        self.version += 1
        return str(self.version)

    # -- request handling

    async def _serve(self, request: kmock.Request) -> kmock.Response:
        try:
            return self._dispatch(request)
        except ApiError as err:
            return json_answer(err.code, status_body(err.code, err.reason, err.message))

    def _dispatch(self, request: kmock.Request) -> kmock.Response:
        if self.require_token and request.headers.get("Authorization") != f"Bearer {TOKEN}":
            raise ApiError(401, "Unauthorized", "Unauthorized")
        info = self._served(request)
        res = request.resource
        assert res is not None
        assert res.plural is not None
        if info is None or request.subresource:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        gv = f"{res.group}/{res.version}" if res.group else str(res.version)
        method = request.method.value
        name = request.name
        namespace = request.namespace
        params = request.params
        dry = params.get("dryRun") == "All"
        manager = params.get("fieldManager") or "unknown"
        ctx = _Ctx(self, gv, res.group or "", res.plural, info.kind or "", namespace, dry, manager)
        if method == "GET" and name is None:
            return ctx.list(params)
        if method == "GET":
            return ctx.get(name)
        if method == "POST" and name is None:
            return ctx.create(request.data)
        if method == "PUT" and name is not None:
            return ctx.replace(name, request.data)
        if method == "PATCH" and name is not None:
            content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
            if content_type != "application/apply-patch+yaml":
                raise ApiError(
                    415, "UnsupportedMediaType", f"patch type {content_type} is not served here"
                )
            force = params.get("force") == "true"
            return ctx.apply(name, request.data, force=force, raw=request.text)
        if method == "DELETE" and name is not None:
            return ctx.delete(name)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on this path")


@dataclass
class _Ctx:
    """One request against one resource type."""

    server: ApiServer
    gv: str
    group: str
    plural: str
    kind: str
    namespace: str | None
    dry: bool
    manager: str

    def key(self, name: str) -> tuple[str, str | None, str]:
        return self.server.key(self.group, self.plural, self.namespace, name)

    def render(self, stored: Stored) -> dict[str, Any]:
        obj = copy.deepcopy(stored.obj)
        obj["apiVersion"] = self.gv
        obj["kind"] = self.kind
        obj["metadata"]["managedFields"] = [
            {
                "manager": manager,
                "operation": operation,
                "apiVersion": self.gv,
                "fieldsType": "FieldsV1",
                "fieldsV1": _fields_v1(paths),
            }
            for (manager, operation), paths in sorted(stored.owners.items())
            if paths
        ]
        return obj

    def not_found(self, name: str) -> ApiError:
        return ApiError(404, "NotFound", f'{self.plural}.{self.group or "core"} "{name}" not found')

    def check_body(self, body: Any, name: str | None) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body is not a JSON object")
        meta = body.get("metadata")
        if not isinstance(meta, dict) or not meta.get("name"):
            raise ApiError(422, "Invalid", f"{self.kind}: metadata.name: Required value")
        if name is not None and meta["name"] != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the URL")
        if body.get("kind") not in (None, self.kind) or body.get("apiVersion") not in (
            None,
            self.gv,
        ):
            raise ApiError(400, "BadRequest", f"expected {self.gv} {self.kind}")
        return body

    def new_metadata(
        self, meta: Mapping[str, Any], old: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        kept = {
            k: v for k, v in meta.items() if k in ("name", "labels", "annotations", "finalizers")
        }
        if self.namespace is not None:
            kept["namespace"] = self.namespace
        source = old or {}
        kept["uid"] = source.get("uid") or str(uuid.uuid4())
        kept["creationTimestamp"] = source.get("creationTimestamp") or _now()
        kept["generation"] = int(source.get("generation", 0))
        kept["resourceVersion"] = source.get("resourceVersion", "")
        return kept

    def commit(self, name: str, stored: Stored, old: Stored | None, status: int) -> kmock.Response:
        changed = (
            old is None or _content(stored.obj) != _content(old.obj) or stored.owners != old.owners
        )
        if not changed and old is not None:
            return json_answer(200, self.render(old))
        if old is None or _spec(stored.obj) != _spec(old.obj):
            stored.obj["metadata"]["generation"] += 1
        if self.dry:
            stored.obj["metadata"]["resourceVersion"] = (
                old.obj["metadata"]["resourceVersion"] if old else ""
            )
            return json_answer(status, self.render(stored))
        stored.obj["metadata"]["resourceVersion"] = self.server._bump()
        self.server.store[self.key(name)] = stored
        return json_answer(status, self.render(stored))

    # -- verbs

    def get(self, name: str) -> kmock.Response:
        stored = self.server.store.get(self.key(name))
        if stored is None:
            raise self.not_found(name)
        return json_answer(200, self.render(stored))

    def list(self, params: Mapping[str, str]) -> kmock.Response:
        prefix = self.key("")[0]
        selector = params.get("labelSelector", "")
        items = [
            self.render(stored)
            for (kind, ns, _), stored in sorted(self.server.store.items(), key=lambda kv: kv[0][2])
            if kind == prefix
            and (self.namespace is None or ns == self.namespace)
            and selector_matches(selector, stored.obj["metadata"].get("labels") or {})
        ]
        start = 0
        if token := params.get("continue"):
            start = int(base64.b64decode(token).decode())
        limit = int(params.get("limit") or 0)
        end = start + limit if limit else len(items)
        meta: dict[str, Any] = {"resourceVersion": str(self.server.version)}
        if end < len(items):
            meta["continue"] = base64.b64encode(str(end).encode()).decode()
        body = {
            "apiVersion": self.gv,
            "kind": f"{self.kind}List",
            "metadata": meta,
            "items": items[start:end],
        }
        return json_answer(200, body)

    def check_micro_times(self, body: Mapping[str, Any]) -> None:
        """A Lease's acquireTime/renewTime are MicroTime: the server's layout wants exactly
        six fraction digits and rejects anything else (kubernetes/kubernetes#89156)."""
        if self.plural != "leases":
            return
        for name in ("acquireTime", "renewTime"):
            value = (body.get("spec") or {}).get(name)
            if value is not None and not _MICRO_TIME.match(str(value)):
                raise ApiError(
                    400,
                    "BadRequest",
                    f'Lease in version "v1" cannot be handled as a Lease: parsing time '
                    f'"{value}" as "2006-01-02T15:04:05.000000Z07:00": cannot parse',
                )

    def create(self, body: Any) -> kmock.Response:
        body = self.check_body(body, None)
        self.check_micro_times(body)
        name = body["metadata"]["name"]
        if self.key(name) in self.server.store:
            raise ApiError(
                409, "AlreadyExists", f'{self.plural}.{self.group} "{name}" already exists'
            )
        obj = copy.deepcopy(
            {k: v for k, v in body.items() if k not in ("apiVersion", "kind", "status")}
        )
        obj["metadata"] = self.new_metadata(body["metadata"], None)
        stored = Stored(obj, {(self.manager, "Update"): set(leaves(obj))})
        return self.commit(name, stored, None, 201)

    def replace(self, name: str, body: Any) -> kmock.Response:
        body = self.check_body(body, name)
        self.check_micro_times(body)
        old = self.server.store.get(self.key(name))
        if old is None:
            raise self.not_found(name)
        want_rv = body["metadata"].get("resourceVersion")
        if want_rv and want_rv != old.obj["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {self.plural}.{self.group} "{name}": the object '
                "has been modified; please apply your changes to the latest version and try again",
            )
        obj = copy.deepcopy(
            {k: v for k, v in body.items() if k not in ("apiVersion", "kind", "status")}
        )
        obj["metadata"] = self.new_metadata(body["metadata"], old.obj["metadata"])
        before, after = leaves(old.obj), leaves(obj)
        owners = {who: {p for p in paths if p in after} for who, paths in old.owners.items()}
        changed = {p for p, v in after.items() if before.get(p, _MISSING) != v}
        for paths in owners.values():
            paths.difference_update(changed)
        owners.setdefault((self.manager, "Update"), set()).update(changed)
        return self.commit(name, Stored(obj, owners), old, 200)

    def apply(self, name: str, body: Any, *, force: bool, raw: str) -> kmock.Response:
        if body is None:  # YAML that is not JSON
            body = yaml.safe_load(raw)
        body = self.check_body(body, name)
        applied = leaves(body)
        me = (self.manager, "Apply")
        old = self.server.store.get(self.key(name))
        if old is None:
            if self.plural in self.server.ssa_create_not_found:
                # Calico 3.32.0 (projectcalico/calico#12841): SSA create of a policy -> NotFound.
                raise self.not_found(name)
            obj: dict[str, Any] = {"metadata": self.new_metadata(body["metadata"], None)}
            for path, value in applied.items():
                _set(obj, path, value)
            return self.commit(name, Stored(obj, {me: set(applied)}), None, 201)

        obj = copy.deepcopy(old.obj)
        owners = {who: set(paths) for who, paths in old.owners.items()}
        conflicts = sorted(
            (who[0], path)
            for who, paths in owners.items()
            if who != me
            for path in paths
            if path in applied and _get(obj, path) != applied[path]
        )
        if conflicts and not force:
            detail = "; ".join(
                f'conflict with "{who}": .{".".join(path)}' for who, path in conflicts
            )
            raise ApiError(
                409, "Conflict", f"Apply failed with {len(conflicts)} conflicts: {detail}"
            )
        for who, path in conflicts:
            for key, paths in owners.items():
                if key[0] == who:
                    paths.discard(path)
        previous = owners.get(me, set())
        for path in previous - set(applied):
            if not any(path in paths for who, paths in owners.items() if who != me):
                _remove(obj, path)
        for path, value in applied.items():
            _set(obj, path, value)
        owners[me] = set(applied)
        return self.commit(name, Stored(obj, owners), old, 200)

    def delete(self, name: str) -> kmock.Response:
        stored = self.server.store.get(self.key(name))
        if stored is None:
            raise self.not_found(name)
        rendered = self.render(stored)
        if not self.dry:
            del self.server.store[self.key(name)]
            self.server._bump()
        return json_answer(200, rendered)


def _content(obj: Mapping[str, Any]) -> Any:
    meta = obj.get("metadata") or {}
    return (
        {k: v for k, v in obj.items() if k != "metadata"},
        meta.get("labels") or {},
        meta.get("annotations") or {},
        meta.get("finalizers") or [],
    )


def _spec(obj: Mapping[str, Any]) -> Any:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


# --------------------------------------------------------------------------- running it


@dataclass(frozen=True)
class Seen:
    """A request the server received, reduced to what tests assert on."""

    method: str
    path: str
    params: Mapping[str, str]

    @property
    def is_write(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH", "DELETE")


class KubeApi:
    """Handle on a running :class:`ApiServer` for the test thread."""

    def __init__(
        self, server: ApiServer, loop: asyncio.AbstractEventLoop, url: str, kubeconfig: Path
    ):
        self.server = server
        self.loop = loop
        self.url = url
        self.kubeconfig = kubeconfig

    def _in_loop(self, fn: Callable[[], Any]) -> Any:
        async def call() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout=10)

    # -- observing

    def requests(self) -> list[Seen]:
        return self._in_loop(
            lambda: [Seen(r.method.value, r.url.path, dict(r.params)) for r in self.server]
        )

    def writes(self, *, since: int = 0) -> list[Seen]:
        """Writes received (dry runs included: they reach the server too)."""
        return [r for r in self.requests()[since:] if r.is_write]

    def mark(self) -> int:
        """A position in the request log, for ``writes(since=...)``."""
        return len(self.requests())

    def objects(self, plural: str, group: str = "projectcalico.org") -> dict[str, dict[str, Any]]:
        """Stored objects of a resource by name (copies)."""

        def collect() -> dict[str, dict[str, Any]]:
            prefix = self.server.key(group, plural, None, "")[0]
            return {
                name: copy.deepcopy(stored.obj)
                for (kind, _, name), stored in self.server.store.items()
                if kind == prefix
            }

        return self._in_loop(collect)

    # -- arranging

    def seed(self, obj: Mapping[str, Any], *, manager: str = "kubectl") -> None:
        """Store an object as another client would have created it."""
        group, _, _version = obj["apiVersion"].rpartition("/")
        plural = next(p for p, k in CALICO_RESOURCES.items() if k == obj["kind"])

        def put() -> None:
            body = copy.deepcopy({k: v for k, v in obj.items() if k not in ("apiVersion", "kind")})
            meta = body.setdefault("metadata", {})
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
            meta["resourceVersion"] = self.server._bump()
            key = self.server.key(group, plural, None, meta["name"])
            self.server.store[key] = Stored(body, {(manager, "Update"): set(leaves(body))})

        self._in_loop(put)

    def inject(
        self,
        status: int,
        *,
        method: str | None = None,
        plural: str | None = None,
        name: str | None = None,
        times: int = 1,
        retry_after: int | None = None,
        reason: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` (a Status body)."""
        remaining = [times]
        reasons = {
            403: "Forbidden",
            409: "Conflict",
            422: "Invalid",
            429: "TooManyRequests",
            500: "InternalError",
            503: "ServiceUnavailable",
        }

        def matches(request: kmock.Request) -> bool:
            res = request.resource
            return (
                remaining[0] > 0
                and (method is None or request.method.value == method)
                and (plural is None or (res is not None and res.plural == plural))
                and (name is None or request.name == name)
            )

        def answer(request: kmock.Request) -> Any:
            if remaining[0] <= 0:
                return NotImplemented  # depleted: kmock moves on to the next reaction
            remaining[0] -= 1
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            why = reason or reasons.get(status, "Failure")
            return json_answer(
                status, status_body(status, why, f"injected {status} {why}"), headers
            )

        def install() -> None:
            # A callable criterion, not kmock.resource(...): a resource criterion would make the
            # resource discoverable, and discovery must show only what the test declared.
            self.server[matches] << answer

        self._in_loop(install)

    def client(self, **kwargs: Any) -> Any:
        """A KubeClient for this server, built from the kubeconfig file (no real sleeping)."""
        from egressguard.adapters.kube import RetryPolicy, connect

        kwargs.setdefault("retry", RetryPolicy(attempts=4, initial_delay=0.0, max_delay=0.0))
        return connect(self.kubeconfig, **kwargs)


def write_kubeconfig(path: Path, url: str, *, namespace: str = "egressguard-system") -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": {"server": url}}],
        "users": [{"name": "tester", "user": {"token": TOKEN}}],
        "contexts": [
            {
                "name": "kmock",
                "context": {"cluster": "kmock", "user": "tester", "namespace": namespace},
            }
        ],
        "current-context": "kmock",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def serve(
    tmp_path: Path,
    *,
    calico_v3: bool = True,
    calico_v1: bool = True,
    tiers: bool = True,
    leases: bool = True,
    ssa_create_not_found: tuple[str, ...] = (),
) -> Iterator[KubeApi]:
    """Run an :class:`ApiServer` on 127.0.0.1 in a thread; stop it however the test ends."""
    ready = threading.Event()
    stop: list[asyncio.Event] = []
    box: dict[str, Any] = {}

    async def main() -> None:
        server = ApiServer()
        server.ssa_create_not_found.update(ssa_create_not_found)
        groups = [
            g
            for g, on in (
                ("projectcalico.org/v3", calico_v3),
                ("crd.projectcalico.org/v1", calico_v1),
            )
            if on
        ]
        for gv in groups:
            group, version = gv.split("/")
            for plural, kind in CALICO_RESOURCES.items():
                if plural != "tiers" or tiers:
                    server.serve_resource(group, version, plural, kind, namespaced=False)
        if leases:
            server.serve_resource("coordination.k8s.io", "v1", "leases", "Lease", namespaced=True)
        stop.append(asyncio.Event())
        async with server, kmock.Server(server) as http:
            box["server"] = server
            box["url"] = str(http.url).rstrip("/")
            ready.set()
            await stop[0].wait()

    def run() -> None:
        loop = asyncio.new_event_loop()
        box["loop"] = loop
        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # pragma: no cover - surfaced to the test below
            box["error"] = exc
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="kubeapi", daemon=True)
    thread.start()
    try:
        if not ready.wait(timeout=10):
            raise RuntimeError("the test API server did not start within 10 s")
        if "error" in box:
            raise RuntimeError("the test API server failed to start") from box["error"]
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", box["url"])
        yield KubeApi(box["server"], box["loop"], box["url"], kubeconfig)
    finally:
        if stop and "loop" in box and not box["loop"].is_closed():
            box["loop"].call_soon_threadsafe(stop[0].set)
        thread.join(timeout=10)


def dump(obj: Any) -> str:  # pragma: no cover - debugging aid
    return json.dumps(obj, indent=2, sort_keys=True, default=str)


def blocklist_manifests(
    shards: list[list[str]], *, name: str = "demo", api_version: str = "projectcalico.org/v3"
) -> list[dict[str, Any]]:
    """What the renderer produces for a blocklist (DESIGN §4): a Tier, one GlobalNetworkSet per
    shard sharing a set label, and the policy that logs then denies egress to them."""
    set_selector = f"egressguard.io/set == '{name}'"
    out: list[dict[str, Any]] = [
        {
            "apiVersion": api_version,
            "kind": "Tier",
            "metadata": {"name": "egressguard"},
            "spec": {"order": 100, "defaultAction": "Pass"},
        }
    ]
    for index, nets in enumerate(shards):
        out.append(
            {
                "apiVersion": api_version,
                "kind": "GlobalNetworkSet",
                "metadata": {
                    "name": f"egressguard-{name}-{index:03d}",
                    "labels": {"egressguard.io/set": name},
                },
                "spec": {"nets": list(nets)},
            }
        )
    rule = {"selector": set_selector, "namespaceSelector": "global()"}
    out.append(
        {
            "apiVersion": api_version,
            "kind": "GlobalNetworkPolicy",
            "metadata": {"name": f"egressguard.{name}"},
            "spec": {
                "tier": "egressguard",
                "order": 10,
                "selector": "all()",
                "types": ["Egress"],
                "egress": [
                    {"action": "Log", "destination": rule},
                    {"action": "Deny", "destination": rule},
                    {"action": "Pass"},
                ],
            },
        }
    )
    return out

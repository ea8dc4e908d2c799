"""In-memory stand-in for a cluster: implements ``ClusterClient`` and ``LeaseClient``.

For fast unit tests of the use cases (sync plans, leader election) and for dry runs in
examples. The behaviour tests of the real adapter run against an HTTP API server instead
(``tests/kube_support``).

What it keeps of a real API server, because the use cases depend on it:

* one store per kind, shared by both Calico API groups (the Calico API server stores v3
  objects in the v1 CRDs, so an object written in one group is visible in the other);
* a ``resourceVersion`` that changes on every persisted change and *not* on a no-op apply;
* label-equality listing, dry-run that persists nothing, 404 on a missing delete;
* Leases with optimistic concurrency: an update carrying a stale resourceVersion gets 409.

What it simplifies: apply replaces ``spec`` as a whole and merges labels and annotations
(enough for objects that one field manager owns); no managedFields, no defaulting.

Every request that would reach a server is recorded in :attr:`FakeCluster.requests`, so a test
can assert "zero writes". Failures are injected with :meth:`FakeCluster.fail`.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from egressguard.adapters.kube import (
    CALICO_KINDS,
    CALICO_V1,
    CALICO_V3,
    CalicoApi,
    LeaseRecord,
    ObjectRef,
)
from egressguard.errors import KubeError

__all__ = ["FakeCluster", "FakeRequest"]

_WRITE_VERBS = frozenset({"apply", "create", "update", "delete"})


@dataclass(frozen=True)
class FakeRequest:
    """One call the fake received: verb (get, list, apply, delete, create, update), target."""

    verb: str
    target: str
    dry_run: bool = False

    @property
    def is_write(self) -> bool:
        return self.verb in _WRITE_VERBS and not self.dry_run


@dataclass
class _Failure:
    verb: str
    target: str | None
    error: KubeError
    times: int


class FakeCluster:
    """A cluster in memory. ``calico_api`` is the group it serves (None: Calico missing)."""

    def __init__(
        self,
        *,
        calico_api: str | None = CALICO_V3,
        kinds: frozenset[str] = frozenset(CALICO_KINDS),
    ) -> None:
        self.calico_api = calico_api
        self.kinds = kinds
        self.requests: list[FakeRequest] = []
        self._objects: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        self._leases: dict[tuple[str, str], LeaseRecord] = {}
        self._versions = itertools.count(1)
        self._failures: list[_Failure] = []

    # -- test helpers

    def put(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Store an object as if someone else had created it (not recorded as a request)."""
        ref = ObjectRef.of(obj)
        stored = self._stamp(copy.deepcopy(dict(obj)), None)
        self._objects[self._key(ref)] = stored
        return copy.deepcopy(stored)

    def objects(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Copies of the stored objects, sorted by kind and name."""
        return [
            copy.deepcopy(obj)
            for (k, _, _), obj in sorted(self._objects.items(), key=lambda kv: kv[0][::2])
            if kind is None or k == kind
        ]

    def fail(
        self, verb: str, error: KubeError, *, target: str | None = None, times: int = 1
    ) -> None:
        """Answer the next ``times`` calls of ``verb`` (optionally only for the object or lease
        named ``target``) with ``error`` instead of doing them."""
        self._failures.append(_Failure(verb, target, error, times))

    @property
    def writes(self) -> list[FakeRequest]:
        """The persisted writes received (dry runs excluded)."""
        return [r for r in self.requests if r.is_write]

    # -- internals

    @staticmethod
    def _key(ref: ObjectRef) -> tuple[str, str | None, str]:
        return (ref.kind, ref.namespace, ref.name)

    def _record(self, verb: str, target: str, dry_run: bool = False) -> None:
        self.requests.append(FakeRequest(verb, target, dry_run))
        for failure in self._failures:
            if failure.verb == verb and failure.target in (None, target) and failure.times > 0:
                failure.times -= 1
                raise failure.error

    def _stamp(self, obj: dict[str, Any], old: Mapping[str, Any] | None) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        old_meta = old.get("metadata", {}) if old else {}
        meta["uid"] = old_meta.get("uid") or str(uuid.uuid4())
        meta["resourceVersion"] = str(next(self._versions))
        meta["generation"] = int(old_meta.get("generation", 0)) + 1
        return obj

    def _check_served(self, ref: ObjectRef) -> None:
        if self.calico_api is None or ref.kind not in self.kinds:
            raise KubeError(f"the server could not find the requested resource ({ref})", status=404)
        served = {CALICO_V3, CALICO_V1} if self.calico_api == CALICO_V3 else {CALICO_V1}
        if ref.api_version not in served:
            raise KubeError(f"{ref.api_version} is not served", status=404)

    # -- ClusterClient

    def served_calico_api(self) -> CalicoApi:
        self._record("discovery", "calico")
        if self.calico_api is None:
            raise KubeError("the cluster serves no Calico API", status=404)
        return CalicoApi(self.calico_api, self.kinds)

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        self._record("get", ref.name)
        self._check_served(ref)
        found = self._objects.get(self._key(ref))
        if found is None:
            return None
        return {**copy.deepcopy(found), "apiVersion": ref.api_version}

    def list_owned(
        self, api_version: str, kind: str, *, labels: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        self._record("list", kind)
        self._check_served(ObjectRef(api_version, kind, "-"))
        out = []
        for (k, _, _), obj in sorted(self._objects.items()):
            have = obj.get("metadata", {}).get("labels") or {}
            if k == kind and all(have.get(key) == value for key, value in labels.items()):
                out.append({**copy.deepcopy(obj), "apiVersion": api_version})
        return out

    def apply(self, obj: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        ref = ObjectRef.of(obj)
        self._record("apply", ref.name, dry_run)
        self._check_served(ref)
        key = self._key(ref)
        old = self._objects.get(key)
        new = copy.deepcopy(dict(obj))
        if old is not None:
            merged = copy.deepcopy(old)
            meta = merged.setdefault("metadata", {})
            for field in ("labels", "annotations"):
                given = new.get("metadata", {}).get(field)
                if given:
                    meta[field] = {**(meta.get(field) or {}), **given}
            for field, value in new.items():
                if field not in ("metadata", "apiVersion", "kind"):
                    merged[field] = value
            merged["apiVersion"] = ref.api_version
            if merged == {**old, "apiVersion": ref.api_version}:
                return copy.deepcopy(merged)  # no-op: no new resourceVersion, as on a server
            new = merged
        stored = self._stamp(new, old)
        if not dry_run:
            self._objects[key] = stored
        return copy.deepcopy(stored)

    def delete(self, ref: ObjectRef, *, dry_run: bool = False) -> None:
        self._record("delete", ref.name, dry_run)
        self._check_served(ref)
        key = self._key(ref)
        if key not in self._objects:
            raise KubeError(f"{ref} not found", status=404)
        if not dry_run:
            del self._objects[key]

    # -- LeaseClient

    def get_lease(self, namespace: str, name: str) -> LeaseRecord | None:
        self._record("get", name)
        return self._leases.get((namespace, name))

    def create_lease(self, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
        self._record("create", name)
        if (namespace, name) in self._leases:
            raise KubeError(f"Lease {namespace}/{name} already exists", status=409, transient=False)
        stored = replace(record, resource_version=str(next(self._versions)))
        self._leases[(namespace, name)] = stored
        return stored

    def update_lease(self, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
        self._record("update", name)
        current = self._leases.get((namespace, name))
        if current is None:
            raise KubeError(f"Lease {namespace}/{name} not found", status=404)
        if record.resource_version not in (None, current.resource_version):
            raise KubeError(
                f"Lease {namespace}/{name} was modified (resourceVersion "
                f"{current.resource_version}, not {record.resource_version})",
                status=409,
                transient=True,
            )
        stored = replace(record, resource_version=str(next(self._versions)))
        self._leases[(namespace, name)] = stored
        return stored

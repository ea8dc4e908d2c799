"""Kubernetes adapter: the only module that talks to the API server.

Everything that crosses this boundary is a plain manifest ``dict`` (what ``kubectl get -o json``
prints) or one of the small frozen values below, so that ``app`` never sees a lightkube type and
tests can swap the real client for :class:`egressguard.adapters.kube_fake.FakeCluster`.

Two Protocols describe what the use cases need:

``ClusterClient``
    which Calico API group the cluster serves, get / list-by-labels / server-side apply / delete
    of cluster-scoped Calico objects (``Tier``, ``GlobalNetworkSet``, ``GlobalNetworkPolicy``).
``LeaseClient``
    get / create / update of one ``coordination.k8s.io/v1`` Lease with optimistic concurrency
    (the update carries the resourceVersion it read; a 409 means another replica wrote first).

:class:`KubeClient` implements both with lightkube. Its policy choices:

* **API group.** ``projectcalico.org/v3`` when discovery shows it (the Calico API server, or the
  native v3 CRDs of Calico >= 3.32), else ``crd.projectcalico.org/v1``. Discovery needs no RBAC
  beyond what every authenticated identity has (``system:discovery``).
* **Server-side apply** with field manager ``egressguard`` and ``force=True``: egressguard is the
  single owner of the objects it renders, so a field someone changed by hand is taken back.
* **Calico 3.32.0**: an apply that would *create* a (Global)NetworkPolicy answers NotFound
  (projectcalico/calico#12841, fixed by #12905 / #12906). On that answer the adapter creates the
  object with POST and then applies it, so later applies own its fields.
* **Errors.** Every failure becomes :class:`egressguard.errors.KubeError` with the HTTP status.
  Timeouts, connection failures, 429 and 500/502/503/504 are *transient* and retried here with
  capped exponential backoff (``Retry-After`` is honoured, within the cap); everything else is
  permanent and raised at once. A 409 is marked transient (re-read, then try again) but is not
  retried blindly here: repeating a write with the same stale resourceVersion cannot succeed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

import httpx2
from lightkube import ApiError, Client, KubeConfig
from lightkube.config.client_adapter import Client as _new_http_client
from lightkube.config.client_adapter import ConnectionParams
from lightkube.config.kubeconfig import SERVICE_ACCOUNT, SingleConfig
from lightkube.core.exceptions import ConfigError as _LightkubeConfigError
from lightkube.generic_resource import GenericGlobalResource, create_global_resource
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease

from egressguard.errors import KubeError, ManifestError

__all__ = [
    "CALICO_KINDS",
    "CALICO_V1",
    "CALICO_V3",
    "FIELD_MANAGER",
    "CalicoApi",
    "ClusterClient",
    "KubeClient",
    "LeaseClient",
    "LeaseRecord",
    "ObjectRef",
    "ResourceKind",
    "RetryPolicy",
    "call_with_retry",
    "connect",
    "from_kubeconfig",
    "lightkube_client",
    "translate_error",
]

log = logging.getLogger(__name__)

CALICO_V3 = "projectcalico.org/v3"
"""The user-facing Calico API (Calico API server, or native v3 CRDs). Preferred."""
CALICO_V1 = "crd.projectcalico.org/v1"
"""The CRDs Calico stores its objects in; written directly only when v3 is not served."""
FIELD_MANAGER = "egressguard"
"""Field manager of every write, so ``managedFields`` shows who owns what."""


@dataclass(frozen=True)
class ResourceKind:
    """How a kind maps onto a REST path: ``/apis/<group>/<version>/<plural>``."""

    kind: str
    plural: str
    namespaced: bool = False


CALICO_KINDS: Mapping[str, ResourceKind] = MappingProxyType(
    {
        "Tier": ResourceKind("Tier", "tiers"),
        "GlobalNetworkSet": ResourceKind("GlobalNetworkSet", "globalnetworksets"),
        "GlobalNetworkPolicy": ResourceKind("GlobalNetworkPolicy", "globalnetworkpolicies"),
    }
)
"""The cluster-scoped Calico kinds egressguard writes, identical in both API groups."""

# Kinds hit by the Calico 3.32.0 SSA-create bug (projectcalico/calico#12841).
_SSA_CREATE_BUG_KINDS = frozenset({"GlobalNetworkPolicy", "NetworkPolicy"})


@dataclass(frozen=True, order=True)
class ObjectRef:
    """The identity of one object: enough to build its URL."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectRef:
        """The reference of a manifest; ManifestError when it lacks apiVersion, kind or name."""
        api_version = obj.get("apiVersion")
        kind = obj.get("kind")
        metadata = obj.get("metadata")
        name = metadata.get("name") if isinstance(metadata, Mapping) else None
        namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
        if not (isinstance(api_version, str) and api_version):
            raise ManifestError(f"manifest {name or '?'} has no apiVersion")
        if not (isinstance(kind, str) and kind):
            raise ManifestError(f"manifest {name or '?'} ({api_version}) has no kind")
        if not (isinstance(name, str) and name):
            raise ManifestError(f"a {kind} manifest has no metadata.name")
        if namespace is not None and not isinstance(namespace, str):
            raise ManifestError(f"{kind}/{name}: metadata.namespace is not a string")
        return cls(api_version, kind, name, namespace or None)

    def __str__(self) -> str:
        where = f" in namespace {self.namespace}" if self.namespace else ""
        return f"{self.kind}/{self.name} ({self.api_version}){where}"


@dataclass(frozen=True)
class CalicoApi:
    """The Calico API group a cluster serves and which of our kinds it has."""

    api_version: str
    kinds: frozenset[str]

    def serves(self, kind: str) -> bool:
        return kind in self.kinds


@dataclass(frozen=True)
class LeaseRecord:
    """The election-relevant content of a Lease (``spec``) plus its resourceVersion.

    ``holder`` is ``""`` for a released lease. ``resource_version`` is what an update must carry
    for optimistic concurrency; it is ``None`` for a record that was never read from the server.
    """

    holder: str = ""
    duration_seconds: int = 0
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0
    resource_version: str | None = None


class ClusterClient(Protocol):
    """What sync needs from a cluster. Objects are plain manifest dicts."""

    def served_calico_api(self) -> CalicoApi:
        """v3 when served, else v1; KubeError when the cluster has neither."""
        ...

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        """The live object, or None when it does not exist."""
        ...

    def list_owned(
        self, api_version: str, kind: str, *, labels: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        """Every object of a kind that carries all of ``labels`` (equality selector)."""
        ...

    def apply(self, obj: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply (creates when missing); returns the object as the server has it."""
        ...

    def delete(self, ref: ObjectRef, *, dry_run: bool = False) -> None:
        """Delete one object; KubeError(status=404) when it is already gone."""
        ...


class LeaseClient(Protocol):
    """What leader election needs: one Lease, read and written with optimistic concurrency."""

    def get_lease(self, namespace: str, name: str) -> LeaseRecord | None:
        """The current record, or None when the Lease does not exist."""
        ...

    def create_lease(self, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
        """Create the Lease; KubeError(status=409) when someone created it first."""
        ...

    def update_lease(self, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
        """Replace the Lease if its resourceVersion is still ``record.resource_version``;
        KubeError(status=409) when another writer got there first."""
        ...


# --------------------------------------------------------------------------- errors and retry

_RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})

_HINTS = {
    401: "the credentials were refused: check the kubeconfig user or the service account token",
    403: (
        "the identity lacks an RBAC permission; the controller's rules are in "
        "deploy/controller/rbac.yaml (Calico's API server also checks tier.globalnetworkpolicies "
        "with resource name '<tier>.*')"
    ),
    404: "the resource type is not served here: is Calico installed, and in which API group?",
    409: "another writer changed the object first: read it again and retry",
    422: "the API server rejected the object: check it with `egressguard validate`",
    400: "the API server rejected the request: check the object with `egressguard validate`",
}


def _transient_status(status: int, reason: str) -> bool:
    if status in _RETRIED_STATUSES or status == 408:
        return True
    # A resourceVersion conflict clears after a re-read; "AlreadyExists" does not.
    return status == 409 and reason != "AlreadyExists"


def _status_fields(response: httpx2.Response) -> tuple[str, str]:
    """(reason, message) of a Kubernetes Status body, or of the bare HTTP answer."""
    with contextlib.suppress(ValueError):
        body = response.json()
        if isinstance(body, dict):
            return str(body.get("reason") or ""), str(body.get("message") or "")
    return response.reason_phrase, response.text[:200]


def translate_error(exc: BaseException, action: str) -> KubeError:
    """One KubeError for a foreign exception raised while doing ``action``."""
    if isinstance(exc, KubeError):
        return exc
    if isinstance(exc, ApiError):
        status = int(exc.status.code or exc.response.status_code)
        reason = exc.status.reason or ""
        message = exc.status.message or exc.response.reason_phrase
        return _status_error(action, status, reason, message)
    if isinstance(exc, httpx2.HTTPStatusError):
        status = exc.response.status_code
        reason, message = _status_fields(exc.response)
        return _status_error(action, status, reason, message)
    if isinstance(exc, httpx2.TimeoutException):
        return KubeError(
            f"Kubernetes API: {action} timed out ({type(exc).__name__})",
            hint="the API server is slow or unreachable; it will be retried",
            transient=True,
        )
    if isinstance(exc, httpx2.TransportError):
        return KubeError(
            f"Kubernetes API: {action} failed: {type(exc).__name__}: {exc}",
            hint="the API server is unreachable: check the server address in the kubeconfig",
            transient=True,
        )
    if isinstance(exc, _LightkubeConfigError):
        return KubeError(
            f"Kubernetes configuration: {exc}",
            hint="pass --kubeconfig, set KUBECONFIG, or run in a pod with a service account",
        )
    return KubeError(f"Kubernetes API: {action} failed: {type(exc).__name__}: {exc}")


def _status_error(action: str, status: int, reason: str, message: str) -> KubeError:
    detail = f"{status} {reason}".strip()
    text = f"Kubernetes API: {action} failed: {detail}"
    if message:
        text += f": {message}"
    hint = _HINTS.get(status)
    if hint is None and status in _RETRIED_STATUSES:
        hint = "the API server is overloaded or unavailable; retried with backoff"
    return KubeError(text, status=status, hint=hint, transient=_transient_status(status, reason))


def _retry_after(exc: BaseException) -> float | None:
    if not isinstance(exc, httpx2.HTTPStatusError):
        return None
    value: str | None = exc.response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: ignore it, use our own backoff


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with jitter for transient API failures.

    ``attempts`` counts every try, so 5 means one call and up to four retries. The delay before
    retry *n* is ``initial_delay * 2**(n-1)`` capped at ``max_delay``, scaled by a random factor in
    [0.5, 1] so replicas do not retry in lockstep; a server's ``Retry-After`` replaces it (capped).
    """

    attempts: int = 5
    initial_delay: float = 0.2
    max_delay: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("RetryPolicy delays must not be negative")

    def delay(self, failures: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        base = min(self.max_delay, self.initial_delay * 2.0 ** (failures - 1))
        return base * rng.uniform(0.5, 1.0)


_T = TypeVar("_T")


def call_with_retry(
    action: str,
    fn: Callable[[], _T],
    *,
    policy: RetryPolicy,
    sleep: Callable[[float], None],
    rng: random.Random,
    retry: bool = True,
) -> _T:
    """``fn()``, one API request, with its failures translated (:func:`translate_error`) and the
    retryable ones retried under ``policy``: timeouts, connection failures, 429 and
    500/502/503/504, after the policy's delay or the server's ``Retry-After`` (capped). A 409 is
    transient but not retried: the same stale write cannot succeed. ``retry=False`` only
    translates (for a create, whose lost answer may mean it happened). Every Kubernetes client
    of egressguard calls the API through this, so they retry alike.
    """
    failures = 0
    while True:
        try:
            return fn()
        except (httpx2.HTTPError, ApiError, _LightkubeConfigError) as exc:
            err = translate_error(exc, action)
            retryable = retry and (
                err.status in _RETRIED_STATUSES or (err.status is None and err.transient)
            )
            failures += 1
            if not retryable or failures >= policy.attempts:
                if retryable:
                    err.message += f" (after {failures} attempts)"
                raise err from exc
            delay = policy.delay(failures, _retry_after(exc), rng)
            log.warning("%s; retrying in %.2fs (attempt %d)", err.message, delay, failures + 1)
            sleep(delay)


# --------------------------------------------------------------------------- the real client


def _split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def _lease_record(lease: Lease) -> LeaseRecord:
    spec = lease.spec or LeaseSpec()
    meta = lease.metadata or ObjectMeta()
    return LeaseRecord(
        holder=spec.holderIdentity or "",
        duration_seconds=spec.leaseDurationSeconds or 0,
        acquire_time=spec.acquireTime,
        renew_time=spec.renewTime,
        transitions=spec.leaseTransitions or 0,
        resource_version=meta.resourceVersion,
    )


def _micro_time(when: datetime | None) -> Any:
    """A MicroTime as the API server parses it: RFC 3339 with exactly six fraction digits.

    The server's layout is fixed-width (``2006-01-02T15:04:05.000000Z07:00``; kubernetes/
    kubernetes#89156, #141204), while lightkube's encoder (msgspec) drops the fraction of a
    whole second, which the server would reject. The string goes into the datetime-typed
    field as is: msgspec encodes it unchanged.
    """
    if when is None:
        return None
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _lease(namespace: str, name: str, record: LeaseRecord) -> Lease:
    return Lease(
        metadata=ObjectMeta(
            name=name, namespace=namespace, resourceVersion=record.resource_version
        ),
        spec=LeaseSpec(
            holderIdentity=record.holder,
            leaseDurationSeconds=record.duration_seconds,
            acquireTime=_micro_time(record.acquire_time),
            renewTime=_micro_time(record.renew_time),
            leaseTransitions=record.transitions,
        ),
    )


class KubeClient:
    """:class:`ClusterClient` and :class:`LeaseClient` over lightkube (sync, thread-safe reads).

    Build it with :func:`connect`. ``sleep`` and ``rng`` are injectable so tests of the retry
    path need no real waiting.
    """

    def __init__(
        self,
        client: Client,
        *,
        retry: RetryPolicy | None = None,
        force: bool = True,
        field_manager: str = FIELD_MANAGER,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        list_chunk_size: int = 100,
    ) -> None:
        self._kube = client
        self._retry = retry or RetryPolicy()
        self._force = force
        self._field_manager = field_manager
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._chunk = list_chunk_size
        self._http: httpx2.Client | None = None
        self._calico: CalicoApi | None = None

    # -- plumbing

    def close(self) -> None:
        """Release the connection pools."""
        self._kube.close()
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> KubeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def namespace(self) -> str:
        """The namespace of the kubeconfig context (in a pod: the pod's own namespace)."""
        return str(self._kube.namespace)

    def _call(self, action: str, fn: Callable[[], _T]) -> _T:
        return call_with_retry(action, fn, policy=self._retry, sleep=self._sleep, rng=self._rng)

    def _resource(self, api_version: str, kind: str) -> type[GenericGlobalResource]:
        info = CALICO_KINDS.get(kind)
        if info is None:
            raise ManifestError(
                f"{kind} ({api_version}) is not a kind egressguard writes",
                hint=f"supported kinds: {', '.join(CALICO_KINDS)}",
            )
        group, version = _split_api_version(api_version)
        if api_version not in (CALICO_V3, CALICO_V1):
            raise ManifestError(
                f"{kind} has apiVersion {api_version}; expected {CALICO_V3} or {CALICO_V1}"
            )
        return create_global_resource(group, version, info.kind, info.plural)

    def _discovery(self) -> httpx2.Client:
        if self._http is None:
            config: SingleConfig = self._kube.config
            self._http = _new_http_client(config, ConnectionParams(timeout=httpx2.Timeout(10.0)))
        return self._http

    def _served_kinds(self, api_version: str) -> frozenset[str] | None:
        """Our kinds listed by discovery for a group version; None when it is not served."""
        path = f"/apis/{api_version}"

        def fetch() -> dict[str, Any] | None:
            response = self._discovery().get(path)
            if response.status_code == 404:
                return None
            response.raise_for_status()
            body = response.json()
            return body if isinstance(body, dict) else {}

        body = self._call(f"GET {path}", fetch)
        if body is None:
            return None
        plurals = {
            entry.get("name") for entry in body.get("resources", []) if isinstance(entry, dict)
        }
        return frozenset(kind for kind, info in CALICO_KINDS.items() if info.plural in plurals)

    # -- ClusterClient

    def served_calico_api(self, *, refresh: bool = False) -> CalicoApi:
        """Prefer ``projectcalico.org/v3``; fall back to ``crd.projectcalico.org/v1``.

        A group counts as served when discovery lists at least GlobalNetworkSet and
        GlobalNetworkPolicy in it (Tier arrived in open-source Calico 3.29 only). The answer
        is cached; ``refresh=True`` asks again.
        """
        if self._calico is not None and not refresh:
            return self._calico
        for api_version in (CALICO_V3, CALICO_V1):
            kinds = self._served_kinds(api_version)
            if kinds is not None and {"GlobalNetworkSet", "GlobalNetworkPolicy"} <= kinds:
                self._calico = CalicoApi(api_version, kinds)
                return self._calico
        raise KubeError(
            f"the cluster serves neither {CALICO_V3} nor {CALICO_V1} GlobalNetworkSet and "
            "GlobalNetworkPolicy",
            status=404,
            hint="install Calico (with its API server for projectcalico.org/v3) first",
        )

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        res = self._resource(ref.api_version, ref.kind)
        try:
            obj = self._call(f"get {ref}", lambda: self._kube.get(res, ref.name))
        except KubeError as err:
            if err.status == 404:
                return None
            raise
        return dict(obj)

    def list_owned(
        self, api_version: str, kind: str, *, labels: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        res = self._resource(api_version, kind)
        selector: dict[str, Any] = dict(labels)

        def fetch() -> list[dict[str, Any]]:
            items = self._kube.list(res, labels=selector, chunk_size=self._chunk)
            return [dict(item) for item in items]

        return self._call(f"list {kind} ({api_version})", fetch)

    def apply(self, obj: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        ref = ObjectRef.of(obj)
        res = self._resource(ref.api_version, ref.kind)

        def ssa() -> dict[str, Any]:
            applied = self._kube.apply(
                res(**dict(obj)),
                field_manager=self._field_manager,
                force=self._force,
                dry_run=dry_run,
            )
            return dict(applied)

        try:
            return self._call(f"apply {ref}", ssa)
        except KubeError as err:
            if err.status != 404 or ref.kind not in _SSA_CREATE_BUG_KINDS:
                raise
        # Calico 3.32.0 answers NotFound to an SSA that would create a policy
        # (projectcalico/calico#12841). Create it, then apply so an Apply entry owns the fields.
        log.warning("apply of %s answered NotFound; creating it, then applying", ref)

        def create() -> dict[str, Any]:
            created = self._kube.create(
                res(**dict(obj)),
                field_manager=self._field_manager,
                dry_run=dry_run,
            )
            return dict(created)

        try:
            created = self._call(f"create {ref}", create)
        except KubeError as err:
            if err.status != 409:  # 409: created concurrently; the apply below settles it
                raise
        else:
            if dry_run:
                return created
        return self._call(f"apply {ref}", ssa)

    def delete(self, ref: ObjectRef, *, dry_run: bool = False) -> None:
        res = self._resource(ref.api_version, ref.kind)
        self._call(f"delete {ref}", lambda: self._kube.delete(res, ref.name, dry_run=dry_run))

    # -- LeaseClient

    def get_lease(self, namespace: str, name: str) -> LeaseRecord | None:
        try:
            lease = self._call(
                f"get Lease {namespace}/{name}",
                lambda: self._kube.get(Lease, name, namespace=namespace),
            )
        except KubeError as err:
            if err.status == 404:
                return None
            raise
        return _lease_record(lease)

    def create_lease(self, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
        body = _lease(namespace, name, dataclasses.replace(record, resource_version=None))
        created = self._call(
            f"create Lease {namespace}/{name}",
            lambda: self._kube.create(body, field_manager=self._field_manager),
        )
        return _lease_record(created)

    def update_lease(self, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
        body = _lease(namespace, name, record)
        updated = self._call(
            f"update Lease {namespace}/{name}",
            lambda: self._kube.replace(body, field_manager=self._field_manager),
        )
        return _lease_record(updated)


def from_kubeconfig(
    kubeconfig: str | Path | None,
    build: Callable[[SingleConfig], _T],
    *,
    context: str | None = None,
    service_account: str | Path = SERVICE_ACCOUNT,
) -> _T:
    """``build`` applied to the configuration of a kubeconfig file, or of the environment when
    ``kubeconfig`` is None: the pod's service account (token, namespace and CA under
    ``service_account`` plus ``KUBERNETES_SERVICE_HOST``/``_PORT``: in-cluster), else the file
    named by ``KUBECONFIG``, else ``~/.kube/config``. ``context`` picks a kubeconfig context
    other than the current one.

    Every client of the API is built through this, so a missing file, an unknown context or an
    unreadable certificate (which ``build`` may read) is one KubeError with the same hint.
    """
    try:
        config = (
            KubeConfig.from_file(kubeconfig)
            if kubeconfig is not None
            else KubeConfig.from_env(service_account=service_account)
        )
        single = config.get(context_name=context)
        if single is None:  # pragma: no cover - get() without a default raises instead
            raise _LightkubeConfigError("no current context")
        return build(single)
    except (_LightkubeConfigError, OSError, KeyError, ValueError) as exc:
        where = f" {kubeconfig}" if kubeconfig is not None else ""
        raise KubeError(
            f"cannot load the Kubernetes configuration{where}: {exc}",
            hint="pass --kubeconfig, set KUBECONFIG, or run in a pod with a service account",
        ) from exc


def lightkube_client(
    kubeconfig: str | Path | None = None,
    *,
    context: str | None = None,
    timeout: float = 10.0,
    service_account: str | Path = SERVICE_ACCOUNT,
) -> Client:
    """A lightkube ``Client`` (field manager ``egressguard``) for :func:`from_kubeconfig`'s
    configuration."""
    return from_kubeconfig(
        kubeconfig,
        lambda single: Client(single, timeout=httpx2.Timeout(timeout), field_manager=FIELD_MANAGER),
        context=context,
        service_account=service_account,
    )


def connect(
    kubeconfig: str | Path | None = None,
    *,
    context: str | None = None,
    timeout: float = 10.0,
    retry: RetryPolicy | None = None,
    force: bool = True,
    service_account: str | Path = SERVICE_ACCOUNT,
) -> KubeClient:
    """A client from a kubeconfig file, or from the environment when ``kubeconfig`` is None
    (see :func:`from_kubeconfig`)."""
    client = lightkube_client(
        kubeconfig, context=context, timeout=timeout, service_account=service_account
    )
    return KubeClient(client, retry=retry, force=force)

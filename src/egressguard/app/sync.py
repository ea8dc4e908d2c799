"""Cluster sync: rendered manifests → a plan (create / update / unchanged / prune) → execution.

The desired state is a list of plain manifest dicts (Tier, GlobalNetworkSet shards,
GlobalNetworkPolicy) for one blocklist. :func:`plan` reads what the cluster has and decides, per
object, what to do; :func:`execute` does it through a :class:`ClusterClient`; :func:`sync` is both.

Ownership. Every object egressguard writes carries two labels::

    app.kubernetes.io/managed-by: egressguard
    egressguard.io/blocklist: <blocklist name>

Prune lists objects by exactly these labels (and checks them again on what comes back), so it
never touches an object egressguard did not write, nor one of another blocklist. An object that
exists under a desired name *without* these labels is not overwritten unless ``adopt=True``.

No-op detection. Each desired object gets the annotation ``egressguard.io/content-hash``: a
SHA-256 over its kind, name, labels, other annotations and every top-level field but
``apiVersion``/``metadata``/``status`` (so switching between the v1 and v3 API groups changes
nothing). An object is *unchanged*, and is not written, when the live one carries the same hash
**and** still contains every desired label, annotation and spec value. The hash catches fields
that were removed from the rendering (a subset test cannot see those); the containment test
catches hand edits of the live object (the hash annotation alone would hide them). Values the
server adds (defaults, managedFields) do not count as changes. A re-apply of an unchanged build
therefore writes nothing, and a build that changes one shard writes exactly that shard.

Order. Applies run Tier → GlobalNetworkSet → GlobalNetworkPolicy (sets exist before the policy
that selects them), prunes run afterwards in reverse, GlobalNetworkPolicy → GlobalNetworkSet →
Tier. The first failure stops the run: nothing is pruned after a failed apply, so a half-applied
build never shrinks what is blocked.
"""

from __future__ import annotations

import copy
import enum
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from egressguard.adapters.kube import CALICO_KINDS, CalicoApi, ClusterClient, ObjectRef
from egressguard.errors import InputError, KubeError, ManifestError, SafetyError
from egressguard.render.ownership import (
    BLOCKLIST_LABEL,
    CONTENT_HASH_ANNOTATION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    content_hash,
    ownership_labels,
    stamp,
)

__all__ = [
    "APPLY_ORDER",
    "BLOCKLIST_LABEL",
    "CONTENT_HASH_ANNOTATION",
    "MANAGED_BY_LABEL",
    "MANAGED_BY_VALUE",
    "Action",
    "Change",
    "Plan",
    "SyncResult",
    "content_hash",
    "describe_diff",
    "execute",
    "is_owned",
    "ownership_labels",
    "plan",
    "prepare",
    "read_owned",
    "sync",
]

APPLY_ORDER: tuple[str, ...] = ("Tier", "GlobalNetworkSet", "GlobalNetworkPolicy")
"""Dependency order of the kinds; deletions use the reverse."""

# Metadata a server owns; a desired manifest copied from `kubectl get` may carry them.
_SERVER_METADATA = (
    "resourceVersion",
    "uid",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "ownerReferences",
    "finalizers",
)
# A label value: at most 63 characters, alphanumeric at both ends, '-', '_', '.' inside.
_LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")


class Action(enum.StrEnum):
    """What sync does with one object."""

    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    PRUNE = "prune"


@dataclass(frozen=True)
class Change:
    """One planned step. ``desired`` is the stamped manifest to apply (None for a prune)."""

    action: Action
    ref: ObjectRef
    desired: Mapping[str, Any] | None = None
    live_resource_version: str | None = None
    diff: tuple[str, ...] = ()

    @property
    def writes(self) -> bool:
        return self.action is not Action.UNCHANGED

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action.value,
            "apiVersion": self.ref.api_version,
            "kind": self.ref.kind,
            "name": self.ref.name,
            "diff": list(self.diff),
        }


@dataclass(frozen=True)
class Plan:
    """Every change for one blocklist, in execution order (applies, then prunes)."""

    blocklist: str
    api_version: str
    changes: tuple[Change, ...]

    def count(self, action: Action) -> int:
        return sum(1 for change in self.changes if change.action is action)

    @property
    def writes(self) -> tuple[Change, ...]:
        return tuple(change for change in self.changes if change.writes)

    @property
    def is_noop(self) -> bool:
        return not self.writes

    def summary(self) -> dict[str, int]:
        return {action.value: self.count(action) for action in Action}

    def to_dict(self) -> dict[str, Any]:
        return {
            "blocklist": self.blocklist,
            "apiVersion": self.api_version,
            "summary": self.summary(),
            "changes": [change.to_dict() for change in self.changes],
        }


@dataclass(frozen=True)
class SyncResult:
    """What :func:`execute` did. ``error`` is the failure that stopped it, if any."""

    plan: Plan
    dry_run: bool
    done: tuple[Change, ...] = ()
    failed: Change | None = None
    error: KubeError | None = None
    skipped: tuple[Change, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.error is None

    def raise_for_error(self) -> None:
        if self.error is not None:
            raise self.error

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.plan.to_dict(),
            "dryRun": self.dry_run,
            "ok": self.ok,
            "done": [change.to_dict() for change in self.done],
            "failed": self.failed.to_dict() if self.failed else None,
            "error": self.error.message if self.error else None,
            "skipped": [change.to_dict() for change in self.skipped],
        }


# --------------------------------------------------------------------------- ownership, hashing


def is_owned(obj: Mapping[str, Any], blocklist: str) -> bool:
    """True when ``obj`` carries both ownership labels with these values."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(key) == value for key, value in ownership_labels(blocklist).items())


def prepare(
    desired: Iterable[Mapping[str, Any]], *, blocklist: str, api: CalicoApi
) -> list[dict[str, Any]]:
    """Stamped copies of the desired manifests, in apply order.

    Each copy is moved to the served API group, loses server-owned metadata, gains the
    ownership labels and the content-hash annotation. Raises InputError for a bad blocklist
    name, ManifestError for a kind egressguard does not write or that the cluster does not
    serve, a duplicate object, or conflicting ownership labels.
    """
    if not _LABEL_VALUE.match(blocklist):
        raise InputError(
            f"blocklist name {blocklist!r} is not a valid label value",
            hint="use at most 63 letters, digits, '-', '_' or '.', alphanumeric at both ends",
        )
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for source in desired:
        ref = ObjectRef.of(source)
        if ref.kind not in CALICO_KINDS:
            raise ManifestError(
                f"{ref}: egressguard syncs only {', '.join(APPLY_ORDER)}",
                hint="remove the object from the rendered output",
            )
        if not api.serves(ref.kind):
            raise ManifestError(
                f"{ref}: the cluster's {api.api_version} API has no {ref.kind}",
                hint=(
                    "Tier exists in open-source Calico >= 3.29; on older clusters render with "
                    "policy mode 'blog'"
                    if ref.kind == "Tier"
                    else None
                ),
            )
        if (ref.kind, ref.name) in seen:
            raise ManifestError(f"{ref.kind}/{ref.name} is rendered twice")
        seen.add((ref.kind, ref.name))
        obj = copy.deepcopy(dict(source))
        obj["apiVersion"] = api.api_version
        obj.pop("status", None)
        meta = dict(obj.get("metadata") or {})
        for key in _SERVER_METADATA:
            meta.pop(key, None)
        labels = dict(meta.get("labels") or {})
        for key, value in ownership_labels(blocklist).items():
            if labels.get(key, value) != value:
                raise ManifestError(
                    f"{ref.kind}/{ref.name}: label {key}={labels[key]!r} contradicts "
                    f"blocklist {blocklist!r}"
                )
            labels[key] = value
        meta["labels"] = labels
        obj["metadata"] = meta
        out.append(stamp(obj))
    out.sort(key=lambda o: (APPLY_ORDER.index(o["kind"]), o["metadata"]["name"]))
    return out


# --------------------------------------------------------------------------- comparing


def _contains(have: Any, want: Any) -> bool:
    """``want`` is contained in ``have``: dicts by key (extra keys allowed), lists item by item
    with equal length, scalars by equality (so 100 == 100.0)."""
    if isinstance(want, Mapping):
        return isinstance(have, Mapping) and all(
            key in have and _contains(have[key], value) for key, value in want.items()
        )
    if isinstance(want, list):
        return (
            isinstance(have, list)
            and len(have) == len(want)
            and all(_contains(h, w) for h, w in zip(have, want, strict=True))
        )
    return bool(have == want)


def _projection(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata", "status")}
    return {
        "metadata": {
            "labels": meta.get("labels") or {},
            "annotations": meta.get("annotations") or {},
        },
        **body,
    }


def _is_unchanged(desired: Mapping[str, Any], live: Mapping[str, Any]) -> bool:
    want_hash = desired["metadata"]["annotations"][CONTENT_HASH_ANNOTATION]
    have_hash = ((live.get("metadata") or {}).get("annotations") or {}).get(CONTENT_HASH_ANNOTATION)
    return have_hash == want_hash and _contains(_projection(live), _projection(desired))


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _scalars(values: list[Any]) -> bool:
    return all(isinstance(v, str | int | float | bool) for v in values)


def _diff(path: str, want: Any, have: Any, out: list[str]) -> None:
    if isinstance(want, Mapping) and isinstance(have, Mapping):
        for key in sorted(want):
            sub = f"{path}.{key}" if path else str(key)
            if key not in have:
                out.append(f"{sub}: added {_short(want[key])}")
            else:
                _diff(sub, want[key], have[key], out)
        return
    if _contains(have, want):
        return
    if isinstance(want, list) and isinstance(have, list) and _scalars(want) and _scalars(have):
        added = len(set(want) - set(have))
        removed = len(set(have) - set(want))
        out.append(f"{path}: +{added} -{removed}" if added or removed else f"{path}: reordered")
        return
    out.append(f"{path}: {_short(have)} -> {_short(want)}")


def describe_diff(desired: Mapping[str, Any], live: Mapping[str, Any]) -> tuple[str, ...]:
    """Human-readable differences between what we would apply and what is live."""
    out: list[str] = []
    want = _projection(desired)
    have = _projection(live)
    want["metadata"]["annotations"] = {
        k: v for k, v in want["metadata"]["annotations"].items() if k != CONTENT_HASH_ANNOTATION
    }
    _diff("", want, have, out)
    if not out:
        out.append("fields removed from the rendered object (content hash differs)")
    return tuple(out)


def _describe_new(desired: Mapping[str, Any]) -> tuple[str, ...]:
    nets = (desired.get("spec") or {}).get("nets")
    if isinstance(nets, list):
        return (f"spec.nets: +{len(nets)}",)
    return ()


# --------------------------------------------------------------------------- plan and execute


def read_owned(
    client: ClusterClient, api: CalicoApi, blocklist: str
) -> dict[ObjectRef, dict[str, Any]]:
    """Every object ``blocklist`` owns in the cluster, in apply order and by name within a kind.

    One list per kind ``api`` serves, by the ownership labels; each item is checked again, so a
    server that ignores the selector cannot make a foreign object look owned.
    """
    owned: dict[ObjectRef, dict[str, Any]] = {}
    labels = ownership_labels(blocklist)
    for kind in APPLY_ORDER:
        if not api.serves(kind):
            continue
        items = client.list_owned(api.api_version, kind, labels=labels)
        for item in sorted(
            (item for item in items if is_owned(item, blocklist)),
            key=lambda item: str(item["metadata"]["name"]),
        ):
            owned[ObjectRef(api.api_version, kind, item["metadata"]["name"])] = item
    return owned


def plan(
    client: ClusterClient,
    desired: Sequence[Mapping[str, Any]],
    *,
    blocklist: str,
    prune: bool = True,
    adopt: bool = False,
    allow_empty: bool = False,
    owned: Mapping[ObjectRef, Mapping[str, Any]] | None = None,
) -> Plan:
    """Compare the desired manifests with the cluster; read-only.

    Requests: one discovery (cached by the real client), one list per served kind (none when
    the caller has already read the blocklist's objects with :func:`read_owned` and passes them
    as ``owned``), and one get per desired object that is not among the owned ones (to refuse
    overwriting a foreign object). Raises SafetyError when a desired name is taken by an object
    egressguard does not own (unless ``adopt``), or when nothing is desired but owned objects
    exist (unless ``allow_empty``: that would prune the whole blocklist).
    """
    api = client.served_calico_api()
    objs = prepare(desired, blocklist=blocklist, api=api)
    if owned is None:
        owned = read_owned(client, api, blocklist)
    elif any(ref.api_version != api.api_version for ref in owned):
        # Refs of another group would all look stale, and prune would delete them.
        raise ValueError(f"the owned objects were not read from {api.api_version}")
    if not objs and owned and prune and not allow_empty:
        raise SafetyError(
            f"blocklist {blocklist!r} rendered no objects, but {len(owned)} owned objects exist",
            hint="pruning would remove the whole blocklist; pass allow_empty (--allow-empty) "
            "if that is what you want",
        )

    changes: list[Change] = []
    for obj in objs:
        ref = ObjectRef.of(obj)
        live = owned.get(ref)
        if live is None:
            other = client.get(ref)
            if other is None:
                changes.append(Change(Action.CREATE, ref, obj, diff=_describe_new(obj)))
                continue
            labels = (other.get("metadata") or {}).get("labels") or {}
            if not adopt:
                whose = (
                    f"blocklist {labels.get(BLOCKLIST_LABEL)!r}"
                    if labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE
                    else "no egressguard blocklist"
                )
                raise SafetyError(
                    f"{ref} already exists and belongs to {whose}",
                    hint="rename the blocklist or the object, delete it, or adopt it "
                    "(--adopt) to let egressguard take it over",
                )
            changes.append(
                Change(
                    Action.UPDATE,
                    ref,
                    obj,
                    (other.get("metadata") or {}).get("resourceVersion"),
                    ("adopted: ownership labels added", *describe_diff(obj, other)),
                )
            )
            continue
        version = (live.get("metadata") or {}).get("resourceVersion")
        if _is_unchanged(obj, live):
            changes.append(Change(Action.UNCHANGED, ref, obj, version))
        else:
            changes.append(Change(Action.UPDATE, ref, obj, version, describe_diff(obj, live)))

    if prune:
        wanted = {ObjectRef.of(obj) for obj in objs}
        stale = [ref for ref in owned if ref not in wanted]
        stale.sort(key=lambda r: (-APPLY_ORDER.index(r.kind), r.name))
        for ref in stale:
            version = (owned[ref].get("metadata") or {}).get("resourceVersion")
            changes.append(Change(Action.PRUNE, ref, None, version, ("no longer rendered",)))
    return Plan(blocklist, api.api_version, tuple(changes))


def execute(client: ClusterClient, the_plan: Plan, *, dry_run: bool = False) -> SyncResult:
    """Carry out a plan in its order; unchanged objects cost no request.

    With ``dry_run`` every write goes to the server as a dry-run request (validated, not
    persisted). A prune whose object is already gone counts as done. The first other failure
    stops the run and is returned in the result (transient failures were already retried by
    the client).
    """
    done: list[Change] = []
    steps = the_plan.writes
    for index, change in enumerate(steps):
        try:
            if change.action is Action.PRUNE:
                try:
                    client.delete(change.ref, dry_run=dry_run)
                except KubeError as err:
                    if err.status != 404:
                        raise
            elif change.desired is not None:  # a create or update always carries its object
                client.apply(change.desired, dry_run=dry_run)
        except KubeError as err:
            return SyncResult(
                the_plan, dry_run, tuple(done), change, err, tuple(steps[index + 1 :])
            )
        done.append(change)
    return SyncResult(the_plan, dry_run, tuple(done))


def sync(
    client: ClusterClient,
    desired: Sequence[Mapping[str, Any]],
    *,
    blocklist: str,
    dry_run: bool = False,
    prune: bool = True,
    adopt: bool = False,
    allow_empty: bool = False,
) -> SyncResult:
    """:func:`plan` then :func:`execute`."""
    the_plan = plan(
        client, desired, blocklist=blocklist, prune=prune, adopt=adopt, allow_empty=allow_empty
    )
    return execute(client, the_plan, dry_run=dry_run)

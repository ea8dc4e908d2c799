"""The apply use case: build a blocklist, compare it with the cluster, write only what changed.

::

    cluster ─▶ what this blocklist owns now (list by ownership labels)      read_live
            ─▶ "previous build" for the shrink guard                         previous_build
    config  ─▶ build (sources, subtraction, shards, policies, safety)        app.build
            ─▶ plan against what read_live read, then execute (SSA, prune)    app.sync
            ─▶ records: what was applied, how each source's refresh and the
                        build went                                              adapters.records

Why the cluster is the previous build. The shrink guard of DESIGN §6 must protect what is
*applied*, and only the cluster knows that: a laptop's last apply, another replica's, or a
``kubectl apply -f`` of a build directory all end up there. So the set-level check (the IPv4
or IPv6 set shrinking by more than ``spec.safety.max_shrink``) always compares against the
shards that are live. The per-source check needs per-source counts, which only a build lock
has: the ``applied`` record of this machine keeps the lock of its last successful apply, and
it is used only when the cluster still holds exactly the objects (names and content hashes)
that apply wrote. Otherwise the per-source check is skipped and the set-level check remains.

Failed sources never shrink what is applied. A failed download falls back to the last good
copy (``app.sources``) and a source that never loaded stops the build — unless the config
marks it ``optional``. An optional source can still have data in the cluster that another
machine or replica applied; if it fails here with no copy, applying would drop that data, so
``apply`` refuses (``SourceError``) unless forced.

Why the build's own ``changes`` are not shown. They compare output files; here the plan
compares with the live objects and is what is written (``create``/``update``/``prune``,
``unchanged`` costs no request).

Dry runs. ``client`` plans and sends no write at all; ``server`` sends every write with
``dryRun=All``, so the API server validates it (schema, admission) without persisting it.
Neither updates the ``applied`` record. Sources are still loaded, so their state directory is
refreshed, exactly as ``build --dry-run`` does.
"""

from __future__ import annotations

import copy
import difflib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from egressguard import yamlio
from egressguard.adapters.kube import CalicoApi, ClusterClient, ObjectRef
from egressguard.adapters.records import RecordStore
from egressguard.app import build as build_mod
from egressguard.app import sync
from egressguard.app.build import BuildRefused
from egressguard.app.config import BlocklistConfig, SourceConfig
from egressguard.app.sources import SourceLoader, SourceResult, SourceSpec, Status
from egressguard.cidr.sets import AddressSet
from egressguard.errors import SourceError
from egressguard.render.ownership import CONTENT_HASH_ANNOTATION, SOURCES_ANNOTATION

__all__ = [
    "APPLIED_RECORD",
    "BUILD_RECORD",
    "REFRESH_RECORD",
    "ApplyOutcome",
    "DryRun",
    "LiveState",
    "TrackingLoader",
    "applied_record",
    "apply",
    "diff_text",
    "note_build",
    "note_refreshes",
    "previous_build",
    "read_live",
    "source_version",
]

APPLIED_RECORD: Final = "applied"
BUILD_RECORD: Final = "build"
REFRESH_RECORD: Final = "refresh"
_RECORD_KIND: Final = "AppliedRecord"

DryRun = Literal["client", "server"]


# --------------------------------------------------------------------------------------------
# sources: remember every result


class TrackingLoader(SourceLoader):
    """A ``SourceLoader`` that remembers each source's last result and when it was loaded.

    ``load`` (what ``build`` calls) loads the source, unless ``reuse`` is set and a result is
    remembered: then it returns that result without touching the provider. The controller sets
    ``reuse`` and calls ``refresh`` for the sources that are due; ``apply`` leaves it unset.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.last: dict[str, tuple[SourceResult, float]] = {}
        self.reuse = False

    def refresh(self, spec: SourceSpec) -> SourceResult:
        """Load ``spec`` now (fetch or read, verify, parse, fall back) and remember it."""
        result = super().load(spec)
        self.last[spec.name] = (result, self.clock())
        return result

    def load(self, spec: SourceSpec | Mapping[str, Any]) -> SourceResult:
        if not isinstance(spec, SourceSpec):
            spec = SourceSpec.from_dict(spec)
        if self.reuse and spec.name in self.last:
            return self.last[spec.name][0]
        return self.refresh(spec)

    def forget(self) -> None:
        self.last.clear()


def source_version(result: SourceResult) -> dict[str, Any]:
    """The version of a loaded source exactly as a build would annotate it
    (``egressguard.io/sources``), so ``status`` can tell whether the applied version is the one
    last loaded here."""
    outcome = build_mod.SourceOutcome(
        SourceConfig(spec=SourceSpec(name=result.name)), result, AddressSet(), AddressSet()
    )
    return outcome.version()


def note_refreshes(
    records: RecordStore, attempts: Mapping[str, tuple[SourceResult, float]]
) -> dict[str, Any]:
    """Merge refresh attempts into the ``refresh`` record and write it; returns the record.

    Per source: the last attempt (time, status, reason, the version it yielded), the last
    success (``fresh`` or ``not-modified``) and how many attempts in a row have failed. An
    attempt already in the record (same time) is not counted twice.
    """
    doc = records.read(REFRESH_RECORD) or {}
    sources: dict[str, Any] = dict(doc.get("sources") or {})
    changed = False
    for name, (result, at) in sorted(attempts.items()):
        entry = dict(sources.get(name) or {})
        if entry.get("attempted_at") == at:
            continue
        changed = True
        ok = result.status.refreshed
        entry.update(
            attempted_at=at,
            status=str(result.status),
            reason=result.reason,
            failures=0 if ok else int(entry.get("failures") or 0) + 1,
            version=source_version(result),
        )
        if ok:
            entry["succeeded_at"] = at
        sources[name] = entry
    out = {"kind": "RefreshRecord", "sources": sources}
    if changed or not doc:
        records.write(REFRESH_RECORD, out)
    return out


def note_build(records: RecordStore, result: str, at: float, messages: Sequence[str] = ()) -> None:
    """Keep the outcome of the last build (``ok``, ``forced``, ``refused``, ``source-failed``)
    in the ``build`` record, so ``status`` can say that a safety check holds data back."""
    records.write(
        BUILD_RECORD,
        {"kind": "BuildRecord", "result": result, "at": at, "messages": list(messages)},
    )


# --------------------------------------------------------------------------------------------
# the cluster


def _key(kind: str, name: str) -> str:
    return f"{kind}/{name}"


@dataclass(frozen=True)
class LiveState:
    """The objects one blocklist owns in the cluster, in apply order."""

    blocklist: str
    api: CalicoApi
    objects: tuple[dict[str, Any], ...]

    def owned(self) -> dict[ObjectRef, dict[str, Any]]:
        """The objects by reference, as :func:`egressguard.app.sync.read_owned` returns them."""
        return {
            ObjectRef(self.api.api_version, str(o["kind"]), o["metadata"]["name"]): o
            for o in self.objects
        }

    def find(self, kind: str, name: str) -> dict[str, Any] | None:
        for obj in self.objects:
            if obj.get("kind") == kind and obj["metadata"]["name"] == name:
                return obj
        return None

    def hashes(self) -> dict[str, str | None]:
        """``Kind/name`` → the content-hash annotation of each live object."""
        return {
            _key(str(o.get("kind")), o["metadata"]["name"]): (
                (o["metadata"].get("annotations") or {}).get(CONTENT_HASH_ANNOTATION)
            )
            for o in self.objects
        }

    def source_versions(self) -> list[dict[str, Any]] | None:
        """The source versions the build annotated the blocking policy with (None: none)."""
        for obj in self.objects:
            text = (obj["metadata"].get("annotations") or {}).get(SOURCES_ANNOTATION)
            if text is None:
                continue
            try:
                versions = json.loads(text)
            except ValueError:
                return None
            return (
                [v for v in versions if isinstance(v, dict)] if isinstance(versions, list) else None
            )
        return None


def read_live(client: ClusterClient, blocklist: str) -> LiveState:
    """List every object ``blocklist`` owns (one list request per served kind)."""
    api = client.served_calico_api()
    owned = sync.read_owned(client, api, blocklist)
    return LiveState(blocklist, api, tuple(dict(o, kind=ref.kind) for ref, o in owned.items()))


def previous_build(
    live: LiveState, record: Mapping[str, Any] | None
) -> build_mod.PreviousBuild | None:
    """The live shards as the "previous build" of the shrink guard (see the module docstring).

    The shards go in as one JSON document per shard (JSON is YAML; the build counts their
    ``spec.nets``); the lock of the ``applied`` record comes along only when the record
    describes exactly what is live.
    """
    if not live.objects:
        return None
    files: dict[str, bytes] = {}
    for obj in live.objects:
        if obj.get("kind") != "GlobalNetworkSet":
            continue
        nets = (obj.get("spec") or {}).get("nets") or []
        doc = {"kind": "GlobalNetworkSet", "metadata": {"name": obj["metadata"]["name"]}}
        doc["spec"] = {"nets": [str(n) for n in nets]}
        files[f"live-{obj['metadata']['name']}.yaml"] = json.dumps(doc).encode()
    lock = None
    if (
        record is not None
        and record.get("blocklist") == live.blocklist
        and record.get("objects") == live.hashes()
        and isinstance(record.get("lock"), Mapping)
    ):
        lock = record["lock"]
    return build_mod.PreviousBuild(files=files, lock=lock)


def _refuse_dropping_applied_sources(built: build_mod.BuildResult, live: LiveState) -> None:
    """An optional source that failed without any copy here contributes nothing to the build;
    if the cluster holds data from it (another machine or replica had a copy), applying would
    drop that data because of a failed download. Refuse, as a source that never loaded does."""
    applied = {str(v.get("name")): v for v in live.source_versions() or () if not v.get("missing")}
    lost = [o.name for o in built.sources if o.result.status is Status.FAILED and o.name in applied]
    if lost:
        reasons = "; ".join(
            f"{o.name}: {o.result.reason or 'failed'}" for o in built.sources if o.name in lost
        )
        raise SourceError(
            f"{', '.join(lost)} failed with no copy in this state directory, but the cluster "
            f"holds data from {'them' if len(lost) > 1 else 'it'}; applying would drop that "
            f"data ({reasons})",
            hint="fix the source or wait for it to recover; --force applies without it",
        )


def applied_record(
    result: build_mod.BuildResult, plan: sync.Plan, *, at: float, identity: str | None
) -> dict[str, Any]:
    """What the ``applied`` record holds after a successful apply of ``result``."""
    objects: dict[str, str | None] = {}
    for change in plan.changes:
        if change.action is sync.Action.PRUNE or change.desired is None:
            continue
        annotations = change.desired["metadata"].get("annotations") or {}
        objects[_key(change.ref.kind, change.ref.name)] = annotations.get(CONTENT_HASH_ANNOTATION)
    lock = json.loads(result.files[build_mod.LOCK_FILE])
    return {
        "kind": _RECORD_KIND,
        "blocklist": result.config.name,
        "api": plan.api_version,
        "applied_at": at,
        "identity": identity,
        "objects": objects,
        "lock": lock,
    }


# --------------------------------------------------------------------------------------------
# apply


@dataclass(frozen=True)
class ApplyOutcome:
    """One apply: the build, what the cluster held before, and what was done."""

    build: build_mod.BuildResult
    live: LiveState
    result: sync.SyncResult
    dry_run: DryRun | None = None
    foreign: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    #: seconds spent reading the cluster (``read``), building, planning and executing
    timings: Mapping[str, float] = field(default_factory=dict)

    @property
    def plan(self) -> sync.Plan:
        return self.result.plan

    @property
    def ok(self) -> bool:
        return self.result.ok

    def to_json(self) -> dict[str, Any]:
        built = self.build.to_json()
        built.pop("changes", None)  # file changes of a build directory; the plan is what counts
        doc = self.result.to_dict()
        doc["dryRun"] = self.dry_run or False
        doc["build"] = built
        return doc

    def lines(self) -> list[str]:
        """One line per object, as ``kubectl apply`` prints them."""
        suffix = f" (dry run: {self.dry_run})" if self.dry_run else ""
        verbs = {
            sync.Action.CREATE: "created",
            sync.Action.UPDATE: "configured",
            sync.Action.UNCHANGED: "unchanged",
            sync.Action.PRUNE: "pruned",
        }
        done = {c.ref for c in self.result.done}
        out = []
        for change in self.plan.changes:
            what = f"{change.ref.kind}/{change.ref.name}"
            if change.action is sync.Action.UNCHANGED:
                out.append(f"{what} unchanged")
            elif self.result.failed is not None and change.ref == self.result.failed.ref:
                out.append(f"{what} FAILED: {self.result.error}")
            elif change.ref in done or self.dry_run == "client":
                out.append(f"{what} {verbs[change.action]}{suffix}")
            else:
                out.append(f"{what} skipped (an earlier write failed)")
        return out


def apply(
    config: BlocklistConfig,
    *,
    loader: SourceLoader,
    client: ClusterClient,
    records: RecordStore | None = None,
    force: bool = False,
    dry_run: DryRun | None = None,
    adopt: bool = False,
    identity: str | None = None,
    clock: Callable[[], float] = time.time,
) -> ApplyOutcome:
    """Build ``config`` and bring the cluster to it.

    Raises what ``build`` raises (``BuildRefused`` — nothing is applied —, ``SourceError``),
    ``SafetyError`` from the plan (a desired name held by a foreign object without ``adopt``)
    and ``KubeError`` from reading the cluster. A failed write does not raise: it is in
    ``outcome.result.error`` (the writes before it stay, nothing is pruned after it).
    """
    timings: dict[str, float] = {}
    started = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal started
        now = time.perf_counter()
        timings[name] = now - started
        started = now

    live = read_live(client, config.name)
    record = records.read(APPLIED_RECORD) if records is not None else None
    previous = previous_build(live, record)
    lap("read")
    try:
        built = build_mod.build(config, loader=loader, previous=previous, force=force)
        if not force:
            _refuse_dropping_applied_sources(built, live)
    except BuildRefused as refused:
        if records is not None:
            messages = [c.message for c in refused.result.violations]
            note_build(records, "refused", clock(), messages)
        raise
    except SourceError as err:
        if records is not None:
            note_build(records, "source-failed", clock(), [err.message])
        raise
    else:
        if records is not None:
            messages = [c.message for c in built.violations]
            note_build(records, "forced" if built.forced else "ok", clock(), messages)
    finally:
        if records is not None and isinstance(loader, TrackingLoader) and loader.last:
            note_refreshes(records, loader.last)
    lap("build")
    # Planned against the objects read above, which the shrink guard checked the build
    # against: one list of the blocklist per apply, and one picture of the cluster.
    the_plan = sync.plan(
        client, built.manifests, blocklist=config.name, adopt=adopt, owned=live.owned()
    )
    foreign: dict[str, dict[str, Any]] = {}
    if adopt:
        for change in the_plan.changes:
            if change.writes and live.find(change.ref.kind, change.ref.name) is None:
                other = client.get(change.ref)
                if other is not None:
                    foreign[_key(change.ref.kind, change.ref.name)] = other
    lap("plan")
    if dry_run == "client":
        result = sync.SyncResult(the_plan, True)
    else:
        result = sync.execute(client, the_plan, dry_run=dry_run == "server")
    lap("execute")
    if result.ok and dry_run is None and records is not None:
        records.write(
            APPLIED_RECORD, applied_record(built, the_plan, at=clock(), identity=identity)
        )
    return ApplyOutcome(built, live, result, dry_run, foreign, timings)


# --------------------------------------------------------------------------------------------
# diff


def _shaped(live: Any, desired: Any) -> Any:
    """``live`` cut to the keys ``desired`` has (server defaults and bookkeeping left out, as
    the sync's containment test leaves them out)."""
    if isinstance(live, Mapping) and isinstance(desired, Mapping):
        return {k: _shaped(live[k], desired[k]) for k in desired if k in live}
    return live


def _view(obj: Mapping[str, Any] | None) -> dict[str, Any]:
    if obj is None:
        return {}
    meta = obj.get("metadata") or {}
    out: dict[str, Any] = {
        "metadata": {
            "name": meta.get("name"),
            "labels": dict(meta.get("labels") or {}),
            "annotations": dict(meta.get("annotations") or {}),
        }
    }
    for key, value in obj.items():
        if key not in ("apiVersion", "kind", "metadata", "status"):
            out[key] = copy.deepcopy(value)
    return out


def _lines(view: Mapping[str, Any]) -> list[str]:
    if not view:
        return []
    return yamlio.dump_documents([view]).splitlines(keepends=True)[1:]  # without "---"


def diff_text(outcome: ApplyOutcome, *, context: int = 3) -> str:
    """Unified diffs (live → desired) of every object the plan writes, like ``kubectl diff``.

    Only the fields egressguard sets are compared (metadata name, labels, annotations and the
    body); a create diffs against nothing, a prune against nothing.
    """
    chunks: list[str] = []
    for change in outcome.plan.writes:
        key = _key(change.ref.kind, change.ref.name)
        live = outcome.live.find(change.ref.kind, change.ref.name) or outcome.foreign.get(key)
        desired = _view(change.desired) if change.desired is not None else {}
        current = _view(live)
        if desired and current:
            current = _shaped(current, desired)
        label = f"{change.ref.kind}/{change.ref.name}"
        diff = difflib.unified_diff(
            _lines(current),
            _lines(desired),
            fromfile=f"live/{label}" if live is not None else "/dev/null",
            tofile=f"desired/{label}" if change.desired is not None else "/dev/null",
            n=context,
        )
        text = "".join(line if line.endswith("\n") else line + "\n" for line in diff)
        if not text:  # only the content hash differs (a field was removed from the rendering)
            text = f"--- live/{label}\n+++ desired/{label}\n# {'; '.join(change.diff)}\n"
        chunks.append(text)
    return "".join(chunks)

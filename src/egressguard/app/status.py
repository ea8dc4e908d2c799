"""The status use case: what is applied, from which source versions, and how fresh the sources are.

Three places know part of the answer, and the report says which fact came from where:

* **the cluster** (always): the objects the blocklist owns (by its ownership labels), each with
  its content hash and, for shards, the entry count and address range the build annotated;
  the blocking policy carries the versions of the sources that went into the applied build
  (``egressguard.io/sources``: content hashes, feed dates, locations);
* **the state directory** of this machine (with a config): the last good copy of every source
  part — when it was downloaded (``fetched_at``) and when the provider last confirmed it
  (``checked_at``: a 304 or identical bytes) — so the report can say whether the applied
  version is the newest copy this machine holds;
* **the records** next to it: the last refresh *attempt* per source (a failed download leaves
  the copy untouched, so only this record shows it), the last apply from this machine, and
  the outcome of the last build (a build refused by a safety check applied nothing, and the
  report says why: DESIGN §6 wants it said in logs, status and metrics).

A controller in a pod has its own state directory; run ``status`` there (``kubectl exec``) for
its view, or read its ``/metrics``. From a workstation the cluster facts are the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from egressguard.adapters.kube import ClusterClient
from egressguard.adapters.records import RecordStore
from egressguard.adapters.state import StateStore
from egressguard.app import apply as apply_mod
from egressguard.app.config import BlocklistConfig, SourceConfig
from egressguard.render.ownership import (
    CONTENT_HASH_ANNOTATION,
    ENTRIES_ANNOTATION,
    RANGE_ANNOTATION,
)
from egressguard.tables import align

__all__ = [
    "AppliedObject",
    "PartState",
    "SourceStatus",
    "StatusReport",
    "collect",
    "format_text",
]

_SHORT: Final = 12


@dataclass(frozen=True)
class AppliedObject:
    """One object the blocklist owns in the cluster."""

    kind: str
    name: str
    content_hash: str | None
    resource_version: str | None
    entries: int | None = None
    range: str | None = None

    @property
    def family(self) -> int | None:
        """4 or 6 for a shard (its range is an address-space bucket), else None."""
        if self.range is None:
            return None
        return 6 if ":" in self.range else 4

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "contentHash": self.content_hash,
            "resourceVersion": self.resource_version,
            "entries": self.entries,
            "range": self.range,
        }


@dataclass(frozen=True)
class PartState:
    """The stored copy of one part (URL or file) of a source, from the state directory."""

    key: str
    location: str
    sha256: str
    fetched_at: float
    checked_at: float
    entries: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "location": self.location,
            "sha256": self.sha256,
            "fetchedAt": self.fetched_at,
            "checkedAt": self.checked_at,
            "entries": self.entries,
        }


@dataclass(frozen=True)
class SourceStatus:
    """One source: the version applied, the copies held here and the last refresh attempt."""

    name: str
    kind: str | None
    interval: float | None
    applied: Mapping[str, Any] | None
    parts: tuple[PartState, ...] = ()
    attempt: Mapping[str, Any] | None = None

    @property
    def last_refresh(self) -> float | None:
        """When the provider last confirmed the data held here (the newest ``checked_at``)."""
        return max((p.checked_at for p in self.parts), default=None)

    @property
    def current(self) -> bool | None:
        """Whether the applied version is the one this machine loaded last (None: unknown).

        Both sides are the build's own version value (``build.SourceOutcome.version``), so
        they compare equal exactly when a build from the last load would annotate the same.
        """
        if self.applied is None or not self.attempt or "version" not in self.attempt:
            return None
        return bool(self.attempt["version"] == dict(self.applied))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "interval": self.interval,
            "applied": dict(self.applied) if self.applied is not None else None,
            "current": self.current,
            "lastRefresh": self.last_refresh,
            "parts": [p.to_json() for p in self.parts],
            "lastAttempt": dict(self.attempt) if self.attempt is not None else None,
        }


@dataclass(frozen=True)
class StatusReport:
    """Everything ``egressguard status`` shows."""

    blocklist: str
    api_version: str
    objects: tuple[AppliedObject, ...]
    sources: tuple[SourceStatus, ...]
    applied_record: Mapping[str, Any] | None = None
    build_record: Mapping[str, Any] | None = None
    now: float = 0.0
    notes: tuple[str, ...] = field(default=())

    @property
    def applied(self) -> bool:
        return bool(self.objects)

    def entries(self, family: int) -> int:
        """CIDRs in the applied shards of one family (from their annotations)."""
        return sum(
            o.entries or 0
            for o in self.objects
            if o.kind == "GlobalNetworkSet" and o.family == family
        )

    def to_json(self) -> dict[str, Any]:
        record = self.applied_record or {}
        return {
            "blocklist": self.blocklist,
            "apiVersion": self.api_version,
            "applied": self.applied,
            "objects": [o.to_json() for o in self.objects],
            "sources": [s.to_json() for s in self.sources],
            "lastApply": (
                {"at": record.get("applied_at"), "identity": record.get("identity")}
                if record
                else None
            ),
            "lastBuild": dict(self.build_record) if self.build_record is not None else None,
            "notes": list(self.notes),
        }


def _entries(obj: Mapping[str, Any]) -> int | None:
    text = (obj["metadata"].get("annotations") or {}).get(ENTRIES_ANNOTATION)
    if text is not None:
        try:
            return int(text)
        except ValueError:
            pass
    nets = (obj.get("spec") or {}).get("nets")
    return len(nets) if isinstance(nets, list) else None


def _parts(state: StateStore, src: SourceConfig) -> tuple[PartState, ...]:
    """The stored copies of a source: key ``name`` for one part, ``name#i`` for several."""
    spec = src.spec
    if spec.static is not None:
        return ()
    count = 1
    if spec.geo is not None:
        count = max(len(spec.geo.files), len(spec.geo.urls), 1)
    keys = [spec.name, *(f"{spec.name}#{i}" for i in range(count))] if count > 1 else [spec.name]
    out = []
    for key in keys:
        copy = state.load(key)
        if copy is None:
            continue
        meta = copy.meta
        out.append(
            PartState(
                key, meta.location, meta.sha256, meta.fetched_at, meta.checked_at, meta.entries
            )
        )
    return tuple(out)


def collect(
    client: ClusterClient,
    blocklist: str,
    *,
    config: BlocklistConfig | None = None,
    state: StateStore | None = None,
    records: RecordStore | None = None,
    now: float = 0.0,
) -> StatusReport:
    """Read the cluster (one list per served kind) and, when given, the local state."""
    live = apply_mod.read_live(client, blocklist)
    objects = tuple(
        AppliedObject(
            kind=str(o.get("kind")),
            name=o["metadata"]["name"],
            content_hash=(o["metadata"].get("annotations") or {}).get(CONTENT_HASH_ANNOTATION),
            resource_version=o["metadata"].get("resourceVersion"),
            entries=_entries(o) if o.get("kind") == "GlobalNetworkSet" else None,
            range=(o["metadata"].get("annotations") or {}).get(RANGE_ANNOTATION),
        )
        for o in live.objects
    )
    versions = {str(v.get("name")): v for v in live.source_versions() or ()}
    refresh = (records.read(apply_mod.REFRESH_RECORD) if records is not None else None) or {}
    attempts: Mapping[str, Any] = refresh.get("sources") or {}
    notes: list[str] = []
    sources: list[SourceStatus] = []
    if config is not None:
        for src in config.sources:
            sources.append(
                SourceStatus(
                    name=src.name,
                    kind=src.spec.kind,
                    interval=src.interval,
                    applied=versions.get(src.name),
                    parts=_parts(state, src) if state is not None else (),
                    attempt=attempts.get(src.name),
                )
            )
        extra = sorted(set(versions) - {s.name for s in config.sources})
        if extra:
            notes.append(
                f"the applied build has sources the config no longer lists: {', '.join(extra)}"
            )
    else:
        for name, version in sorted(versions.items()):
            sources.append(
                SourceStatus(name, version.get("kind"), None, version, attempt=attempts.get(name))
            )
    if objects and not versions:
        notes.append("the applied objects carry no source versions (not written by a build?)")
    built = records.read(apply_mod.BUILD_RECORD) if records is not None else None
    record = records.read(apply_mod.APPLIED_RECORD) if records is not None else None
    if record is not None and record.get("blocklist") != blocklist:
        record = None
    if record is not None and record.get("objects") != live.hashes():
        notes.append(
            "the cluster changed since this machine's last apply (another replica or person)"
        )
    return StatusReport(
        blocklist=blocklist,
        api_version=live.api.api_version,
        objects=objects,
        sources=tuple(sources),
        applied_record=record,
        build_record=built,
        now=now,
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------------------------
# text


def _when(ts: Any, now: float) -> str:
    if not isinstance(ts, int | float):
        return "-"
    stamp = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if not now:
        return stamp
    return f"{stamp} ({_ago(now - ts)})"


def _ago(seconds: float) -> str:
    if seconds < 0:
        return "in the future"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def _version_text(source: SourceStatus) -> str:
    applied = source.applied
    if applied is None:
        return "not applied"
    if applied.get("missing"):
        return "applied without data (failed, optional)"
    digest = applied.get("digest") or applied.get("sha256")
    text = str(digest)[: len("sha256:") + _SHORT] if digest else "-"
    dates = applied.get("dates")
    if isinstance(dates, list) and dates:
        text += f" ({', '.join(str(d) for d in dates)})"
    return text


def format_text(report: StatusReport) -> str:
    """The human view: the applied objects, then the sources, then notes."""
    now = report.now
    lines = []
    if not report.applied:
        lines.append(f"blocklist {report.blocklist}: nothing applied ({report.api_version})")
    else:
        lines.append(
            f"blocklist {report.blocklist}: {len(report.objects)} objects applied "
            f"({report.api_version}); IPv4 {report.entries(4):,} CIDRs, "
            f"IPv6 {report.entries(6):,} CIDRs"
        )
    record = report.applied_record
    if record is not None:
        who = f" by {record['identity']}" if record.get("identity") else ""
        lines.append(f"last apply from this machine: {_when(record.get('applied_at'), now)}{who}")
    built = report.build_record
    if built is not None and built.get("result") not in ("ok", None):
        lines.append(
            f"last build: {str(built['result']).upper()} {_when(built.get('at'), now)}"
            + (" (nothing was applied)" if built["result"] != "forced" else "")
        )
        lines.extend(f"  {message}" for message in built.get("messages") or ())
    if report.objects:
        rows = [["KIND", "NAME", "ENTRIES", "RANGE", "CONTENT HASH"]]
        for o in report.objects:
            rows.append(
                [
                    o.kind,
                    o.name,
                    f"{o.entries:,}" if o.entries is not None else "-",
                    o.range or "-",
                    (o.content_hash or "-")[: len("sha256:") + _SHORT],
                ]
            )
        lines.append("")
        lines.extend(align(rows))
    if report.sources:
        rows = [["SOURCE", "APPLIED VERSION", "CURRENT", "LAST REFRESH", "LAST ATTEMPT"]]
        for s in report.sources:
            current = {True: "yes", False: "no", None: "-"}[s.current]
            attempt = "-"
            if s.attempt:
                attempt = f"{s.attempt.get('status')} {_when(s.attempt.get('attempted_at'), now)}"
                if s.attempt.get("failures"):
                    attempt += f", {s.attempt['failures']} failed in a row"
            rows.append([s.name, _version_text(s), current, _when(s.last_refresh, now), attempt])
        lines.append("")
        lines.extend(align(rows))
        for s in report.sources:
            if s.attempt and s.attempt.get("reason") and s.attempt.get("failures"):
                lines.append(f"  {s.name}: {s.attempt['reason']}")
    for note in report.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines) + "\n"

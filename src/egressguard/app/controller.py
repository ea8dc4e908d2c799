"""The controller: keep one blocklist current in the cluster, safely, with several replicas.

What one replica does (``docs/controller.md`` is the operator's view)::

    election thread   every retry_period: acquire or renew the Lease (app.leader)
    loop thread       while leading: refresh the sources that are due, rebuild, apply changes
    HTTP              /healthz (loop alive), /readyz (applied once, or following a known
                      leader), /metrics (sources, set, builds, applies, leadership)

Schedule. Each source is refreshed every ``interval`` of its config entry (default 24 h),
stretched by a random ``jitter`` (default up to +10 %) so replicas and sources drift apart
instead of hitting providers in step. A source whose refresh fails (it falls back to its last
good copy, or has none) is retried sooner, with exponential backoff from ``backoff_initial``
(30 s), never later than its interval and never above ``backoff_max`` (1 h). A rebuild runs
when a refresh brought new data (``fresh``) or a source lost all data (``failed-no-copy``),
and every ``resync`` (default 10 min) regardless, which repairs drift (a shard deleted or
edited by hand). A failed apply is retried with the same backoff. A ``not-modified`` or
``fallback-to-last-good`` refresh changes nothing in the build, so it triggers none. The
build is deterministic and the sync skips unchanged objects, so a rebuild that changes nothing
writes nothing.

Only the leader works. Followers neither apply nor refresh: refreshing would multiply the
requests to feed providers (some rate-limit hard, e.g. Spamhaus and MaxMind) for data the
follower could not use. The price: a new leader starts from its own state directory (an
``emptyDir`` per pod unless a volume is shared), so its first refresh downloads every source;
until that succeeds a source without a copy fails the build, and nothing is applied — which is
the safe direction.

Safety (DESIGN §6). Sources fall back to their last good copy (``app.sources``); a build whose
shrink, coverage, size or policy check fails is refused (``BuildRefused``), reported in the log
and ``egressguard_builds_total{result="refused"}``, and nothing is applied; the controller
keeps running and tries again with the next data. A build that a person has checked can be
pushed once with ``egressguard apply --force``.

Writes and leadership. Every write goes through a guard that checks, under one lock, that this
replica still leads and is not stopping. On shutdown the election thread takes the same lock
before releasing the Lease, so no write of this replica can start or still be in flight once
another replica may take over.

Time. ``clock`` (wall time: schedule, timestamps) and ``monotonic`` (health) are injectable;
``cycle`` does one pass without sleeping, so tests drive the controller step by step. ``run``
sleeps only through ``stop.wait`` in steps of at most ``tick`` seconds.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from egressguard.adapters.kube import CalicoApi, ClusterClient, ObjectRef
from egressguard.adapters.records import RecordStore
from egressguard.app import apply as apply_mod
from egressguard.app import sync
from egressguard.app.build import BuildRefused
from egressguard.app.config import BlocklistConfig, SourceConfig
from egressguard.app.leader import LeaderElector
from egressguard.app.sources import SourceResult, Status
from egressguard.cidr.sets import AddressSet
from egressguard.errors import EgressguardError, KubeError, SafetyError, SourceError
from egressguard.logs.metrics import MetricFamily, Sample, render_text

__all__ = [
    "Controller",
    "ControllerSettings",
    "JsonFormatter",
    "NotLeader",
]

log = logging.getLogger(__name__)

_FAMILIES: Final = (4, 6)
_BUILD_RESULTS: Final = ("ok", "refused", "source-failed", "error")
_WRITE_ACTIONS: Final = (sync.Action.CREATE, sync.Action.UPDATE, sync.Action.PRUNE)


class NotLeader(KubeError):
    """A write was not sent: this replica no longer leads, or it is shutting down."""


@dataclass(frozen=True)
class ControllerSettings:
    """Timing of the loop, in seconds (see the module docstring)."""

    resync: float = 600.0
    jitter: float = 0.1
    backoff_initial: float = 30.0
    backoff_max: float = 3600.0
    tick: float = 1.0
    stall_timeout: float = 900.0

    def __post_init__(self) -> None:
        if self.resync <= 0 or self.tick <= 0 or self.stall_timeout <= 0:
            raise ValueError("resync, tick and stall_timeout must be positive")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter is a fraction between 0 and 1")
        if not 0 < self.backoff_initial <= self.backoff_max:
            raise ValueError("need 0 < backoff_initial <= backoff_max")


@dataclass
class _Source:
    """The schedule and the last refresh of one source."""

    config: SourceConfig
    next_due: float = 0.0
    failures: int = 0
    last_attempt: float | None = None
    last_success: float | None = None
    status: Status | None = None
    reason: str | None = None
    cidrs: dict[int, int] = field(default_factory=dict)
    refreshes: dict[str, int] = field(default_factory=lambda: {str(s): 0 for s in Status})

    @property
    def name(self) -> str:
        return self.config.name


class _LeaderOnlyClient:
    """A ``ClusterClient`` whose writes happen only while ``may_write()`` holds, under ``lock``.

    Reads pass through: a follower may read, and a plan is harmless. The lock is what the
    election thread takes before it releases the Lease.
    """

    def __init__(
        self, inner: ClusterClient, may_write: Callable[[], bool], lock: threading.Lock
    ) -> None:
        self._inner = inner
        self._may_write = may_write
        self._lock = lock

    def served_calico_api(self) -> CalicoApi:
        return self._inner.served_calico_api()

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        return self._inner.get(ref)

    def list_owned(
        self, api_version: str, kind: str, *, labels: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        return self._inner.list_owned(api_version, kind, labels=labels)

    def apply(self, obj: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        with self._lock:
            self._check(ObjectRef.of(obj))
            return self._inner.apply(obj, dry_run=dry_run)

    def delete(self, ref: ObjectRef, *, dry_run: bool = False) -> None:
        with self._lock:
            self._check(ref)
            self._inner.delete(ref, dry_run=dry_run)

    def _check(self, ref: ObjectRef) -> None:
        if not self._may_write():
            raise NotLeader(f"{ref}: not written, this replica no longer leads", transient=True)


class Controller:
    """One replica of the controller for one blocklist (see the module docstring).

    ``loader`` refreshes sources and keeps their last results; ``client`` reads and writes the
    cluster; ``records`` (optional) keeps the ``applied`` and ``refresh`` records next to the
    sources' state; ``elector`` (optional: without it this replica always leads) holds the
    Lease. ``identity`` names this replica in metrics and records.
    """

    def __init__(
        self,
        config: BlocklistConfig,
        *,
        loader: apply_mod.TrackingLoader,
        client: ClusterClient,
        records: RecordStore | None = None,
        elector: LeaderElector | None = None,
        identity: str = "egressguard",
        settings: ControllerSettings | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        version: str = "",
    ) -> None:
        self.config = config
        self.loader = loader
        self.records = records
        self.elector = elector
        self.identity = identity
        self.settings = settings or ControllerSettings()
        self.clock = clock
        self.monotonic = monotonic
        self.version = version
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._write_lock = threading.Lock()
        self._state_lock = threading.RLock()
        self._stop = threading.Event()
        self.client = _LeaderOnlyClient(client, self._may_write, self._write_lock)
        self._sources = {s.name: _Source(s) for s in config.sources}
        self._was_leading = False
        self._dirty = False
        self._next_sync = 0.0
        self._apply_failures = 0
        # metrics and probes
        self._loop_beat: float | None = None
        self._election_beat: float | None = None
        self._applied_once = False
        self._builds = dict.fromkeys(_BUILD_RESULTS, 0)
        self._build_refused = False
        self._build_seconds: float | None = None
        self._apply_seconds: float | None = None
        self._apply_errors = 0
        self._writes = {str(a): 0 for a in _WRITE_ACTIONS}
        self._last_apply: float | None = None
        self._set: dict[int, tuple[int, int]] = {}
        self._threads: list[threading.Thread] = []

    # ---------------------------------------------------------------------------- leadership

    def _leading(self) -> bool:
        return self.elector is None or self.elector.is_leader

    def _may_write(self) -> bool:
        return not self._stop.is_set() and self._leading()

    def _on_elected(self, now: float) -> None:
        log.info(
            "leading: refreshing every source and applying",
            extra={"event": "leader.started", "identity": self.identity},
        )
        for src in self._sources.values():
            src.next_due = now
        self._next_sync = now
        self._apply_failures = 0

    def _on_deposed(self) -> None:
        log.info(
            "no longer leading: stopped refreshing and applying",
            extra={"event": "leader.stopped", "identity": self.identity},
        )

    # ---------------------------------------------------------------------------- schedule

    def _jittered(self, seconds: float) -> float:
        return seconds * (1.0 + self._rng.uniform(0.0, self.settings.jitter))

    def _backoff(self, failures: int, interval: float) -> float:
        s = self.settings
        base = min(s.backoff_max, interval, s.backoff_initial * 2.0 ** max(0, failures - 1))
        return self._jittered(base)

    def _refresh(self, src: _Source) -> SourceResult:
        started = self.clock()
        try:
            result = self.loader.refresh(src.config.spec)
        except EgressguardError as err:  # the loader reports failures in the result; be sure
            result = SourceResult(
                src.name, src.config.spec.kind, Status.FAILED, AddressSet(), reason=str(err)
            )
            self.loader.last[src.name] = (result, self.clock())
        now = self.clock()
        with self._state_lock:
            before = src.status
            src.last_attempt = now
            src.status = result.status
            src.reason = result.reason
            src.refreshes[str(result.status)] += 1
            if result.ok:
                src.cidrs = {f: result.addresses[f].cidr_count for f in _FAMILIES}
            if result.status.refreshed:
                src.failures = 0
                src.last_success = now
                src.next_due = now + self._jittered(src.config.interval)
            else:
                src.failures += 1
                src.next_due = now + self._backoff(src.failures, src.config.interval)
        if result.status is Status.FRESH or (
            result.status is Status.FAILED and before is not Status.FAILED
        ):
            self._dirty = True  # new data, or a source lost its data: the build changes
        fields = {
            "event": "source.refresh",
            "source": src.name,
            "status": str(result.status),
            "reason": result.reason,
            "ipv4_cidrs": result.addresses.v4.cidr_count,
            "ipv6_cidrs": result.addresses.v6.cidr_count,
            "seconds": round(now - started, 3),
            "next_refresh_in": round(src.next_due - now, 1),
        }
        if result.status.refreshed:
            log.info("source %s: %s", src.name, result.status, extra=fields)
        else:
            log.warning("source %s: %s (%s)", src.name, result.status, result.reason, extra=fields)
        return result

    # ---------------------------------------------------------------------------- one pass

    def cycle(self) -> float:
        """One pass of the loop; returns the seconds until something is due (not bounded by
        ``tick``). Never raises for a failed source, build or apply: those are logged, counted
        and retried on schedule."""
        now = self.clock()
        self._loop_beat = self.monotonic()
        leading = self._leading()
        if leading != self._was_leading:
            self._was_leading = leading
            if leading:
                self._on_elected(now)
            else:
                self._on_deposed()
        if not leading:
            return self.settings.tick
        due = sorted(
            (s for s in self._sources.values() if s.next_due <= now), key=lambda s: s.next_due
        )
        attempts: dict[str, tuple[SourceResult, float]] = {}
        for src in due:
            if self._stop.is_set() or not self._leading():
                return 0.0
            attempts[src.name] = (self._refresh(src), self.clock())
            self._loop_beat = self.monotonic()
        if attempts and self.records is not None:
            try:
                apply_mod.note_refreshes(self.records, self.loader.last)
            except EgressguardError as err:
                log.warning(
                    "cannot write the refresh record: %s", err, extra={"event": "record.error"}
                )
        now = self.clock()
        if (self._dirty or now >= self._next_sync) and not self._stop.is_set():
            self._build_and_apply()
            self._loop_beat = self.monotonic()
        return max(0.0, self._next_wakeup() - self.clock())

    def _next_wakeup(self) -> float:
        with self._state_lock:
            return min([self._next_sync, *(s.next_due for s in self._sources.values())])

    def _build_and_apply(self) -> None:
        self._dirty = False
        self.loader.reuse = True
        started = self.monotonic()
        now = self.clock()
        resync = now + self._jittered(self.settings.resync)
        try:
            outcome = apply_mod.apply(
                self.config,
                loader=self.loader,
                client=self.client,
                records=self.records,
                identity=self.identity,
                clock=self.clock,
            )
        except BuildRefused as refused:
            self._count_build("refused", refused=True)
            self._build_seconds = self.monotonic() - started
            self._next_sync = resync
            checks = [c.message for c in refused.result.violations]
            log.error(
                "build refused, nothing applied: %s",
                "; ".join(checks),
                extra={"event": "build.refused", "violations": checks},
            )
            return
        except SourceError as err:
            self._count_build("source-failed")
            self._next_sync = resync
            log.error(
                "build failed, nothing applied: %s",
                err.message,
                extra={"event": "build.failed", "error": err.message},
            )
            return
        except (KubeError, SafetyError) as err:
            # reading the cluster or planning failed (a foreign object under our name, ...)
            self._apply_error(err, resync)
            return
        except EgressguardError as err:
            self._count_build("error")
            self._next_sync = resync
            log.error(
                "build failed: %s",
                err.message,
                extra={"event": "build.failed", "error": err.message},
            )
            return
        self._count_build("ok")
        with self._state_lock:
            self._build_seconds = outcome.timings.get("build")
            self._apply_seconds = outcome.timings.get("plan", 0.0) + outcome.timings.get(
                "execute", 0.0
            )
            for change in outcome.result.done:
                self._writes[str(change.action)] += 1
        error = outcome.result.error
        if error is not None:
            self._apply_error(error, resync)
            return
        with self._state_lock:
            self._apply_failures = 0
            self._applied_once = True
            self._last_apply = self.clock()
            self._set = {
                f: (
                    outcome.build.addresses[f].cidr_count,
                    sum(1 for s in outcome.build.shards if s.family == f),
                )
                for f in _FAMILIES
            }
        self._next_sync = resync
        summary = outcome.plan.summary()
        log.info(
            "applied: %s",
            ", ".join(f"{n} {a}" for a, n in summary.items() if n),
            extra={
                "event": "apply.done",
                "changes": summary,
                "written": [f"{c.ref.kind}/{c.ref.name}" for c in outcome.result.done],
                "ipv4_cidrs": outcome.build.addresses.v4.cidr_count,
                "ipv6_cidrs": outcome.build.addresses.v6.cidr_count,
                "warnings": list(outcome.build.warnings),
            },
        )

    def _count_build(self, result: str, *, refused: bool = False) -> None:
        with self._state_lock:
            self._builds[result] += 1
            self._build_refused = refused

    def _apply_error(self, err: EgressguardError, resync: float) -> None:
        if isinstance(err, NotLeader):
            log.info("%s", err.message, extra={"event": "apply.skipped"})
            self._next_sync = resync
            return
        with self._state_lock:
            self._apply_errors += 1
            self._apply_failures += 1
            failures = self._apply_failures
        self._next_sync = self.clock() + self._backoff(failures, self.settings.resync)
        log.error(
            "apply failed: %s",
            err.message,
            extra={
                "event": "apply.failed",
                "error": err.message,
                "hint": err.hint,
                "retry_in": round(self._next_sync - self.clock(), 1),
            },
        )

    # ---------------------------------------------------------------------------- threads

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self.cycle()
            except Exception as exc:  # a bug must not end the loop silently
                log.error(
                    "controller loop error: %s",
                    exc,
                    extra={"event": "loop.error", "traceback": traceback.format_exc()},
                )
                wait = self.settings.tick
            self._stop.wait(min(max(wait, 0.0), self.settings.tick))

    def _campaign(self) -> None:
        elector = self.elector
        if elector is None:
            return
        # Released under the write lock: no write of ours is in flight, none can start.
        released = elector.run(
            self._stop, on_round=self._beat_election, release_lock=self._write_lock
        )
        log.info(
            "lease released" if released else "lease not released",
            extra={"event": "leader.released", "released": released},
        )

    def _beat_election(self) -> None:
        self._election_beat = self.monotonic()

    def start(self) -> None:
        """Start the election and loop threads (daemon threads; ``stop`` ends them)."""
        if self._threads:
            raise RuntimeError("the controller is already running")
        self._loop_beat = self.monotonic()
        if self.elector is not None:
            self._election_beat = self.monotonic()
            self._threads.append(
                threading.Thread(target=self._campaign, name="egressguard-election", daemon=True)
            )
        self._threads.append(
            threading.Thread(target=self._loop, name="egressguard-loop", daemon=True)
        )
        for thread in self._threads:
            thread.start()

    def stop(self, *, grace: float = 10.0) -> bool:
        """Stop both threads: no new write starts, the Lease is released once no write is in
        flight. Waits up to ``grace`` seconds for each thread; True when both ended (a loop
        blocked in a download may outlive the wait: it is a daemon thread and writes nothing
        more)."""
        self._stop.set()
        ended = True
        for thread in self._threads:
            thread.join(timeout=grace)
            ended = ended and not thread.is_alive()
        return ended

    def run(self, stop: threading.Event, *, grace: float = 10.0) -> bool:
        """Start, wait for ``stop`` (in steps of ``tick``, so signal handlers run), stop."""
        self.start()
        while not stop.wait(self.settings.tick):
            if not any(t.is_alive() for t in self._threads):
                break
        return self.stop(grace=grace)

    # ---------------------------------------------------------------------------- probes

    def health(self) -> tuple[bool, str]:
        """Alive: the loop (and the election) made progress within ``stall_timeout``."""
        now = self.monotonic()
        limit = self.settings.stall_timeout
        ended = self._threads and not all(t.is_alive() for t in self._threads)
        if ended and not self._stop.is_set():
            return False, "a controller thread has ended"
        if self._loop_beat is not None and now - self._loop_beat > limit:
            return False, f"the loop has made no progress for {now - self._loop_beat:.0f} s"
        if (
            self.elector is not None
            and self._election_beat is not None
            and now - self._election_beat > limit
        ):
            return False, f"the election has made no progress for {now - self._election_beat:.0f} s"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        """Ready: leading and applied at least once, or following a known leader."""
        if self._leading():
            if self._applied_once:
                return True, f"leader {self.identity}; applied"
            return False, f"leader {self.identity}; no successful build and apply yet"
        leader = self.elector.leader if self.elector is not None else None
        if leader == self.identity:
            return False, f"the lease of {leader} was not renewed in time; not leading"
        if leader:
            return True, f"follower of {leader}"
        return False, "no leader known yet"

    # ---------------------------------------------------------------------------- metrics

    def metric_families(self) -> list[MetricFamily]:
        """Every series (``docs/controller.md`` documents them)."""
        with self._state_lock:
            return self._families()

    def render_metrics(self) -> str:
        return render_text(self.metric_families())

    def _families(self) -> list[MetricFamily]:
        sources = sorted(self._sources.values(), key=lambda s: s.name)

        def per_source(value: Callable[[_Source], float | None]) -> tuple[Sample, ...]:
            out = []
            for s in sources:
                v = value(s)
                if v is not None:
                    out.append(Sample((("source", s.name),), float(v)))
            return tuple(out)

        def gauge(name: str, help_text: str, samples: tuple[Sample, ...]) -> MetricFamily:
            return MetricFamily(f"egressguard_{name}", "gauge", help_text, samples)

        def counter(name: str, help_text: str, samples: tuple[Sample, ...]) -> MetricFamily:
            return MetricFamily(f"egressguard_{name}", "counter", help_text, samples)

        def one(value: float | None) -> tuple[Sample, ...]:
            return () if value is None else (Sample((), float(value)),)

        leading = self._leading()
        return [
            gauge(
                "controller_info",
                "The blocklist this controller keeps, its identity and version.",
                (
                    Sample(
                        (
                            ("blocklist", self.config.name),
                            ("identity", self.identity),
                            ("version", self.version),
                        ),
                        1.0,
                    ),
                ),
            ),
            gauge(
                "leader",
                "1 when this replica holds the Lease and does the work, else 0.",
                (Sample((("identity", self.identity),), 1.0 if leading else 0.0),),
            ),
            gauge(
                "ready",
                "1 when /readyz answers 200.",
                one(1.0 if self.ready()[0] else 0.0),
            ),
            gauge(
                "source_up",
                "1 when the last refresh of a source succeeded (fresh or not modified), 0 when "
                "it failed (last good copy or nothing used).",
                per_source(
                    lambda s: None if s.status is None else (1.0 if s.status.refreshed else 0.0)
                ),
            ),
            gauge(
                "source_last_success_timestamp_seconds",
                "When a source was last refreshed successfully (Unix time).",
                per_source(lambda s: s.last_success),
            ),
            gauge(
                "source_last_attempt_timestamp_seconds",
                "When a source was last refreshed, successfully or not (Unix time).",
                per_source(lambda s: s.last_attempt),
            ),
            gauge(
                "source_next_refresh_timestamp_seconds",
                "When a source is due next (Unix time; only while leading).",
                per_source(lambda s: s.next_due if leading and s.last_attempt else None),
            ),
            gauge(
                "source_consecutive_failures",
                "Failed refreshes of a source in a row.",
                per_source(lambda s: s.failures if s.last_attempt else None),
            ),
            counter(
                "source_refreshes_total",
                "Refreshes of a source by outcome.",
                tuple(
                    Sample((("source", s.name), ("status", status)), float(n))
                    for s in sources
                    for status, n in sorted(s.refreshes.items())
                ),
            ),
            gauge(
                "source_cidrs",
                "CIDRs a source provided at its last refresh (from its last good copy after "
                "a failure), before subtraction.",
                tuple(
                    Sample((("source", s.name), ("family", f"ipv{f}")), float(n))
                    for s in sources
                    for f, n in sorted(s.cidrs.items())
                ),
            ),
            gauge(
                "set_entries",
                "CIDRs in the applied set, per address family.",
                tuple(
                    Sample((("family", f"ipv{f}"),), float(n))
                    for f, (n, _) in sorted(self._set.items())
                ),
            ),
            gauge(
                "set_shards",
                "GlobalNetworkSet shards of the applied set, per address family.",
                tuple(
                    Sample((("family", f"ipv{f}"),), float(n))
                    for f, (_, n) in sorted(self._set.items())
                ),
            ),
            counter(
                "builds_total",
                "Builds by result: ok, refused (a safety check failed; nothing applied), "
                "source-failed (a source without any copy), error.",
                tuple(Sample((("result", r),), float(n)) for r, n in self._builds.items()),
            ),
            gauge(
                "build_refused",
                "1 while the last build was refused by a safety check.",
                one(1.0 if self._build_refused else 0.0),
            ),
            gauge(
                "build_duration_seconds",
                "Duration of the last build (sources from memory, render, safety checks).",
                one(self._build_seconds),
            ),
            gauge(
                "apply_duration_seconds",
                "Duration of the last plan and apply against the cluster.",
                one(self._apply_seconds),
            ),
            counter(
                "apply_errors_total",
                "Applies that failed (the API server refused or was unreachable).",
                one(float(self._apply_errors)),
            ),
            counter(
                "apply_writes_total",
                "Objects written, by action (unchanged objects cost no write).",
                tuple(Sample((("action", a),), float(n)) for a, n in self._writes.items()),
            ),
            gauge(
                "last_apply_success_timestamp_seconds",
                "When the last apply succeeded (Unix time).",
                one(self._last_apply),
            ),
        ]


# ---------------------------------------------------------------------------- JSON logs

_STANDARD_ATTRS: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per log record: ``time`` (RFC 3339, UTC), ``level``, ``logger``,
    ``msg``, then every ``extra=`` field (``event``, ``source``, ...) and ``exc`` for
    exceptions. Values that are not JSON become strings, so a line always parses."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_") and key not in doc:
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, separators=(",", ":"))

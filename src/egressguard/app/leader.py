"""Leader election on a ``coordination.k8s.io/v1`` Lease, so several controller replicas are safe.

The algorithm is the one of client-go's ``tools/leaderelection`` (``tryAcquireOrRenew``):

* Every candidate reads the Lease each ``retry_period``. A candidate that finds no Lease creates
  it with itself as holder. A holder renews by writing a new ``renewTime``.
* A lease is *valid* while less than ``leaseDurationSeconds`` has passed **on the reader's own
  monotonic clock** since the reader last saw the record change. Comparing the holder's
  ``renewTime`` with the local wall clock would make the election depend on clock skew between
  nodes; a fresh candidate therefore waits one full lease duration before taking over.
* Taking over writes the candidate as holder, ``acquireTime = renewTime = now`` and
  ``leaseTransitions + 1``. Every write is a replace carrying the resourceVersion that was read:
  when two candidates race, the API server accepts one and answers 409 to the other, which backs
  off and reads again.
* A leader that cannot renew for ``renew_deadline`` stops leading (``on_stopped``) even though no
  one else may have taken over yet: it can no longer prove it holds the lease. Because
  ``renew_deadline < lease_duration``, it stops before any other candidate may start.
* Release (on shutdown) writes an empty holder and a 1-second duration, so the next candidate
  takes over at its next try instead of after a whole lease duration.

The decision logic (:class:`Observation`, :func:`decide`, :func:`released`) is pure; the
:class:`LeaderElector` does the I/O through a :class:`LeaseClient` and reads time from an
injected :class:`Clock`, so tests drive it with a manual clock and no sleeping.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from egressguard.adapters.kube import LeaseClient, LeaseRecord
from egressguard.errors import KubeError

__all__ = [
    "Clock",
    "Decision",
    "ElectionConfig",
    "LeaderElector",
    "Observation",
    "Step",
    "SystemClock",
    "decide",
    "released",
]

log = logging.getLogger(__name__)


class Clock(Protocol):
    """Time for the election: wall time goes into the Lease, monotonic time decides expiry."""

    def now(self) -> datetime:
        """Timezone-aware wall-clock time (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...


class SystemClock:
    """The real clocks."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass(frozen=True)
class ElectionConfig:
    """Where the Lease is, who we are, and the timing (seconds).

    Defaults are client-go's: 15 s lease, 10 s renew deadline, 2 s retry period. The Lease
    stores whole seconds, so ``lease_duration`` is rounded up when written.
    """

    namespace: str
    name: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.identity:
            raise ValueError("the election identity must not be empty")
        if not self.lease_duration > self.renew_deadline > 0:
            raise ValueError("need lease_duration > renew_deadline > 0")
        if not 0 < self.retry_period < self.renew_deadline:
            raise ValueError("need 0 < retry_period < renew_deadline")

    @property
    def duration_seconds(self) -> int:
        return max(1, math.ceil(self.lease_duration))


class Step(enum.Enum):
    """What a candidate should do after reading the Lease."""

    CREATE = "create"
    UPDATE = "update"
    WAIT = "wait"


@dataclass(frozen=True)
class Decision:
    step: Step
    record: LeaseRecord | None = None  # what to write for CREATE / UPDATE
    reason: str = ""


@dataclass
class Observation:
    """The last Lease record a candidate saw, and when (monotonic) it last changed."""

    record: LeaseRecord | None = None
    changed_at: float | None = None

    def observe(self, record: LeaseRecord, monotonic: float) -> None:
        """Note a record read from (or written to) the server."""
        if record != self.record:
            self.record = record
            self.changed_at = monotonic

    def valid(self, monotonic: float) -> bool:
        """Whether the observed lease is held and has not expired by our clock."""
        if self.record is None or not self.record.holder or self.changed_at is None:
            return False
        return self.changed_at + self.record.duration_seconds > monotonic


def decide(
    observation: Observation,
    live: LeaseRecord | None,
    *,
    identity: str,
    duration_seconds: int,
    now: datetime,
    monotonic: float,
) -> Decision:
    """The next step of ``identity`` given the Lease just read (``live``; None if missing).

    ``observation`` must already include ``live`` (call :meth:`Observation.observe` first).
    """
    if live is None:
        fresh = LeaseRecord(identity, duration_seconds, now, now, 0)
        return Decision(Step.CREATE, fresh, "no lease yet")
    if live.holder == identity:
        renewed = replace(live, duration_seconds=duration_seconds, renew_time=now)
        return Decision(Step.UPDATE, renewed, "renew")
    if observation.valid(monotonic):
        return Decision(Step.WAIT, None, f"held by {live.holder}")
    taken = LeaseRecord(
        holder=identity,
        duration_seconds=duration_seconds,
        acquire_time=now,
        renew_time=now,
        transitions=live.transitions + 1,
        resource_version=live.resource_version,
    )
    reason = f"lease of {live.holder} expired" if live.holder else "lease released"
    return Decision(Step.UPDATE, taken, reason)


def released(live: LeaseRecord, now: datetime) -> LeaseRecord:
    """The record a leader writes to give the lease up."""
    return replace(live, holder="", duration_seconds=1, acquire_time=now, renew_time=now)


class LeaderElector:
    """One candidate. Call :meth:`try_acquire_or_renew` every ``retry_period``, or :meth:`run`.

    ``on_started`` / ``on_stopped`` are called (from the calling thread) when this candidate
    starts or stops leading. :attr:`is_leader` is what work should check before each write.
    """

    def __init__(
        self,
        client: LeaseClient,
        config: ElectionConfig,
        *,
        clock: Clock | None = None,
        on_started: Callable[[], None] | None = None,
        on_stopped: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.observation = Observation()
        self.last_error: KubeError | None = None
        self._on_started = on_started
        self._on_stopped = on_stopped
        self._leading = False
        self._renewed_at: float | None = None
        self._rng = random.Random()  # noqa: S311 - jitter, not cryptography

    @property
    def leader(self) -> str | None:
        """The holder we last saw (None when unknown or released)."""
        record = self.observation.record
        return record.holder if record is not None and record.holder else None

    @property
    def is_leader(self) -> bool:
        """Whether we hold the lease and renewed it within ``renew_deadline``."""
        return self._leading and self._within_deadline(self.clock.monotonic())

    def _within_deadline(self, monotonic: float) -> bool:
        return (
            self._renewed_at is not None
            and monotonic - self._renewed_at < self.config.renew_deadline
        )

    def _set_leading(self, leading: bool) -> None:
        if leading and not self._leading:
            self._leading = True
            log.info("%s became the leader of lease %s", self.config.identity, self.config.name)
            if self._on_started is not None:
                self._on_started()
        elif not leading and self._leading:
            self._leading = False
            log.info("%s stopped leading lease %s", self.config.identity, self.config.name)
            if self._on_stopped is not None:
                self._on_stopped()

    def _failed(self, err: KubeError, monotonic: float) -> bool:
        self.last_error = err
        if err.status == 409:
            log.info("lease %s: another candidate wrote first; backing off", self.config.name)
        else:
            log.warning("lease %s: %s", self.config.name, err.message)
        still = self._leading and self._within_deadline(monotonic)
        self._set_leading(still)
        return still

    def try_acquire_or_renew(self) -> bool:
        """One round: read the Lease, then create, take over, renew, or wait.

        Returns whether we lead afterwards. API failures never raise here: they are kept in
        :attr:`last_error`, and a leader keeps leading until its renew deadline passes.
        """
        cfg = self.config
        now = self.clock.now()
        monotonic = self.clock.monotonic()
        try:
            live = self.client.get_lease(cfg.namespace, cfg.name)
        except KubeError as err:
            return self._failed(err, monotonic)
        if live is not None:
            self.observation.observe(live, monotonic)
        decision = decide(
            self.observation,
            live,
            identity=cfg.identity,
            duration_seconds=cfg.duration_seconds,
            now=now,
            monotonic=monotonic,
        )
        if decision.step is Step.WAIT or decision.record is None:
            self._set_leading(False)
            return False
        try:
            if decision.step is Step.CREATE:
                written = self.client.create_lease(cfg.namespace, cfg.name, decision.record)
            else:
                written = self.client.update_lease(cfg.namespace, cfg.name, decision.record)
        except KubeError as err:
            return self._failed(err, monotonic)
        if decision.reason != "renew":
            log.info("%s acquired lease %s (%s)", cfg.identity, cfg.name, decision.reason)
        self.observation.observe(written, monotonic)
        self.last_error = None
        self._renewed_at = monotonic
        self._set_leading(True)
        return True

    def release(self) -> bool:
        """Give the lease up if we hold it; True when we no longer hold it."""
        cfg = self.config
        record = self.observation.record
        if record is None or record.holder != cfg.identity:
            self._set_leading(False)
            return True
        try:
            written = self.client.update_lease(
                cfg.namespace, cfg.name, released(record, self.clock.now())
            )
        except KubeError as err:
            self.last_error = err
            log.warning("lease %s: release failed: %s", cfg.name, err.message)
            self._set_leading(False)
            return False
        self.observation.observe(written, self.clock.monotonic())
        self._set_leading(False)
        return True

    def run(
        self,
        stop: threading.Event,
        *,
        on_round: Callable[[], None] | None = None,
        release_lock: AbstractContextManager[object] | None = None,
    ) -> bool:
        """Campaign and renew until ``stop`` is set, then release the lease; returns whether
        this candidate no longer holds it (:meth:`release`).

        Waits ``retry_period`` between rounds, stretched by up to 20 % while not leading so
        candidates started together do not collide forever (client-go's JitterFactor 1.2).
        A round that raises (API failures do not; a bug might) is logged and counts as not
        leading: the candidate keeps campaigning. ``on_round`` is called after every round
        (the controller's liveness beat). The release is made holding ``release_lock`` when
        given: the controller holds it around every write, so none of its writes is in flight
        once another candidate may take over.
        """
        try:
            while not stop.is_set():
                try:
                    leading = self.try_acquire_or_renew()
                except Exception as exc:  # keep campaigning; health and last_error show it
                    log.error("leader election error: %s", exc, extra={"event": "leader.error"})
                    leading = False
                if on_round is not None:
                    on_round()
                wait = self.config.retry_period
                if not leading:
                    wait *= self._rng.uniform(1.0, 1.2)
                stop.wait(wait)
        finally:
            with release_lock if release_lock is not None else contextlib.nullcontext():
                released = self.release()
        return released

"""Leader election: the pure decision table, then electors over the in-memory FakeCluster.

A manual clock drives time, so nothing sleeps and no duration is asserted.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from egressguard.adapters.kube import LeaseRecord
from egressguard.adapters.kube_fake import FakeCluster
from egressguard.app.leader import (
    Decision,
    ElectionConfig,
    LeaderElector,
    Observation,
    Step,
    decide,
    released,
)
from egressguard.errors import KubeError

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class ManualClock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.t)

    def monotonic(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def config(identity: str, **kw: float) -> ElectionConfig:
    return ElectionConfig("ns", "lock", identity, **kw)


# --------------------------------------------------------------------------- pure logic


def seen(record: LeaseRecord | None, at: float) -> Observation:
    obs = Observation()
    if record is not None:
        obs.observe(record, at)
    return obs


HELD = LeaseRecord("other", 15, T0, T0, 3, "7")


@pytest.mark.parametrize(
    ("live", "observed_at", "now", "expected"),
    [
        (None, 0.0, 0.0, Decision(Step.CREATE, LeaseRecord("me", 15, T0, T0, 0), "no lease yet")),
        (HELD, 0.0, 14.9, Decision(Step.WAIT, None, "held by other")),
        (
            HELD,
            0.0,
            15.0,
            Decision(Step.UPDATE, LeaseRecord("me", 15, T0, T0, 4, "7"), "lease of other expired"),
        ),
        (
            LeaseRecord("", 1, T0, T0, 3, "8"),
            0.0,
            0.0,
            Decision(Step.UPDATE, LeaseRecord("me", 15, T0, T0, 4, "8"), "lease released"),
        ),
        (
            LeaseRecord("me", 15, T0 - timedelta(hours=1), T0 - timedelta(seconds=5), 2, "9"),
            0.0,
            0.0,
            Decision(
                Step.UPDATE, LeaseRecord("me", 15, T0 - timedelta(hours=1), T0, 2, "9"), "renew"
            ),
        ),
    ],
    ids=["missing", "held", "expired", "released", "ours"],
)
def test_decide(
    live: LeaseRecord | None, observed_at: float, now: float, expected: Decision
) -> None:
    got = decide(
        seen(live, observed_at), live, identity="me", duration_seconds=15, now=T0, monotonic=now
    )
    assert got == expected


def test_expiry_counts_from_when_the_record_last_changed_on_our_clock() -> None:
    """A holder's renewTime may come from a skewed clock; only changes we observe count."""
    obs = Observation()
    stale = LeaseRecord("other", 15, T0 - timedelta(days=1), T0 - timedelta(days=1), 0, "1")
    obs.observe(stale, 100.0)
    assert obs.valid(114.0)  # first sight: we must wait a full duration, however old it looks
    obs.observe(stale, 110.0)  # the same record again: no change, the timer keeps running
    assert not obs.valid(115.0)
    obs.observe(LeaseRecord("other", 15, T0, T0, 0, "2"), 115.0)  # renewed
    assert obs.valid(129.0)


def test_released_gives_the_lease_up_keeping_the_transition_count() -> None:
    record = released(LeaseRecord("me", 15, T0, T0, 5, "3"), T0 + timedelta(seconds=9))
    assert record == LeaseRecord(
        "", 1, T0 + timedelta(seconds=9), T0 + timedelta(seconds=9), 5, "3"
    )


@pytest.mark.parametrize(
    "kw",
    [
        {"lease_duration": 10, "renew_deadline": 10},
        {"renew_deadline": 0, "retry_period": 0.1},
        {"retry_period": 10},
        {"retry_period": 0},
    ],
)
def test_config_rejects_timings_that_cannot_work(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="need"):
        config("me", **kw)


def test_config_rejects_an_empty_identity() -> None:
    with pytest.raises(ValueError, match="identity"):
        config("")


def test_duration_is_written_in_whole_seconds_rounded_up() -> None:
    assert config("me", lease_duration=2.5, renew_deadline=2, retry_period=1).duration_seconds == 3
    assert (
        config("me", lease_duration=0.5, renew_deadline=0.4, retry_period=0.1).duration_seconds == 1
    )


# --------------------------------------------------------------------------- electors


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


def test_first_candidate_creates_and_renews_without_new_transitions(
    cluster: FakeCluster, clock: ManualClock
) -> None:
    events: list[str] = []
    elector = LeaderElector(
        cluster,
        config("a"),
        clock=clock,
        on_started=lambda: events.append("start"),
        on_stopped=lambda: events.append("stop"),
    )
    assert elector.try_acquire_or_renew()
    clock.advance(2)
    assert elector.try_acquire_or_renew()
    lease = cluster.get_lease("ns", "lock")
    assert lease is not None
    assert (lease.holder, lease.transitions, lease.acquire_time, lease.renew_time) == (
        "a",
        0,
        T0,
        T0 + timedelta(seconds=2),
    )
    assert events == ["start"]
    assert elector.is_leader
    assert elector.leader == "a"


def test_a_follower_waits_then_takes_over_an_abandoned_lease(
    cluster: FakeCluster, clock: ManualClock
) -> None:
    a = LeaderElector(cluster, config("a"), clock=clock)
    b = LeaderElector(cluster, config("b"), clock=clock)
    assert a.try_acquire_or_renew()
    for _ in range(7):  # a keeps renewing: b never gets it
        clock.advance(2)
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
    clock.advance(14.9)  # a is gone
    assert not b.try_acquire_or_renew()
    clock.advance(0.1)
    assert b.try_acquire_or_renew()
    lease = cluster.get_lease("ns", "lock")
    assert lease is not None
    assert (lease.holder, lease.transitions) == ("b", 1)


def test_a_leader_that_cannot_renew_stops_at_its_deadline(
    cluster: FakeCluster, clock: ManualClock
) -> None:
    stopped: list[bool] = []
    a = LeaderElector(cluster, config("a"), clock=clock, on_stopped=lambda: stopped.append(True))
    assert a.try_acquire_or_renew()
    cluster.fail("get", KubeError("API down", status=503, transient=True), times=100)
    clock.advance(9.9)
    assert a.try_acquire_or_renew()  # still within the renew deadline: keep working
    assert a.is_leader
    assert stopped == []
    clock.advance(0.1)
    assert not a.is_leader  # reading the property alone already tells work to stop
    assert not a.try_acquire_or_renew()
    assert stopped == [True]
    assert a.last_error is not None
    assert a.last_error.status == 503


def test_release_hands_over_at_once(cluster: FakeCluster, clock: ManualClock) -> None:
    a = LeaderElector(cluster, config("a"), clock=clock)
    b = LeaderElector(cluster, config("b"), clock=clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    assert a.release()
    assert not a.is_leader
    assert b.try_acquire_or_renew()
    assert b.release()
    assert b.release()  # releasing what we do not hold is a no-op
    lease = cluster.get_lease("ns", "lock")
    assert lease is not None
    assert (lease.holder, lease.duration_seconds, lease.transitions) == ("", 1, 1)


def test_a_lost_race_is_a_409_and_no_leadership(cluster: FakeCluster, clock: ManualClock) -> None:
    a = LeaderElector(cluster, config("a"), clock=clock)
    b = LeaderElector(cluster, config("b"), clock=clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    clock.advance(20)
    original = cluster.get_lease

    def read_then_a_renews(namespace: str, name: str) -> LeaseRecord | None:
        record = original(namespace, name)
        a.try_acquire_or_renew()
        return record

    b.client = type("Racy", (), {})()  # a LeaseClient whose reads race with a's renewal
    b.client.get_lease = read_then_a_renews  # type: ignore[attr-defined]
    b.client.update_lease = cluster.update_lease  # type: ignore[attr-defined]
    b.client.create_lease = cluster.create_lease  # type: ignore[attr-defined]
    assert not b.try_acquire_or_renew()
    assert b.last_error is not None
    assert b.last_error.status == 409
    lease = cluster.get_lease("ns", "lock")
    assert lease is not None
    assert lease.holder == "a"


def test_two_candidates_creating_at_once_leave_one_leader(
    cluster: FakeCluster, clock: ManualClock
) -> None:
    a = LeaderElector(cluster, config("a"), clock=clock)
    b = LeaderElector(cluster, config("b"), clock=clock)
    original = cluster.get_lease

    def nobody_yet(namespace: str, name: str) -> LeaseRecord | None:
        record = original(namespace, name)
        assert a.try_acquire_or_renew()  # a creates the lease after b saw none
        return record

    b.client = type("Racy", (), {})()
    b.client.get_lease = nobody_yet  # type: ignore[attr-defined]
    b.client.create_lease = cluster.create_lease  # type: ignore[attr-defined]
    assert not b.try_acquire_or_renew()
    assert b.last_error is not None
    assert b.last_error.status == 409
    assert a.is_leader


def test_a_failed_release_is_reported_and_leadership_ends(
    cluster: FakeCluster, clock: ManualClock
) -> None:
    a = LeaderElector(cluster, config("a"), clock=clock)
    assert a.try_acquire_or_renew()
    cluster.fail("update", KubeError("forbidden", status=403))
    assert not a.release()
    assert not a.is_leader
    assert a.last_error is not None
    assert a.last_error.status == 403


class FirstReadBreaks(FakeCluster):
    """The first read of the Lease raises what no API failure raises (a bug), and the
    release records whether ``lock`` was held while it was written."""

    def __init__(self, lock: threading.Lock) -> None:
        super().__init__()
        self.lock = lock
        self.reads = 0
        self.released_under_lock: list[bool] = []

    def get_lease(self, namespace: str, name: str) -> LeaseRecord | None:
        self.reads += 1
        if self.reads == 1:
            raise RuntimeError("a bug in the round")
        return super().get_lease(namespace, name)

    def update_lease(self, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
        if not record.holder:
            self.released_under_lock.append(self.lock.locked())
        return super().update_lease(namespace, name, record)


def test_run_survives_a_failing_round_beats_every_round_and_releases_under_the_lock(
    clock: ManualClock,
) -> None:
    lock = threading.Lock()
    cluster = FirstReadBreaks(lock)
    elector = LeaderElector(
        cluster,
        config("a", lease_duration=3, renew_deadline=2, retry_period=0.001),
        clock=clock,
    )
    stop = threading.Event()
    rounds: list[bool] = []

    def on_round() -> None:  # the rounds stop themselves: no thread, bounded
        rounds.append(elector.is_leader)
        if len(rounds) == 3:
            stop.set()

    assert elector.run(stop, on_round=on_round, release_lock=lock) is True

    assert rounds == [False, True, True]  # the broken round counted as not leading
    assert cluster.released_under_lock == [True]
    lease = cluster.get_lease("ns", "lock")
    assert lease is not None
    assert lease.holder == ""
    assert not lock.locked()

"""Leader election between several electors on one Lease of an API server over real HTTP.

Time is a manual clock: no test sleeps, and none asserts a duration.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from egressguard.adapters.kube import KubeClient
from egressguard.app.leader import ElectionConfig, LeaderElector

sys.path.insert(0, str(Path(__file__).parent))
from kubeapi import KubeApi, serve

pytestmark = pytest.mark.integration

NS = "egressguard-system"
LEASE = "egressguard-controller"


class ManualClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=self.t)

    def monotonic(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def api(tmp_path: Path) -> Iterator[KubeApi]:
    with serve(tmp_path) as running:
        yield running


@pytest.fixture
def clients(api: KubeApi) -> Iterator[list[KubeClient]]:
    made = [api.client(), api.client(), api.client()]
    try:
        yield made
    finally:
        for client in made:
            client.close()


def electors(clients: list[KubeClient], clock: ManualClock) -> list[LeaderElector]:
    return [
        LeaderElector(
            client,
            ElectionConfig(
                NS, LEASE, f"replica-{i}", lease_duration=15, renew_deadline=10, retry_period=2
            ),
            clock=clock,
        )
        for i, client in enumerate(clients)
    ]


def lease(api: KubeApi) -> dict[str, object]:
    (obj,) = api.objects("leases", group="coordination.k8s.io").values()
    spec: dict[str, object] = obj["spec"]
    return spec


def test_of_three_electors_exactly_one_leads(api: KubeApi, clients: list[KubeClient]) -> None:
    clock = ManualClock()
    group = electors(clients, clock)

    for _ in range(3):  # three rounds of everyone trying
        results = [e.try_acquire_or_renew() for e in group]
        assert results == [True, False, False]
        clock.advance(2)

    assert [e.is_leader for e in group] == [True, False, False]
    assert {e.leader for e in group} == {"replica-0"}
    spec = lease(api)
    assert spec["holderIdentity"] == "replica-0"
    assert spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] == 0
    # Whole seconds still carry six fraction digits, or a real server answers 400.
    assert spec["renewTime"] == "2026-01-01T00:16:44.000000Z"  # t = 1004 s: the last renewal
    assert spec["acquireTime"] == "2026-01-01T00:16:40.000000Z"  # t = 1000 s: kept on renewal


def test_handover_when_the_leader_releases(api: KubeApi, clients: list[KubeClient]) -> None:
    clock = ManualClock()
    first, second, _ = electors(clients, clock)
    assert first.try_acquire_or_renew()
    assert not second.try_acquire_or_renew()

    assert first.release()

    assert not first.is_leader
    assert lease(api)["holderIdentity"] == ""
    assert second.try_acquire_or_renew()  # at once: a released lease need not expire
    assert lease(api)["holderIdentity"] == "replica-1"
    assert lease(api)["leaseTransitions"] == 1


def test_handover_when_the_leader_stops_renewing(api: KubeApi, clients: list[KubeClient]) -> None:
    clock = ManualClock()
    first, second, third = electors(clients, clock)
    assert first.try_acquire_or_renew()
    assert not second.try_acquire_or_renew()
    assert not third.try_acquire_or_renew()

    # The leader crashes. Until a full lease duration has passed on the followers' clocks,
    # nobody may take over.
    clock.advance(14)
    assert not second.try_acquire_or_renew()
    clock.advance(2)
    assert second.try_acquire_or_renew()
    assert not third.try_acquire_or_renew()  # it sees the new holder's fresh record

    assert lease(api)["holderIdentity"] == "replica-1"
    assert lease(api)["leaseTransitions"] == 1
    # The old leader, back from a long pause, finds it lost and does not write.
    writes = len(api.writes())
    assert not first.try_acquire_or_renew()
    assert len(api.writes()) == writes
    assert first.leader == "replica-1"


def test_the_loser_of_a_race_gets_409_and_backs_off(
    api: KubeApi, clients: list[KubeClient]
) -> None:
    clock = ManualClock()
    first, second, _ = electors(clients, clock)
    assert first.try_acquire_or_renew()
    assert not second.try_acquire_or_renew()
    clock.advance(16)  # the lease looks expired to the follower ...

    # ... and the leader renews between the follower's read and its write.
    real_get = second.client.get_lease

    def get_then_leader_renews(namespace: str, name: str):  # type: ignore[no-untyped-def]
        seen = real_get(namespace, name)
        assert first.try_acquire_or_renew()
        return seen

    second.client.get_lease = get_then_leader_renews  # type: ignore[method-assign]
    assert not second.try_acquire_or_renew()

    assert second.last_error is not None
    assert second.last_error.status == 409
    assert lease(api)["holderIdentity"] == "replica-0"
    conflicts = [w for w in api.writes() if w.method == "PUT"]
    assert len(conflicts) >= 2  # the leader's renewal and the follower's rejected takeover


def test_run_loop_leads_and_releases_on_stop(api: KubeApi, clients: list[KubeClient]) -> None:
    """The threaded loop with real (tiny) periods; bounded waits, no timing asserted."""
    started, stopped = threading.Event(), threading.Event()
    elector = LeaderElector(
        clients[0],
        ElectionConfig(NS, LEASE, "looper", lease_duration=2, renew_deadline=1, retry_period=0.02),
        on_started=started.set,
        on_stopped=stopped.set,
    )
    stop = threading.Event()
    thread = threading.Thread(target=elector.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert started.wait(timeout=10)
        assert lease(api)["holderIdentity"] == "looper"
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert stopped.is_set()
    assert lease(api)["holderIdentity"] == ""

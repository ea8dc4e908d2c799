"""Only the leader works: followers neither refresh nor write; writes stop with leadership.

Two controllers share one FakeCluster (and so one Lease); electors run on the manual clock.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from controller_rig import MakeRig, ManualClock, Rig, blocklist, write_list

from egressguard.adapters.kube import ObjectRef
from egressguard.adapters.kube_fake import FakeCluster
from egressguard.app.controller import ControllerSettings, NotLeader
from egressguard.app.leader import ElectionConfig, LeaderElector

SOURCES = "- {name: feed, file: feed.txt, format: plain, interval: 1h}"


def elector_for(identity: str, clock: ManualClock):  # type: ignore[no-untyped-def]
    def make(cluster: FakeCluster) -> LeaderElector:
        config = ElectionConfig(
            "egressguard-system",
            "egressguard-controller",
            identity,
            lease_duration=15,
            renew_deadline=10,
            retry_period=2,
        )
        return LeaderElector(cluster, config, clock=clock)

    return make


@pytest.fixture
def pair(tmp_path: Path, make_rig: MakeRig, clock: ManualClock) -> tuple[Rig, Rig]:
    write_list(tmp_path / "feed.txt", ["192.0.2.0/24", "198.51.100.0/24"])
    cluster = FakeCluster()
    a = make_rig(blocklist(SOURCES), cluster=cluster, elector=elector_for("a", clock), identity="a")
    b = make_rig(blocklist(SOURCES), cluster=cluster, elector=elector_for("b", clock), identity="b")
    return a, b


def test_a_follower_neither_refreshes_nor_writes(pair: tuple[Rig, Rig]) -> None:
    a, b = pair
    assert a.controller.elector is not None
    assert b.controller.elector is not None
    assert a.controller.elector.try_acquire_or_renew() is True
    assert b.controller.elector.try_acquire_or_renew() is False

    a.controller.cycle()
    mark = len(b.cluster.requests)
    b.controller.cycle()

    assert b.loader.last == {}  # no source touched: followers do not hit providers
    assert b.cluster.requests[mark:] == []  # and do not even read the cluster
    assert set(a.nets()) == {"demo-v4"}
    assert a.controller.ready() == (True, "leader a; applied")
    assert b.controller.ready() == (True, "follower of a")
    metrics = b.controller.render_metrics()
    assert 'egressguard_leader{identity="b"} 0' in metrics
    assert "egressguard_source_up{" not in metrics  # a follower has no source series


def test_no_leader_known_is_not_ready(make_rig: MakeRig, clock: ManualClock) -> None:
    rig = make_rig(blocklist(SOURCES), elector=elector_for("a", clock), identity="a")
    rig.controller.cycle()
    assert rig.controller.ready() == (False, "no leader known yet")


def test_handover_the_new_leader_refreshes_everything_and_writes(
    tmp_path: Path, pair: tuple[Rig, Rig], clock: ManualClock
) -> None:
    a, b = pair
    assert a.controller.elector is not None
    assert b.controller.elector is not None
    a.controller.elector.try_acquire_or_renew()
    b.controller.elector.try_acquire_or_renew()
    a.controller.cycle()
    write_list(tmp_path / "feed.txt", ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"])

    assert a.controller.elector.release() is True
    clock.advance(2)
    assert b.controller.elector.try_acquire_or_renew() is True  # released: no waiting
    mark = len(b.cluster.requests)
    b.controller.cycle()
    assert a.controller.elector.try_acquire_or_renew() is False  # a now sees b's lease
    a.controller.cycle()  # the old leader notices and does nothing more

    assert b.loader.last["feed"][1] == clock.t  # refreshed at once on election
    assert b.nets()["demo-v4"] == ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"]
    assert sorted(b.written(mark)) == ["demo-v4", "egressguard.demo"]
    assert a.controller.ready() == (True, "follower of b")


def test_a_leader_that_cannot_renew_stops_writing(
    pair: tuple[Rig, Rig], clock: ManualClock
) -> None:
    a, _ = pair
    assert a.controller.elector is not None
    a.controller.elector.try_acquire_or_renew()
    a.controller.cycle()
    clock.advance(11)  # past the renew deadline without renewing

    with pytest.raises(NotLeader):
        a.controller.client.delete(ObjectRef("projectcalico.org/v3", "GlobalNetworkSet", "x"))
    mark = len(a.cluster.requests)
    clock.advance(3600)
    a.controller.cycle()
    assert a.written(mark) == []
    assert a.loader.last["feed"][1] < clock.t  # not refreshed either


class SlowPlanCluster(FakeCluster):
    """Listing takes longer than the renew deadline: leadership lapses during the plan."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__()
        self.clock = clock

    def list_owned(self, api_version, kind, *, labels):  # type: ignore[no-untyped-def]
        self.clock.advance(4)
        return super().list_owned(api_version, kind, labels=labels)


def test_writes_refused_after_leadership_lapsed_mid_apply_are_not_errors(
    tmp_path: Path, make_rig: MakeRig, clock: ManualClock
) -> None:
    write_list(tmp_path / "feed.txt", ["192.0.2.0/24"])
    cluster = SlowPlanCluster(clock)
    rig = make_rig(
        blocklist(SOURCES), cluster=cluster, elector=elector_for("a", clock), identity="a"
    )
    assert rig.controller.elector is not None
    assert rig.controller.elector.try_acquire_or_renew() is True

    rig.controller.cycle()

    applied = [w for w in cluster.writes if w.verb in ("apply", "delete")]
    assert applied == []  # the guard refused the first write: not leading any more
    assert "egressguard_apply_errors_total 0" in rig.controller.render_metrics()
    assert rig.controller.ready() == (False, "the lease of a was not renewed in time; not leading")


def test_health_follows_the_loop_and_readiness_the_first_apply(
    tmp_path: Path, make_rig: MakeRig, clock: ManualClock
) -> None:
    write_list(tmp_path / "feed.txt", ["192.0.2.0/24"])
    settings = ControllerSettings(stall_timeout=300)
    rig = make_rig(blocklist(SOURCES), settings=settings)
    assert rig.controller.health() == (True, "ok")
    assert rig.controller.ready()[0] is False
    rig.controller.cycle()
    assert rig.controller.health() == (True, "ok")
    assert rig.controller.ready()[0] is True

    clock.advance(301)  # the loop made no progress for longer than stall_timeout
    ok, why = rig.controller.health()
    assert ok is False
    assert "no progress for 301 s" in why
    rig.controller.cycle()
    assert rig.controller.health() == (True, "ok")

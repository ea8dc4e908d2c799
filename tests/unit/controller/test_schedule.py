"""The controller's loop, one ``cycle()`` at a time: schedule, backoff, rebuilds, safety.

Sources are local files; the cluster is the in-package FakeCluster; the clock is manual.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from controller_rig import MakeRig, Rig, blocklist, write_list

from egressguard.app.controller import ControllerSettings
from egressguard.app.sources import Status
from egressguard.errors import KubeError

HOUR = 3600.0

TWO_SOURCES = """
- {name: hourly, file: hourly.txt, format: plain, interval: 1h}
- {name: daily, file: daily.txt, format: plain, interval: 1d}
"""


@pytest.fixture
def rig(tmp_path: Path, make_rig: MakeRig) -> Rig:
    write_list(tmp_path / "hourly.txt", ["192.0.2.0/25", "198.51.100.0/24"])
    write_list(tmp_path / "daily.txt", ["203.0.113.0/24", "2001:db8:1::/48"])
    return make_rig(blocklist(TWO_SOURCES))


def attempted(rig: Rig, name: str) -> float | None:
    entry = rig.loader.last.get(name)
    return entry[1] if entry else None


def test_first_cycle_refreshes_every_source_and_applies(rig: Rig) -> None:
    wait = rig.controller.cycle()

    assert attempted(rig, "hourly") == rig.clock.t
    assert attempted(rig, "daily") == rig.clock.t
    assert rig.nets() == {
        "demo-v4": ["192.0.2.0/25", "198.51.100.0/24", "203.0.113.0/24"],
        "demo-v6": ["2001:db8:1::/48"],
    }
    assert rig.controller.ready() == (True, "leader replica-a; applied")
    # the next thing due is the resync (10 min, +jitter), before the hourly source
    assert 600 <= wait <= 660


def test_each_source_is_refreshed_on_its_own_interval_with_jitter(rig: Rig) -> None:
    rig.controller.cycle()
    start = rig.clock.t
    hourly_due = rig.controller._sources["hourly"].next_due
    daily_due = rig.controller._sources["daily"].next_due
    assert start + HOUR <= hourly_due <= start + 1.1 * HOUR
    assert start + 24 * HOUR <= daily_due <= start + 1.1 * 24 * HOUR

    rig.clock.t = hourly_due - 1
    rig.controller.cycle()
    assert attempted(rig, "hourly") == start  # not due yet

    rig.clock.t = hourly_due
    rig.controller.cycle()
    assert attempted(rig, "hourly") == hourly_due
    assert attempted(rig, "daily") == start  # the daily one was left alone


def test_jitter_spreads_replicas_but_stays_within_ten_percent(
    tmp_path: Path, make_rig: MakeRig
) -> None:
    write_list(tmp_path / "hourly.txt", ["192.0.2.0/24"])
    write_list(tmp_path / "daily.txt", ["198.51.100.0/24"])
    dues = set()
    for seed in range(8):
        rig = make_rig(blocklist(TWO_SOURCES), seed=seed)
        rig.controller.cycle()
        due = rig.controller._sources["hourly"].next_due - rig.clock.t
        assert HOUR <= due <= 1.1 * HOUR
        dues.add(round(due, 3))
    assert len(dues) > 1


def test_a_failed_source_backs_off_exponentially_capped_by_its_interval(
    tmp_path: Path, rig: Rig
) -> None:
    rig.controller.cycle()
    (tmp_path / "hourly.txt").unlink()  # the feed is gone: the last good copy is used
    delays = []
    for _ in range(8):
        rig.clock.t = rig.controller._sources["hourly"].next_due
        rig.controller.cycle()
        src = rig.controller._sources["hourly"]
        assert src.status is Status.FALLBACK
        delays.append(src.next_due - rig.clock.t)
    bases = [30, 60, 120, 240, 480, 960, 1920, 3600]  # capped at the 1 h interval
    for delay, base in zip(delays, bases, strict=True):
        assert base <= delay <= base * 1.1
    assert rig.controller._sources["hourly"].failures == 8

    write_list(tmp_path / "hourly.txt", ["192.0.2.0/25", "198.51.100.0/24"])
    rig.clock.t = rig.controller._sources["hourly"].next_due
    rig.controller.cycle()
    src = rig.controller._sources["hourly"]
    assert src.status is Status.NOT_MODIFIED  # the same bytes as the last good copy
    assert src.failures == 0
    assert HOUR <= src.next_due - rig.clock.t <= 1.1 * HOUR


def test_a_failed_source_never_shrinks_what_is_applied(tmp_path: Path, rig: Rig) -> None:
    rig.controller.cycle()
    before = rig.nets()
    mark = len(rig.cluster.requests)
    (tmp_path / "hourly.txt").write_text("<html>maintenance</html>\n")  # garbage, not a list

    rig.clock.advance(2 * HOUR)
    rig.controller.cycle()

    assert rig.controller._sources["hourly"].status is Status.FALLBACK
    assert rig.nets() == before
    assert rig.written(mark) == []
    metrics = rig.controller.render_metrics()
    assert 'egressguard_source_up{source="hourly"} 0' in metrics
    assert 'egressguard_source_up{source="daily"} 1' in metrics


def test_unchanged_sources_cost_no_cluster_request_until_the_resync(
    tmp_path: Path, make_rig: MakeRig
) -> None:
    write_list(tmp_path / "hourly.txt", ["192.0.2.0/24"])
    write_list(tmp_path / "daily.txt", ["198.51.100.0/24"])
    settings = ControllerSettings(resync=4 * HOUR, jitter=0.1)
    rig = make_rig(blocklist(TWO_SOURCES), settings=settings)
    rig.controller.cycle()
    mark = len(rig.cluster.requests)

    rig.clock.t = rig.controller._sources["hourly"].next_due
    assert rig.clock.t < rig.controller._next_sync
    rig.controller.cycle()
    assert rig.controller._sources["hourly"].status is Status.NOT_MODIFIED
    assert rig.cluster.requests[mark:] == []  # no rebuild, so not even a list

    rig.clock.t = rig.controller._next_sync
    rig.controller.cycle()
    verbs = {r.verb for r in rig.cluster.requests[mark:]}
    assert "list" in verbs  # the resync rebuilt and compared ...
    assert rig.written(mark) == []  # ... and found nothing to write


def test_a_changed_source_rewrites_only_the_shards_that_changed(
    tmp_path: Path, make_rig: MakeRig
) -> None:
    write_list(tmp_path / "hourly.txt", ["192.0.2.0/25", "198.51.100.0/24", "203.0.113.0/24"])
    write_list(tmp_path / "daily.txt", ["2001:db8:1::/48"])
    rig = make_rig(blocklist(TWO_SOURCES, max_entries=1))
    rig.controller.cycle()
    shards = rig.nets()
    assert len(shards) == 4  # one entry per shard: three IPv4, one IPv6
    mark = len(rig.cluster.requests)

    write_list(tmp_path / "hourly.txt", ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"])
    rig.clock.t = rig.controller._sources["hourly"].next_due
    rig.controller.cycle()

    changed = [name for name, nets in rig.nets().items() if shards.get(name) != nets]
    assert len(changed) == 1
    # the changed shard, and the policy whose annotation names the new source version
    assert sorted(rig.written(mark)) == sorted([changed[0], "egressguard.demo"])


def test_a_source_that_never_loaded_fails_the_build_and_nothing_is_applied(
    tmp_path: Path, make_rig: MakeRig
) -> None:
    write_list(tmp_path / "hourly.txt", ["192.0.2.0/24"])
    rig = make_rig(blocklist(TWO_SOURCES))  # daily.txt does not exist

    rig.controller.cycle()

    assert rig.cluster.writes == []
    assert rig.controller.ready()[0] is False
    metrics = rig.controller.render_metrics()
    assert 'egressguard_builds_total{result="source-failed"} 1' in metrics
    assert 'egressguard_source_refreshes_total{source="daily",status="failed-no-copy"} 1' in metrics


def test_a_refused_build_is_reported_and_the_controller_keeps_going(
    tmp_path: Path, make_rig: MakeRig
) -> None:
    many = [f"198.51.100.{i}/32" for i in range(0, 200, 2)]
    write_list(tmp_path / "feed.txt", many)
    rig = make_rig(blocklist("- {name: feed, file: feed.txt, format: plain, interval: 1h}"))
    rig.controller.cycle()
    before = rig.nets()
    mark = len(rig.cluster.requests)

    write_list(tmp_path / "feed.txt", many[:10])  # valid, but 90 % smaller
    rig.clock.advance(2 * HOUR)
    rig.controller.cycle()

    assert rig.written(mark) == []
    assert rig.nets() == before
    metrics = rig.controller.render_metrics()
    assert 'egressguard_builds_total{result="refused"} 1' in metrics
    assert "egressguard_build_refused 1" in metrics

    write_list(tmp_path / "feed.txt", [*many, "198.51.100.201/32"])  # the feed recovers
    rig.clock.advance(2 * HOUR)
    rig.controller.cycle()
    assert "egressguard_build_refused 0" in rig.controller.render_metrics()
    assert "198.51.100.201/32" in rig.nets()["demo-v4"]


def test_an_apply_error_is_counted_and_retried_with_backoff(rig: Rig) -> None:
    rig.cluster.fail(
        "apply", KubeError("injected 503", status=503, transient=True), target="demo-v4"
    )
    rig.controller.cycle()
    metrics = rig.controller.render_metrics()
    assert "egressguard_apply_errors_total 1" in metrics
    assert rig.controller.ready()[0] is False
    retry = rig.controller._next_sync - rig.clock.t
    assert 30 <= retry <= 33  # the first backoff step, not the 10 min resync

    rig.clock.advance(retry)
    rig.controller.cycle()
    assert rig.controller.ready()[0] is True
    assert "demo-v4" in rig.nets()
    assert "egressguard_apply_errors_total 1" in rig.controller.render_metrics()


def test_cycle_stops_between_sources_when_asked(rig: Rig) -> None:
    rig.controller._stop.set()
    assert rig.controller.cycle() == 0.0
    assert rig.loader.last == {}
    assert rig.cluster.writes == []


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="jitter"):
        ControllerSettings(jitter=2)
    with pytest.raises(ValueError, match="backoff"):
        ControllerSettings(backoff_initial=10, backoff_max=5)
    with pytest.raises(ValueError, match="positive"):
        ControllerSettings(resync=0)

"""The apply use case on the in-package FakeCluster: the shrink guard against the cluster,
dry runs, records, diffs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from controller_rig import ManualClock, blocklist, write_list

from egressguard.adapters.http import FakeFetcher
from egressguard.adapters.kube_fake import FakeCluster
from egressguard.adapters.records import MemoryRecordStore
from egressguard.adapters.state import MemoryStateStore
from egressguard.app import apply as apply_mod
from egressguard.app.build import BuildRefused
from egressguard.app.config import BlocklistConfig, parse_config
from egressguard.app.sources import SourceResult, Status
from egressguard.cidr.sets import AddressSet
from egressguard.errors import KubeError, SourceError

SOURCES = """
- {name: big, file: big.txt, format: plain}
- {name: small, file: small.txt, format: plain}
"""
BIG = [f"198.51.100.{i}/32" for i in range(0, 240, 2)]  # 120 addresses
SMALL = ["192.0.2.0/28", "192.0.2.64/28", "192.0.2.128/28", "192.0.2.192/28"]


def config(tmp_path: Path, **kw: int) -> BlocklistConfig:
    text = blocklist(SOURCES, **kw)
    return parse_config(text, str(tmp_path / "blocklist.yaml"), base_dir=str(tmp_path))


def loader(clock: ManualClock) -> apply_mod.TrackingLoader:
    return apply_mod.TrackingLoader(fetcher=FakeFetcher({}), state=MemoryStateStore(), clock=clock)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[BlocklistConfig, FakeCluster, MemoryRecordStore]:
    write_list(tmp_path / "big.txt", BIG)
    write_list(tmp_path / "small.txt", SMALL)
    return config(tmp_path), FakeCluster(), MemoryRecordStore()


def run(
    cfg: BlocklistConfig,
    cluster: FakeCluster,
    records: MemoryRecordStore | None,
    **kw: object,
) -> apply_mod.ApplyOutcome:
    return apply_mod.apply(
        cfg,
        loader=loader(ManualClock()),
        client=cluster,
        records=records,
        **kw,  # type: ignore[arg-type]
    )


def test_first_apply_writes_everything_and_records_it(
    setup: tuple[BlocklistConfig, FakeCluster, MemoryRecordStore],
) -> None:
    cfg, cluster, records = setup
    outcome = run(cfg, cluster, records, identity="me@host")

    assert outcome.ok
    assert outcome.plan.summary() == {"create": 3, "update": 0, "unchanged": 0, "prune": 0}
    record = records.read(apply_mod.APPLIED_RECORD)
    assert record is not None
    assert record["identity"] == "me@host"
    assert record["objects"] == apply_mod.read_live(cluster, "demo").hashes()
    assert [s["name"] for s in record["lock"]["sources"]] == ["big", "small"]
    refresh = records.read(apply_mod.REFRESH_RECORD)
    assert refresh is not None
    assert refresh["sources"]["big"]["status"] == "fresh"
    assert outcome.lines() == [
        "Tier/egressguard created",
        "GlobalNetworkSet/demo-v4 created",
        "GlobalNetworkPolicy/egressguard.demo created",
    ]


def test_an_apply_lists_the_blocklist_once_and_plans_against_that_list(
    setup: tuple[BlocklistConfig, FakeCluster, MemoryRecordStore],
) -> None:
    cfg, cluster, records = setup
    run(cfg, cluster, records)
    cluster.requests.clear()

    outcome = run(cfg, cluster, records)

    assert outcome.plan.is_noop
    # one list per kind: the shrink guard's read is the one the plan compares with
    assert [r.target for r in cluster.requests if r.verb == "list"] == list(
        apply_mod.sync.APPLY_ORDER
    )
    assert [r for r in cluster.requests if r.verb == "get"] == []


def test_client_dry_run_sends_no_write_and_records_no_apply(
    setup: tuple[BlocklistConfig, FakeCluster, MemoryRecordStore],
) -> None:
    cfg, cluster, records = setup
    outcome = run(cfg, cluster, records, dry_run="client")

    assert cluster.writes == []
    assert all(r.verb in ("discovery", "list", "get") for r in cluster.requests)
    assert outcome.plan.count(apply_mod.sync.Action.CREATE) == 3
    assert records.read(apply_mod.APPLIED_RECORD) is None
    assert outcome.lines()[0] == "Tier/egressguard created (dry run: client)"


def test_server_dry_run_sends_dry_run_writes_that_persist_nothing(
    setup: tuple[BlocklistConfig, FakeCluster, MemoryRecordStore],
) -> None:
    cfg, cluster, records = setup
    run(cfg, cluster, records, dry_run="server")

    applies = [r for r in cluster.requests if r.verb == "apply"]
    assert len(applies) == 3
    assert all(r.dry_run for r in applies)
    assert cluster.objects() == []
    assert records.read(apply_mod.APPLIED_RECORD) is None


def test_the_set_shrink_guard_compares_with_the_cluster_not_a_local_record(
    tmp_path: Path, setup: tuple[BlocklistConfig, FakeCluster, MemoryRecordStore]
) -> None:
    cfg, cluster, _ = setup
    run(cfg, cluster, MemoryRecordStore())
    write_list(tmp_path / "big.txt", BIG[:10])

    records = MemoryRecordStore()  # another machine: no applied record
    with pytest.raises(BuildRefused) as refused:
        run(config(tmp_path), cluster, records)

    messages = [c.message for c in refused.value.result.violations]
    assert any(m.startswith("the IPv4 set would shrink by") for m in messages)
    built = records.read(apply_mod.BUILD_RECORD)
    assert built is not None
    assert built["result"] == "refused"
    assert built["messages"] == messages
    assert len(cluster.objects("GlobalNetworkSet")[0]["spec"]["nets"]) == 124

    forced = run(config(tmp_path), cluster, records, force=True)
    assert forced.ok
    built = records.read(apply_mod.BUILD_RECORD)
    assert built is not None
    assert built["result"] == "forced"
    assert len(cluster.objects("GlobalNetworkSet")[0]["spec"]["nets"]) == 14


def test_the_per_source_guard_uses_the_record_while_it_matches_the_cluster(
    tmp_path: Path, setup: tuple[BlocklistConfig, FakeCluster, MemoryRecordStore]
) -> None:
    cfg, cluster, records = setup
    run(cfg, cluster, records)
    write_list(tmp_path / "small.txt", SMALL[:1])  # the set shrinks by 3 of 124: fine;
    # the source itself by 75 %: refused, but only a lock knows per-source counts

    with pytest.raises(BuildRefused) as refused:
        run(config(tmp_path), cluster, records)
    (violation,) = refused.value.result.violations
    assert violation.subject == "source 'small' IPv4"

    assert run(config(tmp_path), cluster, None).ok  # no record: only the set-level check


def test_a_record_that_does_not_match_the_cluster_is_ignored(
    tmp_path: Path, setup: tuple[BlocklistConfig, FakeCluster, MemoryRecordStore]
) -> None:
    cfg, cluster, records = setup
    run(cfg, cluster, records)
    record = records.read(apply_mod.APPLIED_RECORD)
    assert record is not None
    live = apply_mod.read_live(cluster, "demo")
    assert apply_mod.previous_build(live, record) is not None
    prev = apply_mod.previous_build(live, record)
    assert prev is not None
    assert prev.lock is not None

    record["objects"]["GlobalNetworkSet/demo-v4"] = "sha256:someone-else"
    prev = apply_mod.previous_build(live, record)
    assert prev is not None
    assert prev.lock is None
    assert prev.family_counts()[4].entries == 124  # counted from the live shard


def test_nothing_live_means_no_previous_build() -> None:
    live = apply_mod.read_live(FakeCluster(), "demo")
    assert apply_mod.previous_build(live, None) is None


def test_a_failed_write_is_in_the_outcome_and_nothing_is_recorded(
    setup: tuple[BlocklistConfig, FakeCluster, MemoryRecordStore],
) -> None:
    cfg, cluster, records = setup
    cluster.fail("apply", KubeError("injected 422", status=422), target="demo-v4")

    outcome = run(cfg, cluster, records)

    assert not outcome.ok
    assert outcome.lines() == [
        "Tier/egressguard created",
        "GlobalNetworkSet/demo-v4 FAILED: injected 422",
        "GlobalNetworkPolicy/egressguard.demo skipped (an earlier write failed)",
    ]
    assert records.read(apply_mod.APPLIED_RECORD) is None


def test_the_diff_shows_changed_entries_and_ignores_server_fields(
    tmp_path: Path, setup: tuple[BlocklistConfig, FakeCluster, MemoryRecordStore]
) -> None:
    cfg, cluster, records = setup
    first = run(cfg, cluster, records)
    created = apply_mod.diff_text(first)
    assert created.count("--- /dev/null") == 3
    assert "+  - 192.0.2.0/28\n" in created

    live = cluster.objects("GlobalNetworkSet")[0]
    live["spec"]["serverDefault"] = True  # something a server adds: not egressguard's field
    cluster.put(live)
    write_list(tmp_path / "small.txt", [*SMALL[:3], "192.0.2.200/29"])
    outcome = run(config(tmp_path), cluster, records)
    diff = apply_mod.diff_text(outcome)

    assert "--- live/GlobalNetworkSet/demo-v4\n+++ desired/GlobalNetworkSet/demo-v4\n" in diff
    assert "-  - 192.0.2.192/28\n" in diff
    assert "+  - 192.0.2.200/29\n" in diff
    assert "serverDefault" not in diff
    assert "Tier/egressguard" not in diff  # unchanged objects are not shown
    changed = [ln for ln in diff.splitlines() if ln.startswith(("+ ", "- ", "+  ", "-  "))]
    assert all("192.0.2." in ln or "egressguard.io/" in ln for ln in changed)


def test_refreshes_are_counted_once_per_attempt() -> None:
    records = MemoryRecordStore()
    ok = SourceResult("feed", "url", Status.FRESH, AddressSet.of("192.0.2.0/24"))
    bad = SourceResult("feed", "url", Status.FALLBACK, ok.addresses, reason="HTTP 503")

    apply_mod.note_refreshes(records, {"feed": (ok, 100.0)})
    apply_mod.note_refreshes(records, {"feed": (bad, 200.0)})
    apply_mod.note_refreshes(records, {"feed": (bad, 200.0)})  # the same attempt again
    doc = apply_mod.note_refreshes(records, {"feed": (bad, 300.0)})

    entry = doc["sources"]["feed"]
    assert entry["failures"] == 2
    assert entry["succeeded_at"] == 100.0
    assert entry["attempted_at"] == 300.0
    assert entry["status"] == "fallback-to-last-good"
    assert entry["reason"] == "HTTP 503"
    # the fallback carries the same data, so the same version as the good load
    assert entry["version"] == apply_mod.source_version(ok)
    assert entry["version"]["digest"].startswith("sha256:")


def test_tracking_loader_reuses_results_only_when_asked(tmp_path: Path) -> None:
    write_list(tmp_path / "big.txt", BIG)
    write_list(tmp_path / "small.txt", SMALL)
    cfg = config(tmp_path)
    clock = ManualClock()
    tracker = loader(clock)
    spec = cfg.sources[0].spec

    first = tracker.load(spec)
    clock.advance(5)
    write_list(tmp_path / "big.txt", BIG[:3])
    tracker.reuse = True
    assert tracker.load(spec) is first
    assert tracker.last["big"][1] == clock.t - 5
    tracker.reuse = False
    assert tracker.load(spec).addresses.v4.cidr_count == 3
    assert tracker.last["big"][1] == clock.t


def test_an_optional_source_that_failed_without_a_copy_does_not_drop_applied_data(
    tmp_path: Path,
) -> None:
    write_list(tmp_path / "big.txt", BIG)
    write_list(tmp_path / "small.txt", SMALL)
    text = blocklist(
        """
- {name: big, file: big.txt, format: plain}
- {name: small, file: small.txt, format: plain, optional: true}
"""
    )
    cfg = parse_config(text, "b.yaml", base_dir=str(tmp_path))
    cluster = FakeCluster()
    run(cfg, cluster, None)
    (tmp_path / "small.txt").unlink()  # and a new machine: no last good copy anywhere here
    mark = len(cluster.requests)

    with pytest.raises(SourceError, match="small failed with no copy") as failed:
        run(cfg, cluster, MemoryRecordStore())
    assert failed.value.hint is not None
    assert "--force" in failed.value.hint
    assert [r for r in cluster.requests[mark:] if r.is_write] == []
    assert "192.0.2.0/28" in cluster.objects("GlobalNetworkSet")[0]["spec"]["nets"]

    assert run(cfg, cluster, None, force=True).ok
    assert "192.0.2.0/28" not in cluster.objects("GlobalNetworkSet")[0]["spec"]["nets"]

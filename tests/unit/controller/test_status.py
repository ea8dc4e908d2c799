"""The status report: applied objects, source versions, last refresh and attempt."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from controller_rig import T0, ManualClock, blocklist, write_list

from egressguard.adapters.http import FakeFetcher
from egressguard.adapters.kube_fake import FakeCluster
from egressguard.adapters.records import MemoryRecordStore
from egressguard.adapters.state import MemoryStateStore
from egressguard.app import apply as apply_mod
from egressguard.app import status as status_mod
from egressguard.app.config import parse_config

SOURCES = """
- {name: feed, file: feed.txt, format: plain}
- {name: pinned, static: ["2001:db8:7::/48"]}
"""


def test_status_reports_objects_versions_and_refreshes(tmp_path: Path) -> None:
    write_list(tmp_path / "feed.txt", ["192.0.2.0/24", "198.51.100.0/24"])
    cfg = parse_config(blocklist(SOURCES), "b.yaml", base_dir=str(tmp_path))
    cluster, state, records, clock = (
        FakeCluster(),
        MemoryStateStore(),
        MemoryRecordStore(),
        ManualClock(),
    )
    loader = apply_mod.TrackingLoader(fetcher=FakeFetcher({}), state=state, clock=clock)
    apply_mod.apply(cfg, loader=loader, client=cluster, records=records, identity="me", clock=clock)

    clock.advance(600)
    (tmp_path / "feed.txt").unlink()  # the next refresh fails; the copy stays
    apply_mod.note_refreshes(records, {"feed": (loader.refresh(cfg.sources[0].spec), clock.t)})
    report = status_mod.collect(
        cluster, "demo", config=cfg, state=state, records=records, now=clock.t + 60
    )

    assert [(o.kind, o.name) for o in report.objects] == [
        ("Tier", "egressguard"),
        ("GlobalNetworkSet", "demo-v4"),
        ("GlobalNetworkSet", "demo-v6"),
        ("GlobalNetworkPolicy", "egressguard.demo"),
    ]
    assert report.entries(4) == 2
    assert report.entries(6) == 1
    feed, pinned = report.sources
    assert feed.applied is not None
    assert feed.applied["digest"] == apply_mod.source_version(loader.last["feed"][0])["digest"]
    assert feed.current is True  # the fallback is the applied copy
    assert feed.last_refresh == T0  # the provider last confirmed the data at the first load
    assert feed.attempt is not None
    assert feed.attempt["status"] == "fallback-to-last-good"
    assert feed.attempt["failures"] == 1
    assert pinned.kind == "static"
    assert pinned.parts == ()

    text = status_mod.format_text(report)
    assert text.startswith(
        "blocklist demo: 4 objects applied (projectcalico.org/v3); IPv4 2 CIDRs, IPv6 1 CIDRs\n"
    )
    assert "last apply from this machine: " in text
    assert " by me\n" in text
    feed_row = next(line for line in text.splitlines() if line.startswith("feed "))
    assert "yes" in feed_row
    assert "fallback-to-last-good" in feed_row
    assert "1 failed in a row" in feed_row
    assert "(11m ago)" in feed_row  # last refresh: the first load
    assert "feed.txt" in text  # the reason of the failure
    doc = report.to_json()
    assert doc["sources"][0]["lastRefresh"] == T0
    assert doc["lastApply"]["identity"] == "me"


def test_status_without_a_config_reads_only_the_cluster(tmp_path: Path) -> None:
    write_list(tmp_path / "feed.txt", ["192.0.2.0/24"])
    cfg = parse_config(blocklist(SOURCES), "b.yaml", base_dir=str(tmp_path))
    cluster = FakeCluster()
    loader = apply_mod.TrackingLoader(fetcher=FakeFetcher({}), state=MemoryStateStore())
    apply_mod.apply(cfg, loader=loader, client=cluster)

    report = status_mod.collect(cluster, "demo")

    assert [s.name for s in report.sources] == ["feed", "pinned"]
    assert all(s.current is None and s.attempt is None for s in report.sources)
    assert report.applied_record is None


def test_status_of_a_blocklist_with_nothing_applied() -> None:
    report = status_mod.collect(FakeCluster(), "demo")
    assert not report.applied
    assert status_mod.format_text(report) == (
        "blocklist demo: nothing applied (projectcalico.org/v3)\n"
    )


def test_status_notes_when_the_cluster_moved_on_from_this_machines_apply(tmp_path: Path) -> None:
    write_list(tmp_path / "feed.txt", ["192.0.2.0/24"])
    cfg = parse_config(blocklist(SOURCES), "b.yaml", base_dir=str(tmp_path))
    cluster, records = FakeCluster(), MemoryRecordStore()
    loader = apply_mod.TrackingLoader(fetcher=FakeFetcher({}), state=MemoryStateStore())
    apply_mod.apply(cfg, loader=loader, client=cluster, records=records)
    write_list(tmp_path / "feed.txt", ["192.0.2.0/25"])
    other = apply_mod.TrackingLoader(fetcher=FakeFetcher({}), state=MemoryStateStore())
    apply_mod.apply(cfg, loader=other, client=cluster)  # someone else, no shared records

    report = status_mod.collect(cluster, "demo", config=cfg, records=records)

    assert any("the cluster changed since this machine's last apply" in n for n in report.notes)
    feed = report.sources[0]
    assert feed.current is False  # this machine last loaded another version

"""logs.enrich: destinations (sets, feeds, countries), pods by address and time, de-duplication,
the Enricher, and the metrics labels they fill."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from egressguard.calico.load import load_paths, load_text
from egressguard.logs import enrich
from egressguard.logs.enrich import (
    Deduper,
    Destination,
    Enricher,
    NetworkIndex,
    PodIndex,
    Tag,
    network_set_tags,
    parse_time,
    pod_addresses,
    provenance_tags,
)
from egressguard.logs.events import Event
from egressguard.logs.metrics import Metrics
from egressguard.logs.parse import parse_line
from egressguard.render.ownership import BLOCKLIST_LABEL

ROOT = Path(__file__).resolve().parents[3]
BLOG = ROOT / "examples" / "blog"
REF = (
    "2025-01-19T16:13:46.406155+00:00 aks-default-30331449-vmss000000 kernel: [ 6236.551431] "
    "calico-packet: IN=azv7c40892f581 OUT=eth0 MAC=ee:ee:ee:ee:ee:ee:f2:f8:09:3d:97:03:08:00 "
    "SRC=10.244.0.179 DST=217.160.0.92 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=27413 DF PROTO=TCP "
    "SPT=53940 DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0"
)
T0 = parse_time("2025-01-19T16:13:46.406155+00:00")


def event(**changes: Any) -> Event:
    base = parse_line(REF)
    assert isinstance(base, Event)
    return base._replace(**changes)


# --------------------------------------------------------------------------------------------
# destinations


def test_blog_example_names_its_network_set() -> None:
    index = NetworkIndex(network_set_tags(load_paths([BLOG]).network_sets))
    assert index.lookup("217.160.0.92") == Destination("egress-traffic-blocking", (), None)
    assert index.lookup("217.160.0.93") == Destination(None, (), None)
    enriched = Enricher(index).enrich(event())
    assert enriched.set == "egress-traffic-blocking"
    assert enriched.feeds == ()


def test_the_label_is_the_renderers() -> None:
    assert enrich.BLOCKLIST_LABEL == BLOCKLIST_LABEL


MANIFESTS = f"""
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {{name: egress-blocklist-v4-0-1, labels: {{"{BLOCKLIST_LABEL}": egress-blocklist}}}}
spec: {{nets: [1.0.0.0/8]}}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {{name: egress-blocklist-v4-128-1, labels: {{"{BLOCKLIST_LABEL}": egress-blocklist}}}}
spec: {{nets: [198.51.100.0/24, "2001:db8::/32"]}}
---
apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata: {{name: partners, namespace: prod}}
spec: {{nets: [198.51.100.128/25]}}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {{name: aaa-manual}}
spec: {{nets: [198.51.100.7]}}
"""


def test_shards_are_one_set_and_overlapping_sets_are_all_named() -> None:
    loaded = load_text(MANIFESTS, "sets.yaml")
    assert not loaded.problems
    tags = network_set_tags(loaded.network_sets)
    assert [t.name for t, _ in tags] == ["aaa-manual", "egress-blocklist", "prod/partners"]
    index = NetworkIndex(tags)
    assert index.lookup("1.2.3.4").set == "egress-blocklist"
    assert index.lookup("2001:db8::1").set == "egress-blocklist"
    assert index.lookup("198.51.100.200").set == "egress-blocklist,prod/partners"
    assert index.lookup("198.51.100.7").set == "aaa-manual,egress-blocklist"
    assert index.lookup("not an address") == Destination(None, (), None)


def lock_with(*sources: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "BuildLock", "blocklist": "b", "sources": list(sources)}


def test_provenance_gives_feeds_and_the_most_specific_country() -> None:
    lock = lock_with(
        {"name": "feodo", "provenance": {"cidrs": {"ipv4": "192.0.2.7/32", "ipv6": ""}}},
        {
            "name": "geo",
            "provenance": {
                "countries": {
                    "DE": {"ipv4": "192.0.2.0/24", "ipv6": "2001:db8::/32"},
                    "NL": {"ipv4": "192.0.2.128/25", "ipv6": ""},
                }
            },
        },
        {"name": "old", "ipv4": {"entries": 1}},  # a lock without provenance: no tags
    )
    tags = provenance_tags(lock)
    assert [t for t, _ in tags] == [
        Tag("feed", "feodo"),
        Tag("country", "DE", "geo"),
        Tag("country", "NL", "geo"),
    ]
    index = NetworkIndex(tags)
    assert index.lookup("192.0.2.7") == Destination(None, ("feodo", "geo"), "DE")
    assert index.lookup("192.0.2.200") == Destination(None, ("geo",), "NL")
    assert index.lookup("2001:db8::5") == Destination(None, ("geo",), "DE")
    assert provenance_tags({"sources": [{"name": "x", "provenance": "junk"}, 7]}) == []


def test_answers_are_cached_and_the_cache_is_bounded() -> None:
    index = NetworkIndex([(Tag("set", "s"), ["192.0.2.0/24"])], cache_size=2)
    for i in range(10):
        assert index.lookup(f"192.0.2.{i}").set == "s"
    assert len(index._cache) <= 2


# --------------------------------------------------------------------------------------------
# pods


def pod(
    name: str,
    ip: str | None,
    *,
    created: str = "2025-01-19T16:00:00Z",
    namespace: str = "prod",
    **status: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}",
                     "creationTimestamp": created},
        "spec": {"nodeName": "node-1"},
        "status": {"phase": "Running", **({"podIP": ip} if ip else {}), **status},
    }  # fmt: skip


def test_a_reused_address_is_attributed_by_time() -> None:
    index = PodIndex(slack=1.0)
    t_old = parse_time("2025-01-19T16:00:00Z")
    assert t_old is not None
    index.observe(pod("old", "10.244.0.179"), now=t_old)
    index.observe(pod("old", "10.244.0.179"), now=t_old + 600, deleted=True)
    index.observe(pod("new", "10.244.0.179", created="2025-01-19T16:20:00Z"), now=t_old + 1200)
    found = index.lookup("10.244.0.179", t_old + 300)
    assert found is not None
    assert (found.namespace, found.name) == ("prod", "old")
    found = index.lookup("10.244.0.179", t_old + 1500)
    assert found is not None
    assert found.name == "new"
    assert index.lookup("10.244.0.179", t_old + 900) is None  # nobody had it in between
    assert index.lookup("10.244.0.179", t_old - 60) is None  # before the first pod existed
    now = index.lookup("10.244.0.179")
    assert now is not None
    assert now.name == "new"  # without a time: the pod that has it now
    assert index.lookup("10.244.0.1", t_old) is None


def test_overlap_goes_to_the_pod_that_still_had_it() -> None:
    """The new pod was created before the old one was gone; until then the old one holds
    the address, afterwards the new one does."""
    index = PodIndex(slack=0.0)
    t = parse_time("2025-01-19T16:00:00Z")
    assert t is not None
    index.observe(pod("old", "10.0.0.5"), now=t)
    index.observe(pod("new", "10.0.0.5", created="2025-01-19T16:05:00Z"), now=t + 300)
    index.observe(pod("old", "10.0.0.5"), now=t + 360, deleted=True)
    assert index.lookup("10.0.0.5", t + 330).name == "old"  # type: ignore[union-attr]
    assert index.lookup("10.0.0.5", t + 400).name == "new"  # type: ignore[union-attr]


def test_slack_bridges_clock_differences_at_the_edges() -> None:
    index = PodIndex(slack=2.0)
    t = parse_time("2025-01-19T16:00:00Z")
    assert t is not None
    index.observe(pod("p", "10.0.0.9"), now=t)
    index.observe(pod("p", "10.0.0.9"), now=t + 100, deleted=True)
    assert index.lookup("10.0.0.9", t - 1.5) is not None
    assert index.lookup("10.0.0.9", t + 101.5) is not None
    assert index.lookup("10.0.0.9", t + 103) is None


def test_terminated_pods_host_network_and_changes_of_address() -> None:
    finished = {
        "phase": "Succeeded",
        "containerStatuses": [
            {"state": {"terminated": {"finishedAt": "2025-01-19T16:10:00Z"}}},
            {"state": {"terminated": {"finishedAt": "2025-01-19T16:11:00Z"}}},
        ],
    }
    t = parse_time("2025-01-19T16:00:00Z")
    assert t is not None
    index = PodIndex(slack=0.0)
    index.observe(pod("job", "10.0.0.7", **finished), now=t + 3600)
    span = index.lookup("10.0.0.7", t + 300)
    assert span is not None
    assert span.end == t + 660  # the last container finished then
    assert index.lookup("10.0.0.7", t + 700) is None
    host = pod("agent", "10.0.0.8")
    host["spec"]["hostNetwork"] = True
    assert pod_addresses(host) == ()
    index.observe(host, now=t)
    assert index.lookup("10.0.0.8", t) is None
    # an address change closes the old span and opens one for the new address
    index.observe(pod("p", "10.0.0.20"), now=t)
    index.observe(pod("p", "10.0.0.21"), now=t + 50)
    assert index.lookup("10.0.0.20", t + 10).name == "p"  # type: ignore[union-attr]
    assert index.lookup("10.0.0.20", t + 60) is None
    assert index.lookup("10.0.0.21", t + 60).name == "p"  # type: ignore[union-attr]
    dual = pod("dual", None, podIPs=[{"ip": "10.0.0.30"}, {"ip": "fd00::30"}])
    assert pod_addresses(dual) == ("10.0.0.30", "fd00::30")


def test_resync_closes_pods_that_are_gone_and_prune_forgets_old_spans() -> None:
    t = parse_time("2025-01-19T16:00:00Z")
    assert t is not None
    index = PodIndex(slack=0.0, retention=100.0)
    index.resync([pod("a", "10.0.0.1"), pod("b", "10.0.0.2")], now=t)
    index.resync([pod("a", "10.0.0.1")], now=t + 10)
    b = index.lookup("10.0.0.2", t + 5)
    assert b is not None
    assert b.end == t + 10
    assert index.lookup("10.0.0.2", t + 20) is None
    assert index.lookup("10.0.0.1", t + 20) is not None
    index.prune(t + 500)
    assert index.lookup("10.0.0.2", t + 5) is None  # forgotten
    assert index.lookup("10.0.0.1", t + 500) is not None  # still running: kept
    assert len(index) == 1


# --------------------------------------------------------------------------------------------
# de-duplication


def test_syn_retries_fold_into_one_event_with_a_count() -> None:
    d = Deduper(2.0)
    first = event(line_no=1)
    assert d.add(first, 100.0) == []
    assert d.add(event(line_no=2, ip_id=1), 101.0) == []  # SYN retry: same source port
    assert d.add(event(line_no=3, ip_id=2), 101.9) == []
    other_port = event(line_no=4, src_port=53941)
    assert d.add(other_port, 101.9) == []  # a new connection: its own window
    out = d.add(event(line_no=5, dst="203.0.113.9"), 102.5)  # the clock passes 102
    assert [(e.line_no, e.repeat_count) for e in out] == [(1, 3)]
    assert out[0] == first._replace(repeat_count=3)  # the first packet's fields
    assert [(e.line_no, e.repeat_count) for e in d.flush()] == [(4, 1), (5, 1)]
    assert len(d) == 0
    assert d.folded == 2


def test_a_repeat_after_the_window_opens_a_new_one() -> None:
    d = Deduper(2.0)
    d.add(event(line_no=1), 100.0)
    out = d.add(event(line_no=2), 103.0)  # the kernel's third SYN, 3 s after the first
    assert [(e.line_no, e.repeat_count) for e in out] == [(1, 1)]
    assert [(e.line_no, e.repeat_count) for e in d.flush()] == [(2, 1)]


def test_expire_closes_windows_on_a_quiet_log_and_capacity_bounds_memory() -> None:
    d = Deduper(2.0, capacity=3)
    for port in range(5):
        d.add(event(line_no=port, src_port=40000 + port), 100.0 + port / 10)
    assert len(d) == 3  # the two oldest were emitted early
    assert [e.line_no for e in d.expire(101.0)] == []
    assert [e.line_no for e in d.expire(102.25)] == [2]
    assert [e.line_no for e in d.expire(200.0)] == [3, 4]
    with pytest.raises(ValueError, match="window"):
        Deduper(0)


def test_events_without_a_time_join_open_windows_until_flush() -> None:
    d = Deduper(2.0)
    assert d.add(event(line_no=1, time=None), None) == []
    assert d.add(event(line_no=2, time=None), None) == []
    assert d.expire(1e12) == []
    assert [(e.line_no, e.repeat_count) for e in d.flush()] == [(1, 2)]


def test_prefixes_and_icmp_ids_keep_windows_apart() -> None:
    d = Deduper(2.0)
    d.add(event(line_no=1), 100.0)
    d.add(event(line_no=2, prefix="calico-packet gnp:other"), 100.0)
    ping = event(proto="ICMP", proto_num=1, src_port=None, dst_port=None, icmp_id=7)
    d.add(ping._replace(line_no=3), 100.0)
    d.add(ping._replace(line_no=4, icmp_seq=2), 100.5)
    d.add(ping._replace(line_no=5, icmp_id=8), 100.5)
    assert [(e.line_no, e.repeat_count) for e in d.flush()] == [(1, 1), (2, 1), (3, 2), (5, 1)]


# --------------------------------------------------------------------------------------------
# the whole, and the metrics it feeds


def test_enricher_fills_every_field_and_leaves_unknowns_alone() -> None:
    networks = NetworkIndex(
        [
            (Tag("set", "egress-traffic-blocking"), ["217.160.0.92/32"]),
            (Tag("country", "DE", "geo"), ["217.160.0.0/16"]),
        ]
    )
    pods = PodIndex()
    assert T0 is not None
    pods.observe(pod("shop", "10.244.0.179", namespace="web"), now=T0)
    enricher = Enricher(networks, pods)
    got = enricher.enrich(event())
    assert (got.set, got.feeds, got.country, got.src_namespace, got.src_pod) == (
        "egress-traffic-blocking",
        ("geo",),
        "DE",
        "web",
        "shop",
    )
    assert got._replace(set=None, feeds=(), country=None, src_pod=None, src_namespace=None) == (
        event()
    )
    unknown = event(src="10.244.9.9", dst="198.51.100.1")
    assert enricher.enrich(unknown) is unknown
    assert not Enricher()


def test_metrics_labels_get_the_enriched_values() -> None:
    networks = NetworkIndex(
        [
            (Tag("set", "egress-blocklist"), ["217.160.0.0/16"]),
            (Tag("feed", "firehol"), ["217.160.0.92/32"]),
            (Tag("country", "DE", "world"), ["217.160.0.0/16"]),
        ]
    )
    pods = PodIndex()
    assert T0 is not None
    pods.observe(pod("shop", "10.244.0.179", namespace="web"), now=T0)
    d = Deduper(2.0)
    enricher = Enricher(networks, pods)
    for i in range(3):
        d.add(enricher.enrich(event(line_no=i)), T0 + i / 2)
    (folded,) = d.flush()
    metrics = Metrics()
    metrics.observe_event(folded, now=T0 + 5)
    text = metrics.render()
    assert (
        'egressguard_blocked_packets_total{set="egress-blocklist",country="DE",'
        'namespace="web",proto="TCP"} 3' in text
    )
    assert (
        'egressguard_blocked_flows_total{set="egress-blocklist",country="DE",'
        'namespace="web",proto="TCP"} 1' in text
    )
    assert 'egressguard_blocked_packets_by_feed_total{feed="firehol"} 3' in text
    assert 'egressguard_blocked_packets_by_feed_total{feed="world"} 3' in text
    assert "unknown" not in text.split("egressguard_blocked_packets_by_feed_total")[0]


def test_exports() -> None:
    assert sorted(enrich.__all__) == sorted(
        [
            "BLOCKLIST_LABEL",
            "Deduper",
            "Destination",
            "Enricher",
            "NetworkIndex",
            "PodIndex",
            "PodSpan",
            "Tag",
            "network_set_tags",
            "parse_time",
            "pod_addresses",
            "provenance_tags",
        ]
    )
    assert json.dumps(list(Destination("s", ("f",), "DE"))) == '["s", ["f"], "DE"]'

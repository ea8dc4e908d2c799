"""Planning and executing a sync against the in-package FakeCluster."""

from __future__ import annotations

from typing import Any

import pytest

from egressguard.adapters.kube import CALICO_V1, CALICO_V3, ObjectRef
from egressguard.adapters.kube_fake import FakeCluster
from egressguard.app import sync
from egressguard.app.sync import Action, describe_diff
from egressguard.errors import KubeError, SafetyError


def manifests(
    shards: list[list[str]], name: str = "demo", tier: str = "egressguard"
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {
            "apiVersion": CALICO_V3,
            "kind": "Tier",
            "metadata": {"name": tier},
            "spec": {"order": 100},
        }
    ]
    for index, nets in enumerate(shards):
        out.append(
            {
                "apiVersion": CALICO_V3,
                "kind": "GlobalNetworkSet",
                "metadata": {
                    "name": f"egressguard-{name}-{index:03d}",
                    "labels": {"egressguard.io/set": name},
                },
                "spec": {"nets": nets},
            }
        )
    out.append(
        {
            "apiVersion": CALICO_V3,
            "kind": "GlobalNetworkPolicy",
            "metadata": {"name": f"egressguard.{name}"},
            "spec": {
                "tier": tier,
                "order": 10,
                "types": ["Egress"],
                "egress": [{"action": "Pass"}],
            },
        }
    )
    return out


SHARDS = [["192.0.2.0/24"], ["198.51.100.0/24"], ["2001:db8::/48"]]


def actions(plan: sync.Plan) -> list[tuple[str, str]]:
    return [(c.action.value, c.ref.name) for c in plan.changes]


def test_plan_on_an_empty_cluster_creates_in_dependency_order() -> None:
    cluster = FakeCluster()
    plan = sync.plan(cluster, manifests(SHARDS), blocklist="demo")
    assert actions(plan) == [
        ("create", "egressguard"),
        ("create", "egressguard-demo-000"),
        ("create", "egressguard-demo-001"),
        ("create", "egressguard-demo-002"),
        ("create", "egressguard.demo"),
    ]
    assert plan.changes[1].diff == ("spec.nets: +1",)
    assert cluster.writes == []  # planning is read-only


def test_plan_reads_one_list_per_kind_and_gets_only_unknown_names() -> None:
    cluster = FakeCluster()
    sync.sync(cluster, manifests(SHARDS), blocklist="demo")
    cluster.requests.clear()
    sync.plan(cluster, manifests(SHARDS), blocklist="demo")
    assert [r.verb for r in cluster.requests] == ["discovery", "list", "list", "list"]


def test_plan_against_objects_read_before_lists_nothing() -> None:
    cluster = FakeCluster()
    sync.sync(cluster, manifests(SHARDS), blocklist="demo")
    owned = sync.read_owned(cluster, cluster.served_calico_api(), "demo")
    cluster.requests.clear()

    plan = sync.plan(cluster, manifests(SHARDS[:1]), blocklist="demo", owned=owned)

    assert [r.verb for r in cluster.requests] == ["discovery"]
    assert plan.summary() == {"create": 0, "update": 0, "unchanged": 3, "prune": 2}
    assert plan == sync.plan(cluster, manifests(SHARDS[:1]), blocklist="demo")


def test_objects_read_from_another_api_group_are_refused_not_pruned() -> None:
    cluster = FakeCluster()
    sync.sync(cluster, manifests(SHARDS), blocklist="demo")
    v1 = FakeCluster(calico_api="crd.projectcalico.org/v1")
    for obj in cluster.objects():
        v1.put(obj)
    owned = sync.read_owned(v1, v1.served_calico_api(), "demo")

    with pytest.raises(ValueError, match=r"not read from projectcalico\.org/v3"):
        sync.plan(cluster, manifests(SHARDS), blocklist="demo", owned=owned)


def test_execute_then_replan_is_a_noop() -> None:
    cluster = FakeCluster()
    result = sync.sync(cluster, manifests(SHARDS), blocklist="demo")
    assert result.ok
    assert len(cluster.writes) == 5
    plan = sync.plan(cluster, manifests(SHARDS), blocklist="demo")
    assert plan.is_noop
    assert plan.summary() == {"create": 0, "update": 0, "unchanged": 5, "prune": 0}
    assert sync.execute(cluster, plan).done == ()
    assert len(cluster.writes) == 5


def test_one_changed_shard_updates_exactly_that_shard() -> None:
    cluster = FakeCluster()
    sync.sync(cluster, manifests(SHARDS), blocklist="demo")
    before = len(cluster.writes)
    changed = [SHARDS[0], ["198.51.100.0/25", "203.0.113.0/24"], SHARDS[2]]
    result = sync.sync(cluster, manifests(changed), blocklist="demo")
    assert [c.ref.name for c in result.done] == ["egressguard-demo-001"]
    assert result.done[0].diff == ("spec.nets: +2 -1",)
    assert len(cluster.writes) == before + 1


def test_prune_removes_stale_owned_objects_in_reverse_dependency_order() -> None:
    cluster = FakeCluster()
    sync.sync(cluster, manifests(SHARDS), blocklist="demo")
    stranger = {
        "apiVersion": CALICO_V3,
        "kind": "GlobalNetworkSet",
        "metadata": {"name": "egressguard-demo-009", "labels": {"egressguard.io/set": "demo"}},
        "spec": {"nets": ["192.0.2.1/32"]},
    }
    cluster.put(stranger)
    plan = sync.plan(cluster, [], blocklist="demo", allow_empty=True)
    assert actions(plan) == [
        ("prune", "egressguard.demo"),
        ("prune", "egressguard-demo-000"),
        ("prune", "egressguard-demo-001"),
        ("prune", "egressguard-demo-002"),
        ("prune", "egressguard"),
    ]
    sync.execute(cluster, plan)
    assert [o["metadata"]["name"] for o in cluster.objects()] == ["egressguard-demo-009"]


def test_prune_can_be_disabled() -> None:
    cluster = FakeCluster()
    sync.sync(cluster, manifests(SHARDS), blocklist="demo")
    plan = sync.plan(cluster, manifests(SHARDS[:1]), blocklist="demo", prune=False)
    assert plan.count(Action.PRUNE) == 0


def test_an_empty_rendering_is_refused_while_owned_objects_exist() -> None:
    cluster = FakeCluster()
    sync.sync(cluster, manifests(SHARDS), blocklist="demo")
    with pytest.raises(SafetyError, match="rendered no objects, but 5 owned objects exist"):
        sync.plan(cluster, [], blocklist="demo")
    assert sync.plan(FakeCluster(), [], blocklist="demo").changes == ()  # nothing to lose


def test_objects_of_another_blocklist_are_never_pruned() -> None:
    cluster = FakeCluster()
    sync.sync(cluster, manifests(SHARDS, name="other", tier="other"), blocklist="other")
    sync.sync(cluster, manifests([["203.0.113.0/24"]]), blocklist="demo")
    sync.sync(cluster, manifests([["203.0.113.0/25"]]), blocklist="demo")
    names = {o["metadata"]["name"] for o in cluster.objects("GlobalNetworkSet")}
    assert names == {
        "egressguard-other-000",
        "egressguard-other-001",
        "egressguard-other-002",
        "egressguard-demo-000",
    }
    assert [o["metadata"]["name"] for o in cluster.objects("Tier")] == ["egressguard", "other"]


def test_a_name_taken_by_another_blocklist_is_refused_then_adopted() -> None:
    """Two blocklists rendering the same Tier name collide: one object cannot have two owners."""
    cluster = FakeCluster()
    sync.sync(cluster, manifests(SHARDS, name="other"), blocklist="other")
    with pytest.raises(SafetyError, match="belongs to blocklist 'other'"):
        sync.plan(cluster, manifests([["203.0.113.0/24"]]), blocklist="demo")
    plan = sync.plan(cluster, manifests([["203.0.113.0/24"]]), blocklist="demo", adopt=True)
    (adopted,) = [c for c in plan.changes if c.ref.kind == "Tier"]
    assert adopted.action is Action.UPDATE
    assert adopted.diff[0] == "adopted: ownership labels added"


def test_a_hand_edit_is_detected_though_the_hash_annotation_is_intact() -> None:
    cluster = FakeCluster()
    sync.sync(cluster, manifests(SHARDS), blocklist="demo")
    (live,) = [o for o in cluster.objects() if o["metadata"]["name"] == "egressguard-demo-000"]
    live["spec"]["nets"] = []
    cluster.put(live)
    plan = sync.plan(cluster, manifests(SHARDS), blocklist="demo")
    (update,) = [c for c in plan.changes if c.action is Action.UPDATE]
    assert update.ref.name == "egressguard-demo-000"
    assert update.diff == ("spec.nets: +1 -0",)


def test_a_field_dropped_from_the_rendering_is_detected_by_the_hash() -> None:
    cluster = FakeCluster()
    sync.sync(cluster, manifests(SHARDS), blocklist="demo")
    slimmer = manifests(SHARDS)
    del slimmer[-1]["spec"]["order"]  # the live policy still has it: a subset test cannot see it
    plan = sync.plan(cluster, slimmer, blocklist="demo")
    (update,) = [c for c in plan.changes if c.action is Action.UPDATE]
    assert update.ref.name == "egressguard.demo"
    assert update.diff == ("fields removed from the rendered object (content hash differs)",)


def test_server_defaults_do_not_count_as_changes() -> None:
    cluster = FakeCluster()
    sync.sync(cluster, manifests(SHARDS), blocklist="demo")
    (live,) = [o for o in cluster.objects() if o["kind"] == "GlobalNetworkPolicy"]
    live["spec"]["selector"] = "all()"  # e.g. defaulted by the Calico API server
    live["metadata"]["managedFields"] = [{"manager": "egressguard"}]
    cluster.put(live)
    assert sync.plan(cluster, manifests(SHARDS), blocklist="demo").is_noop


def test_execute_stops_at_the_first_failure_and_prunes_nothing() -> None:
    cluster = FakeCluster()
    sync.sync(cluster, manifests(SHARDS), blocklist="demo")
    cluster.fail("apply", KubeError("nope", status=422), target="egressguard-demo-000")
    result = sync.sync(cluster, manifests([["192.0.2.0/25"]]), blocklist="demo")
    assert not result.ok
    assert result.failed is not None
    assert result.failed.ref.name == "egressguard-demo-000"
    assert [c.action for c in result.skipped] == [Action.PRUNE, Action.PRUNE]
    assert len(cluster.objects("GlobalNetworkSet")) == 3
    assert result.to_dict()["error"] == "nope"


def test_a_prune_of_an_object_already_gone_counts_as_done() -> None:
    cluster = FakeCluster()
    sync.sync(cluster, manifests(SHARDS), blocklist="demo")
    plan = sync.plan(cluster, manifests(SHARDS[:2]), blocklist="demo")
    cluster.delete(ObjectRef(CALICO_V3, "GlobalNetworkSet", "egressguard-demo-002"))
    result = sync.execute(cluster, plan)
    assert result.ok
    assert [c.ref.name for c in result.done] == ["egressguard-demo-002"]


def test_dry_run_persists_nothing() -> None:
    cluster = FakeCluster()
    result = sync.sync(cluster, manifests(SHARDS), blocklist="demo", dry_run=True)
    assert result.ok
    assert len(result.done) == 5
    assert cluster.objects() == []
    assert all(r.dry_run for r in cluster.requests if r.verb == "apply")


def test_v1_clusters_get_v1_objects() -> None:
    cluster = FakeCluster(calico_api=CALICO_V1)
    plan = sync.plan(cluster, manifests(SHARDS), blocklist="demo")
    assert plan.api_version == CALICO_V1
    assert {c.ref.api_version for c in plan.changes} == {CALICO_V1}


def test_plan_to_dict_is_what_a_json_output_needs() -> None:
    plan = sync.plan(FakeCluster(), manifests(SHARDS[:1]), blocklist="demo")
    data = plan.to_dict()
    assert data["blocklist"] == "demo"
    assert data["apiVersion"] == CALICO_V3
    assert data["summary"] == {"create": 3, "update": 0, "unchanged": 0, "prune": 0}
    assert data["changes"][1] == {
        "action": "create",
        "apiVersion": CALICO_V3,
        "kind": "GlobalNetworkSet",
        "name": "egressguard-demo-000",
        "diff": ["spec.nets: +1"],
    }


@pytest.mark.parametrize(
    ("desired", "live", "expected"),
    [
        ({"spec": {"order": 10}}, {"spec": {"order": 20}}, ("spec.order: 20 -> 10",)),
        ({"spec": {"order": 10}}, {"spec": {}}, ("spec.order: added 10",)),
        ({"spec": {"nets": ["a", "b"]}}, {"spec": {"nets": ["b", "a"]}}, ("spec.nets: reordered",)),
        (
            {"metadata": {"labels": {"x": "1"}}, "spec": {}},
            {"metadata": {"labels": {"x": "2"}}, "spec": {}},
            ('metadata.labels.x: "2" -> "1"',),
        ),
        (
            {"spec": {"egress": [{"action": "Deny"}]}},
            {"spec": {"egress": [{"action": "Allow"}]}},
            ('spec.egress: [{"action": "Allow"}] -> [{"action": "Deny"}]',),
        ),
    ],
)
def test_describe_diff(
    desired: dict[str, Any], live: dict[str, Any], expected: tuple[str, ...]
) -> None:
    assert describe_diff(desired, live) == expected

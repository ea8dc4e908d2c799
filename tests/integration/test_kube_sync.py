"""Sync against an API server over real HTTP: first apply, no-op, one shard, prune, dry run.

The server is kmock plus the behaviour of a real API server it lacks (see ``kubeapi.py``); the
client is egressguard's lightkube adapter built from a kubeconfig file pointing at it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from egressguard.adapters.kube import CALICO_KINDS, CALICO_V1, CalicoApi, KubeClient
from egressguard.app import sync
from egressguard.app.sync import Action
from egressguard.errors import SafetyError

sys.path.insert(0, str(Path(__file__).parent))
from kubeapi import KubeApi, blocklist_manifests, serve

pytestmark = pytest.mark.integration

SHARDS = [
    ["192.0.2.0/24", "198.51.100.0/25"],
    ["203.0.113.0/24", "2001:db8:1::/48"],
    ["2001:db8:2::/48"],
]
GNS = "/apis/projectcalico.org/v3/globalnetworksets"
GNP = "/apis/projectcalico.org/v3/globalnetworkpolicies"
TIERS = "/apis/projectcalico.org/v3/tiers"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[KubeApi]:
    with serve(tmp_path) as running:
        yield running


@pytest.fixture
def client(api: KubeApi) -> Iterator[KubeClient]:
    with api.client() as kube:
        yield kube


def test_first_apply_creates_everything_in_dependency_order(
    api: KubeApi, client: KubeClient
) -> None:
    result = sync.sync(client, blocklist_manifests(SHARDS), blocklist="demo")

    assert result.ok
    assert result.plan.summary() == {"create": 5, "update": 0, "unchanged": 0, "prune": 0}
    writes = api.writes()
    assert [(w.method, w.path) for w in writes] == [
        ("PATCH", f"{TIERS}/egressguard"),
        ("PATCH", f"{GNS}/egressguard-demo-000"),
        ("PATCH", f"{GNS}/egressguard-demo-001"),
        ("PATCH", f"{GNS}/egressguard-demo-002"),
        ("PATCH", f"{GNP}/egressguard.demo"),
    ]
    assert all(w.params == {"fieldManager": "egressguard", "force": "true"} for w in writes)
    stored = api.objects("globalnetworksets")
    assert stored["egressguard-demo-001"]["spec"]["nets"] == SHARDS[1]
    labels = stored["egressguard-demo-001"]["metadata"]["labels"]
    assert labels == {
        "egressguard.io/set": "demo",
        "app.kubernetes.io/managed-by": "egressguard",
        "egressguard.io/blocklist": "demo",
    }
    annotations = stored["egressguard-demo-001"]["metadata"]["annotations"]
    assert annotations["egressguard.io/content-hash"].startswith("sha256:")


def test_reapplying_an_unchanged_build_writes_nothing(api: KubeApi, client: KubeClient) -> None:
    sync.sync(client, blocklist_manifests(SHARDS), blocklist="demo")
    versions = {
        n: o["metadata"]["resourceVersion"] for n, o in api.objects("globalnetworksets").items()
    }
    mark = api.mark()

    result = sync.sync(client, blocklist_manifests(SHARDS), blocklist="demo")

    assert result.plan.summary() == {"create": 0, "update": 0, "unchanged": 5, "prune": 0}
    assert api.writes(since=mark) == []
    after = {
        n: o["metadata"]["resourceVersion"] for n, o in api.objects("globalnetworksets").items()
    }
    assert after == versions


def test_one_changed_shard_is_exactly_one_write(api: KubeApi, client: KubeClient) -> None:
    sync.sync(client, blocklist_manifests(SHARDS), blocklist="demo")
    changed = [SHARDS[0], [*SHARDS[1], "198.51.100.128/25"], SHARDS[2]]
    mark = api.mark()

    result = sync.sync(client, blocklist_manifests(changed), blocklist="demo")

    assert [(w.method, w.path) for w in api.writes(since=mark)] == [
        ("PATCH", f"{GNS}/egressguard-demo-001")
    ]
    (update,) = [c for c in result.plan.changes if c.action is Action.UPDATE]
    assert update.diff == ("spec.nets: +1 -0",)
    assert api.objects("globalnetworksets")["egressguard-demo-001"]["spec"]["nets"] == changed[1]


def test_prune_removes_only_owned_objects_that_are_no_longer_rendered(
    api: KubeApi, client: KubeClient
) -> None:
    sync.sync(client, blocklist_manifests(SHARDS), blocklist="demo")
    # A look-alike nobody labelled, and a shard of another blocklist.
    api.seed(
        {
            "apiVersion": "projectcalico.org/v3",
            "kind": "GlobalNetworkSet",
            "metadata": {"name": "egressguard-demo-003", "labels": {"egressguard.io/set": "demo"}},
            "spec": {"nets": ["192.0.2.7/32"]},
        }
    )
    api.seed(
        {
            "apiVersion": "projectcalico.org/v3",
            "kind": "GlobalNetworkSet",
            "metadata": {
                "name": "egressguard-other-000",
                "labels": {
                    "app.kubernetes.io/managed-by": "egressguard",
                    "egressguard.io/blocklist": "other",
                },
            },
            "spec": {"nets": ["203.0.113.9/32"]},
        }
    )
    mark = api.mark()

    result = sync.sync(client, blocklist_manifests(SHARDS[:1]), blocklist="demo")

    assert result.ok
    assert [(w.method, w.path) for w in api.writes(since=mark)] == [
        ("DELETE", f"{GNS}/egressguard-demo-001"),
        ("DELETE", f"{GNS}/egressguard-demo-002"),
    ]
    assert sorted(api.objects("globalnetworksets")) == [
        "egressguard-demo-000",
        "egressguard-demo-003",
        "egressguard-other-000",
    ]


def test_removing_a_whole_blocklist_deletes_policy_before_sets_before_tier(
    api: KubeApi, client: KubeClient
) -> None:
    sync.sync(client, blocklist_manifests(SHARDS), blocklist="demo")
    with pytest.raises(SafetyError, match="rendered no objects"):
        sync.plan(client, [], blocklist="demo")
    mark = api.mark()

    result = sync.sync(client, [], blocklist="demo", allow_empty=True)

    assert result.ok
    assert [(w.method, w.path) for w in api.writes(since=mark)] == [
        ("DELETE", f"{GNP}/egressguard.demo"),
        ("DELETE", f"{GNS}/egressguard-demo-000"),
        ("DELETE", f"{GNS}/egressguard-demo-001"),
        ("DELETE", f"{GNS}/egressguard-demo-002"),
        ("DELETE", f"{TIERS}/egressguard"),
    ]
    assert api.objects("globalnetworksets") == {}


def test_renaming_shards_applies_new_sets_before_deleting_old_ones(
    api: KubeApi, client: KubeClient
) -> None:
    sync.sync(client, blocklist_manifests(SHARDS), blocklist="demo")
    renamed = blocklist_manifests(SHARDS[:2])
    renamed[1]["metadata"]["name"] = "egressguard-demo-new"
    mark = api.mark()

    sync.sync(client, renamed, blocklist="demo")

    methods = [(w.method, w.path.rsplit("/", 1)[-1]) for w in api.writes(since=mark)]
    assert methods == [
        ("PATCH", "egressguard-demo-new"),
        ("DELETE", "egressguard-demo-000"),
        ("DELETE", "egressguard-demo-002"),
    ]


def test_dry_run_reaches_the_server_but_persists_nothing(api: KubeApi, client: KubeClient) -> None:
    result = sync.sync(client, blocklist_manifests(SHARDS), blocklist="demo", dry_run=True)

    assert result.ok
    assert result.dry_run
    assert len(result.done) == 5
    writes = api.writes()
    assert len(writes) == 5
    assert all(w.params.get("dryRun") == "All" for w in writes)
    assert api.objects("globalnetworksets") == {}
    assert api.objects("tiers") == {}


def test_a_hand_edit_of_a_live_set_is_repaired(api: KubeApi, client: KubeClient) -> None:
    sync.sync(client, blocklist_manifests(SHARDS), blocklist="demo")
    live = api.objects("globalnetworksets")["egressguard-demo-000"]
    live["spec"]["nets"] = ["192.0.2.0/24"]  # someone removed an entry with kubectl edit
    api.seed({"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet", **live})
    mark = api.mark()

    result = sync.sync(client, blocklist_manifests(SHARDS), blocklist="demo")

    (update,) = [c for c in result.plan.changes if c.action is Action.UPDATE]
    assert update.ref.name == "egressguard-demo-000"
    assert update.diff == ("spec.nets: +1 -0",)
    assert len(api.writes(since=mark)) == 1
    assert api.objects("globalnetworksets")["egressguard-demo-000"]["spec"]["nets"] == SHARDS[0]


def test_a_foreign_object_under_a_desired_name_is_not_taken_without_adopt(
    api: KubeApi, client: KubeClient
) -> None:
    api.seed(
        {
            "apiVersion": "projectcalico.org/v3",
            "kind": "GlobalNetworkSet",
            "metadata": {"name": "egressguard-demo-000"},
            "spec": {"nets": ["192.0.2.99/32"]},
        }
    )
    with pytest.raises(SafetyError, match="belongs to no egressguard blocklist") as info:
        sync.sync(client, blocklist_manifests(SHARDS), blocklist="demo")
    assert "--adopt" in str(info.value.hint)
    assert api.writes() == []

    result = sync.sync(client, blocklist_manifests(SHARDS), blocklist="demo", adopt=True)

    assert result.ok
    adopted = api.objects("globalnetworksets")["egressguard-demo-000"]
    assert adopted["spec"]["nets"] == SHARDS[0]
    assert adopted["metadata"]["labels"]["egressguard.io/blocklist"] == "demo"


def test_v1_only_cluster_gets_the_crd_group(tmp_path: Path) -> None:
    with serve(tmp_path, calico_v3=False) as api, api.client() as client:
        result = sync.sync(client, blocklist_manifests(SHARDS), blocklist="demo")

        assert result.plan.api_version == "crd.projectcalico.org/v1"
        paths = [w.path for w in api.writes()]
        assert len(paths) == 5
        assert all(p.startswith("/apis/crd.projectcalico.org/v1/") for p in paths)
        mark = api.mark()
        # The objects are found again in the v1 group: nothing to write.
        assert sync.sync(client, blocklist_manifests(SHARDS), blocklist="demo").plan.is_noop
        assert api.writes(since=mark) == []


def test_switching_from_v1_to_v3_rewrites_nothing(tmp_path: Path) -> None:
    """The content hash ignores apiVersion: the Calico API server shows the same objects."""
    with serve(tmp_path) as api:
        v1 = blocklist_manifests(SHARDS, api_version=CALICO_V1)
        # Written straight into the v1 CRDs, e.g. before the Calico API server was installed.
        with api.client() as v1_writer:
            v1_api = CalicoApi(CALICO_V1, frozenset(CALICO_KINDS))
            for obj in sync.prepare(v1, blocklist="demo", api=v1_api):
                v1_writer.apply(obj)
        mark = api.mark()
        with api.client() as client:
            result = sync.sync(client, v1, blocklist="demo")
        assert result.plan.api_version == "projectcalico.org/v3"
        assert result.plan.is_noop
        assert api.writes(since=mark) == []


def test_calico_3_32_0_policy_create_falls_back_to_create_then_apply(tmp_path: Path) -> None:
    with (
        serve(tmp_path, ssa_create_not_found=("globalnetworkpolicies",)) as api,
        api.client() as client,
    ):
        result = sync.sync(client, blocklist_manifests(SHARDS), blocklist="demo")

        assert result.ok
        policy = [(w.method, w.path) for w in api.writes() if w.path.startswith(GNP)]
        assert policy == [
            ("PATCH", f"{GNP}/egressguard.demo"),
            ("POST", GNP),
            ("PATCH", f"{GNP}/egressguard.demo"),
        ]
        stored = api.objects("globalnetworkpolicies")["egressguard.demo"]
        assert [r["action"] for r in stored["spec"]["egress"]] == ["Log", "Deny", "Pass"]
        mark = api.mark()
        # Updates of an existing policy are plain applies (the bug only hits creation).
        changed = blocklist_manifests(SHARDS)
        changed[-1]["spec"]["order"] = 20
        sync.sync(client, changed, blocklist="demo")
        assert [(w.method, w.path) for w in api.writes(since=mark)] == [
            ("PATCH", f"{GNP}/egressguard.demo")
        ]

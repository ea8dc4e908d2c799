"""Stamping desired manifests: API group, ownership labels, content hash, refusals."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from egressguard.adapters.kube import CALICO_KINDS, CALICO_V1, CALICO_V3, CalicoApi
from egressguard.app.sync import (
    BLOCKLIST_LABEL,
    CONTENT_HASH_ANNOTATION,
    MANAGED_BY_LABEL,
    content_hash,
    is_owned,
    ownership_labels,
    prepare,
)
from egressguard.errors import InputError, ManifestError

V3 = CalicoApi(CALICO_V3, frozenset(CALICO_KINDS))
V1 = CalicoApi(CALICO_V1, frozenset(CALICO_KINDS))


def gns(name: str = "egressguard-demo-000", nets: list[str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": CALICO_V1,
        "kind": "GlobalNetworkSet",
        "metadata": {"name": name, "labels": {"egressguard.io/set": "demo"}},
        "spec": {"nets": nets or ["192.0.2.0/24"]},
    }


def tier() -> dict[str, Any]:
    return {
        "apiVersion": CALICO_V1,
        "kind": "Tier",
        "metadata": {"name": "egressguard"},
        "spec": {"order": 100},
    }


def policy() -> dict[str, Any]:
    return {
        "apiVersion": CALICO_V1,
        "kind": "GlobalNetworkPolicy",
        "metadata": {"name": "egressguard.demo"},
        "spec": {"tier": "egressguard", "types": ["Egress"], "egress": [{"action": "Pass"}]},
    }


def test_prepare_moves_to_the_served_group_and_stamps_ownership() -> None:
    (out,) = prepare([gns()], blocklist="demo", api=V3)
    assert out["apiVersion"] == CALICO_V3
    assert out["metadata"]["labels"] == {
        "egressguard.io/set": "demo",
        MANAGED_BY_LABEL: "egressguard",
        BLOCKLIST_LABEL: "demo",
    }
    assert out["metadata"]["annotations"][CONTENT_HASH_ANNOTATION] == content_hash(out)
    assert is_owned(out, "demo")
    assert not is_owned(out, "other")


def test_prepared_annotations_are_sorted_as_a_build_renders_them() -> None:
    source = gns()
    source["metadata"]["annotations"] = {"z.example/note": "z", "a.example/note": "a"}
    (out,) = prepare([source], blocklist="demo", api=V3)
    annotations = out["metadata"]["annotations"]
    assert list(annotations) == sorted(annotations)
    assert set(annotations) == {"a.example/note", "z.example/note", CONTENT_HASH_ANNOTATION}


def test_prepare_does_not_modify_its_input() -> None:
    source = gns()
    before = copy.deepcopy(source)
    prepare([source], blocklist="demo", api=V3)
    assert source == before


def test_prepare_sorts_into_dependency_order() -> None:
    out = prepare([policy(), gns("b"), gns("a"), tier()], blocklist="demo", api=V3)
    assert [(o["kind"], o["metadata"]["name"]) for o in out] == [
        ("Tier", "egressguard"),
        ("GlobalNetworkSet", "a"),
        ("GlobalNetworkSet", "b"),
        ("GlobalNetworkPolicy", "egressguard.demo"),
    ]


def test_prepare_strips_what_the_server_owns() -> None:
    copied = gns()
    copied["metadata"].update(
        resourceVersion="42",
        uid="0a0a",
        creationTimestamp="2026-01-01T00:00:00Z",
        managedFields=[{"manager": "kubectl"}],
        generation=3,
    )
    copied["status"] = {"x": 1}
    (out,) = prepare([copied], blocklist="demo", api=V3)
    assert set(out["metadata"]) == {"name", "labels", "annotations"}
    assert "status" not in out


@pytest.mark.parametrize(
    ("objs", "error", "match"),
    [
        (
            [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}],
            ManifestError,
            "syncs only",
        ),
        ([gns(), gns()], ManifestError, "rendered twice"),
        ([{"kind": "Tier", "metadata": {"name": "x"}}], ManifestError, "no apiVersion"),
        (
            [{"apiVersion": CALICO_V3, "kind": "Tier", "metadata": {}}],
            ManifestError,
            "no metadata.name",
        ),
    ],
    ids=["foreign-kind", "duplicate", "no-apiversion", "no-name"],
)
def test_prepare_refuses_bad_input(
    objs: list[dict[str, Any]], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        prepare(objs, blocklist="demo", api=V3)


def test_prepare_refuses_a_label_that_names_another_blocklist() -> None:
    obj = gns()
    obj["metadata"]["labels"][BLOCKLIST_LABEL] = "other"
    with pytest.raises(ManifestError, match="contradicts blocklist 'demo'"):
        prepare([obj], blocklist="demo", api=V3)


@pytest.mark.parametrize("name", ["", "-x", "x-", "a" * 64, "a b", "é"])
def test_prepare_refuses_blocklist_names_that_are_not_label_values(name: str) -> None:
    with pytest.raises(InputError, match="not a valid label value"):
        prepare([gns()], blocklist=name, api=V3)


def test_prepare_refuses_a_tier_when_the_cluster_has_none() -> None:
    no_tiers = CalicoApi(CALICO_V1, frozenset({"GlobalNetworkSet", "GlobalNetworkPolicy"}))
    with pytest.raises(ManifestError, match="has no Tier") as info:
        prepare([tier()], blocklist="demo", api=no_tiers)
    assert "3.29" in str(info.value.hint)


def test_ownership_labels_are_the_documented_pair() -> None:
    assert ownership_labels("demo") == {
        "app.kubernetes.io/managed-by": "egressguard",
        "egressguard.io/blocklist": "demo",
    }


# --------------------------------------------------------------------------- the content hash


def test_hash_ignores_the_api_group_and_the_hash_annotation_itself() -> None:
    (v3,) = prepare([gns()], blocklist="demo", api=V3)
    (v1,) = prepare([gns()], blocklist="demo", api=V1)
    assert v3["metadata"]["annotations"] == v1["metadata"]["annotations"]
    v3["metadata"]["annotations"][CONTENT_HASH_ANNOTATION] = "sha256:bogus"
    assert content_hash(v3) == content_hash(v1)


@pytest.mark.parametrize(
    "change",
    [
        lambda o: o["spec"]["nets"].append("198.51.100.0/24"),
        lambda o: o["spec"].update(nets=list(reversed(o["spec"]["nets"]))),
        lambda o: o["metadata"]["labels"].update(extra="1"),
        lambda o: o["metadata"].setdefault("annotations", {}).update(note="x"),
        lambda o: o["metadata"].update(name="renamed"),
        lambda o: o.update(kind="NetworkSet"),
    ],
    ids=["net-added", "nets-reordered", "label", "annotation", "name", "kind"],
)
def test_hash_changes_with_anything_egressguard_sets(change: Any) -> None:
    obj = gns(nets=["192.0.2.0/24", "203.0.113.0/24"])
    before = content_hash(obj)
    change(obj)
    assert content_hash(obj) != before


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(spec=st.dictionaries(st.text(max_size=5), _json, max_size=4))
def test_hash_does_not_depend_on_key_order(spec: dict[str, Any]) -> None:
    obj = {
        "apiVersion": CALICO_V3,
        "kind": "GlobalNetworkSet",
        "metadata": {"name": "x"},
        "spec": spec,
    }
    reordered = {
        "spec": dict(reversed(list(spec.items()))),
        "metadata": {"name": "x"},
        "kind": "GlobalNetworkSet",
        "apiVersion": CALICO_V1,
    }
    assert content_hash(obj) == content_hash(reordered)


def test_sync_and_the_renderer_agree_on_ownership_and_hash() -> None:
    """The renderer stamps objects too; a disagreement would make every sync rewrite them."""
    ownership = pytest.importorskip(
        "egressguard.render.ownership", reason="the renderer has not landed"
    )
    from egressguard.app import sync

    for name in (
        "MANAGED_BY_LABEL",
        "MANAGED_BY_VALUE",
        "BLOCKLIST_LABEL",
        "CONTENT_HASH_ANNOTATION",
    ):
        assert getattr(ownership, name) == getattr(sync, name)
    assert ownership.ownership_labels("demo") == ownership_labels("demo")
    for obj in (gns(), tier(), policy()):
        assert ownership.content_hash(obj) == content_hash(obj)
    (stamped,) = prepare([ownership.stamp(gns())], blocklist="demo", api=V3)
    assert stamped["metadata"]["annotations"][CONTENT_HASH_ANNOTATION] == ownership.content_hash(
        stamped
    )

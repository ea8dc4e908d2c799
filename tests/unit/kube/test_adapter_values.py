"""The adapter's pure parts: error translation, backoff, object references, the fake, exports."""

from __future__ import annotations

import importlib
import random
from typing import Any

import httpx2
import pytest
from lightkube import ApiError

from egressguard.adapters.kube import (
    CALICO_V1,
    CALICO_V3,
    ObjectRef,
    RetryPolicy,
    translate_error,
)
from egressguard.adapters.kube_fake import FakeCluster
from egressguard.errors import KubeError, ManifestError

REQUEST = httpx2.Request("PATCH", "https://192.0.2.1/apis/projectcalico.org/v3/globalnetworksets/x")


def status_response(
    code: int, reason: str, *, content_type: str = "application/json"
) -> httpx2.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": reason,
        "message": f"m{code}",
        "code": code,
    }
    return httpx2.Response(code, json=body, headers={"Content-Type": content_type}, request=REQUEST)


@pytest.mark.parametrize(
    ("code", "reason", "transient"),
    [
        (400, "BadRequest", False),
        (401, "Unauthorized", False),
        (403, "Forbidden", False),
        (404, "NotFound", False),
        (408, "Timeout", True),
        (409, "Conflict", True),
        (409, "AlreadyExists", False),
        (422, "Invalid", False),
        (429, "TooManyRequests", True),
        (500, "InternalError", True),
        (502, "", True),
        (503, "ServiceUnavailable", True),
        (504, "Timeout", True),
    ],
)
def test_status_codes_map_to_transient_or_permanent(
    code: int, reason: str, transient: bool
) -> None:
    response = status_response(code, reason)
    for exc in (
        ApiError(request=REQUEST, response=response),
        httpx2.HTTPStatusError("x", request=REQUEST, response=response),
    ):
        err = translate_error(exc, "apply GlobalNetworkSet/x")
        assert err.status == code
        assert err.transient is transient
        assert err.message.startswith(f"Kubernetes API: apply GlobalNetworkSet/x failed: {code}")
        assert f"m{code}" in err.message


def test_a_non_json_error_body_still_gives_status_and_text() -> None:
    response = httpx2.Response(502, text="<html>bad gateway</html>", request=REQUEST)
    err = translate_error(httpx2.HTTPStatusError("x", request=REQUEST, response=response), "list")
    assert err.status == 502
    assert err.transient
    assert "bad gateway" in err.message


@pytest.mark.parametrize(
    "exc",
    [httpx2.ConnectError("refused", request=REQUEST), httpx2.ReadTimeout("slow", request=REQUEST)],
)
def test_transport_failures_are_transient_without_status(exc: Exception) -> None:
    err = translate_error(exc, "get")
    assert err.status is None
    assert err.transient


def test_a_kube_error_passes_through_unchanged() -> None:
    original = KubeError("x", status=409)
    assert translate_error(original, "y") is original


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(attempts=10, initial_delay=0.5, max_delay=3.0)
    rng = random.Random(7)
    for failures, base in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (9, 3.0)]:
        for _ in range(50):
            assert base * 0.5 <= policy.delay(failures, None, rng) <= base
    assert policy.delay(1, 1.5, rng) == 1.5  # Retry-After wins ...
    assert policy.delay(1, 60.0, rng) == 3.0  # ... within the cap


@pytest.mark.parametrize("kw", [{"attempts": 0}, {"initial_delay": -1.0}, {"max_delay": -1.0}])
def test_retry_policy_rejects_nonsense(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="RetryPolicy"):
        RetryPolicy(**kw)


def test_object_ref_of_a_manifest() -> None:
    ref = ObjectRef.of({"apiVersion": CALICO_V3, "kind": "Tier", "metadata": {"name": "t"}})
    assert ref == ObjectRef(CALICO_V3, "Tier", "t")
    assert str(ref) == "Tier/t (projectcalico.org/v3)"
    lease = ObjectRef("coordination.k8s.io/v1", "Lease", "l", "ns")
    assert str(lease) == "Lease/l (coordination.k8s.io/v1) in namespace ns"


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ({"kind": "Tier", "metadata": {"name": "t"}}, "no apiVersion"),
        ({"apiVersion": CALICO_V3, "metadata": {"name": "t"}}, "has no kind"),
        ({"apiVersion": CALICO_V3, "kind": "Tier"}, "no metadata.name"),
        (
            {"apiVersion": CALICO_V3, "kind": "Tier", "metadata": {"name": "t", "namespace": 3}},
            "namespace",
        ),
    ],
)
def test_object_ref_refuses_incomplete_manifests(obj: dict[str, Any], match: str) -> None:
    with pytest.raises(ManifestError, match=match):
        ObjectRef.of(obj)


# --------------------------------------------------------------------------- the fake


def gns(api_version: str = CALICO_V3) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": "GlobalNetworkSet",
        "metadata": {"name": "s"},
        "spec": {"nets": ["192.0.2.0/24"]},
    }


def test_fake_shares_one_store_between_the_calico_groups() -> None:
    cluster = FakeCluster()
    cluster.apply(gns(CALICO_V1))
    got = cluster.get(ObjectRef(CALICO_V3, "GlobalNetworkSet", "s"))
    assert got is not None
    assert got["apiVersion"] == CALICO_V3


def test_fake_noop_apply_keeps_the_resource_version() -> None:
    cluster = FakeCluster()
    first = cluster.apply(gns())
    assert (
        cluster.apply(gns())["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    )
    changed = gns()
    changed["spec"]["nets"] = ["198.51.100.0/24"]
    assert (
        cluster.apply(changed)["metadata"]["resourceVersion"]
        != first["metadata"]["resourceVersion"]
    )


def test_fake_refuses_unserved_groups_and_kinds() -> None:
    with pytest.raises(KubeError) as info:
        FakeCluster(calico_api=CALICO_V1).apply(gns(CALICO_V3))
    assert info.value.status == 404
    with pytest.raises(KubeError):
        FakeCluster(calico_api=None).served_calico_api()


def test_fake_counts_dry_runs_apart_from_writes() -> None:
    cluster = FakeCluster()
    cluster.apply(gns(), dry_run=True)
    assert cluster.writes == []
    assert cluster.objects() == []
    cluster.apply(gns())
    assert [r.verb for r in cluster.writes] == ["apply"]


# --------------------------------------------------------------------------- public API

PUBLIC = {
    "egressguard.adapters.kube": {
        "CALICO_KINDS",
        "CALICO_V1",
        "CALICO_V3",
        "FIELD_MANAGER",
        "CalicoApi",
        "ClusterClient",
        "KubeClient",
        "LeaseClient",
        "LeaseRecord",
        "ObjectRef",
        "ResourceKind",
        "RetryPolicy",
        "call_with_retry",
        "connect",
        "from_kubeconfig",
        "lightkube_client",
        "translate_error",
    },
    "egressguard.adapters.kube_fake": {"FakeCluster", "FakeRequest"},
    "egressguard.app.sync": {
        "APPLY_ORDER",
        "BLOCKLIST_LABEL",
        "CONTENT_HASH_ANNOTATION",
        "MANAGED_BY_LABEL",
        "MANAGED_BY_VALUE",
        "Action",
        "Change",
        "Plan",
        "SyncResult",
        "content_hash",
        "describe_diff",
        "execute",
        "is_owned",
        "ownership_labels",
        "plan",
        "prepare",
        "read_owned",
        "sync",
    },
    "egressguard.app.leader": {
        "Clock",
        "Decision",
        "ElectionConfig",
        "LeaderElector",
        "Observation",
        "Step",
        "SystemClock",
        "decide",
        "released",
    },
}


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_exported_members(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert set(module.__all__) == PUBLIC[module_name]
    for name in module.__all__:
        assert hasattr(module, name)

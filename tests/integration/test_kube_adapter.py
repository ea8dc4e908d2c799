"""The lightkube adapter against an API server over real HTTP: discovery, errors, retries,
conflicts, pagination and configuration."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from lightkube import Client, KubeConfig

from egressguard.adapters.kube import (
    CALICO_V1,
    CALICO_V3,
    KubeClient,
    LeaseRecord,
    ObjectRef,
    RetryPolicy,
    connect,
)
from egressguard.app import sync
from egressguard.errors import KubeError, ManifestError

sys.path.insert(0, str(Path(__file__).parent))
from kubeapi import KubeApi, blocklist_manifests, serve, write_kubeconfig

pytestmark = pytest.mark.integration

GNS_PATH = "/apis/projectcalico.org/v3/globalnetworksets"


def gns(name: str, nets: list[str], **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": CALICO_V3,
        "kind": "GlobalNetworkSet",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {"nets": nets},
    }


@pytest.fixture
def api(tmp_path: Path) -> Iterator[KubeApi]:
    with serve(tmp_path) as running:
        yield running


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(api: KubeApi, sleeps: list[float]) -> Iterator[KubeClient]:
    """A client whose backoff sleeps are recorded instead of slept."""
    lightkube = Client(KubeConfig.from_file(api.kubeconfig), field_manager="egressguard")
    kube = KubeClient(
        lightkube,
        retry=RetryPolicy(attempts=4, initial_delay=0.1, max_delay=2.0),
        sleep=sleeps.append,
    )
    with kube:
        yield kube


# --------------------------------------------------------------------------- discovery


@pytest.mark.parametrize(
    ("v3", "v1", "tiers", "expected"),
    [
        (True, True, True, (CALICO_V3, {"Tier", "GlobalNetworkSet", "GlobalNetworkPolicy"})),
        (False, True, True, (CALICO_V1, {"Tier", "GlobalNetworkSet", "GlobalNetworkPolicy"})),
        (False, True, False, (CALICO_V1, {"GlobalNetworkSet", "GlobalNetworkPolicy"})),
        (True, False, True, (CALICO_V3, {"Tier", "GlobalNetworkSet", "GlobalNetworkPolicy"})),
    ],
    ids=["v3-preferred", "v1-fallback", "v1-without-tiers", "v3-native-crds-only"],
)
def test_served_calico_api_prefers_v3_and_falls_back_to_v1(
    tmp_path: Path, v3: bool, v1: bool, tiers: bool, expected: tuple[str, set[str]]
) -> None:
    with serve(tmp_path, calico_v3=v3, calico_v1=v1, tiers=tiers) as api, api.client() as client:
        served = client.served_calico_api()
        assert (served.api_version, set(served.kinds)) == expected
        # Discovery only: no object was read or written to find it out.
        assert all(r.path.count("/") <= 3 for r in api.requests())
        client.served_calico_api()
        assert len(api.requests()) == (1 if v3 else 2)  # cached


def test_no_calico_at_all_is_a_permanent_error(tmp_path: Path) -> None:
    with serve(tmp_path, calico_v3=False, calico_v1=False) as api, api.client() as client:
        with pytest.raises(KubeError, match="neither") as info:
            client.served_calico_api()
        assert not info.value.transient
        assert "install Calico" in str(info.value.hint)


def test_discovery_outage_is_transient_and_retried(api: KubeApi, client: KubeClient) -> None:
    api.inject(503, method="GET", times=2)
    assert client.served_calico_api().api_version == CALICO_V3
    assert [r.path for r in api.requests()] == ["/apis/projectcalico.org/v3"] * 3


def test_a_tier_on_a_cluster_without_tiers_is_refused_before_any_write(tmp_path: Path) -> None:
    with serve(tmp_path, calico_v3=False, tiers=False) as api, api.client() as client:
        with pytest.raises(ManifestError, match="has no Tier") as info:
            sync.sync(client, blocklist_manifests([["192.0.2.0/24"]]), blocklist="demo")
        assert "blog" in str(info.value.hint)
        assert api.writes() == []


# --------------------------------------------------------------------------- transient errors


def test_503_twice_then_success_is_retried(
    api: KubeApi, client: KubeClient, sleeps: list[float]
) -> None:
    api.inject(503, method="PATCH", plural="globalnetworksets", times=2)

    applied = client.apply(gns("s1", ["192.0.2.0/24"]))

    assert applied["spec"]["nets"] == ["192.0.2.0/24"]
    assert [w.method for w in api.writes()] == ["PATCH", "PATCH", "PATCH"]
    assert len(sleeps) == 2
    assert 0.05 <= sleeps[0] <= 0.1  # first backoff: initial delay with jitter in [0.5, 1]
    assert 0.1 <= sleeps[1] <= 0.2  # doubled
    assert "s1" in api.objects("globalnetworksets")


def test_429_honours_retry_after_within_the_cap(
    api: KubeApi, client: KubeClient, sleeps: list[float]
) -> None:
    api.inject(429, method="GET", plural="globalnetworksets", retry_after=1)
    api.inject(429, method="GET", plural="globalnetworksets", retry_after=30)

    assert client.list_owned(CALICO_V3, "GlobalNetworkSet", labels={}) == []
    assert sleeps == [1.0, 2.0]  # the server's 1 s, then 30 s capped at max_delay


def test_a_persistent_outage_gives_up_with_a_transient_error(
    api: KubeApi, client: KubeClient, sleeps: list[float]
) -> None:
    api.inject(503, method="PATCH", times=10)

    with pytest.raises(KubeError) as info:
        client.apply(gns("s1", ["192.0.2.0/24"]))

    err = info.value
    assert err.status == 503
    assert err.transient
    assert "after 4 attempts" in err.message
    assert len(api.writes()) == 4
    assert len(sleeps) == 3


def test_an_unreachable_server_is_a_transient_error(tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:9")  # discard port
    with (
        connect(kubeconfig, retry=RetryPolicy(attempts=1)) as client,
        pytest.raises(KubeError) as info,
    ):
        client.served_calico_api()
    assert info.value.transient
    assert info.value.status is None


# --------------------------------------------------------------------------- permanent errors


@pytest.mark.parametrize(("status", "hint"), [(403, "RBAC"), (422, "egressguard validate")])
def test_permanent_errors_are_reported_at_once(
    api: KubeApi, client: KubeClient, sleeps: list[float], status: int, hint: str
) -> None:
    api.inject(status, method="PATCH", plural="globalnetworksets")

    with pytest.raises(KubeError) as info:
        client.apply(gns("s1", ["192.0.2.0/24"]))

    err = info.value
    assert err.status == status
    assert not err.transient
    assert hint in str(err.hint)
    assert f"apply GlobalNetworkSet/s1 ({CALICO_V3}) failed: {status}" in err.message
    assert len(api.writes()) == 1
    assert sleeps == []


def test_a_permanent_error_stops_the_sync_before_any_prune(
    api: KubeApi, client: KubeClient
) -> None:
    shards = [["192.0.2.0/24"], ["198.51.100.0/24"], ["203.0.113.0/24"]]
    sync.sync(client, blocklist_manifests(shards), blocklist="demo")
    api.inject(403, method="PATCH", plural="globalnetworksets", name="egressguard-demo-000")
    mark = api.mark()

    result = sync.sync(client, blocklist_manifests([["192.0.2.0/25"]]), blocklist="demo")

    assert not result.ok
    assert result.error is not None
    assert result.error.status == 403
    assert result.failed is not None
    assert result.failed.ref.name == "egressguard-demo-000"
    assert [c.ref.name for c in result.skipped] == ["egressguard-demo-001", "egressguard-demo-002"]
    assert [w.method for w in api.writes(since=mark)] == ["PATCH"]  # no DELETE after the failure
    assert len(api.objects("globalnetworksets")) == 3
    with pytest.raises(KubeError):
        result.raise_for_error()


def test_wrong_credentials_are_a_permanent_error(api: KubeApi) -> None:
    api.server.require_token = True
    config = api.kubeconfig.read_text().replace("egressguard-test-token", "stolen")
    api.kubeconfig.write_text(config)
    with api.client() as client, pytest.raises(KubeError) as info:
        client.get(ObjectRef(CALICO_V3, "GlobalNetworkSet", "x"))
    assert info.value.status == 401
    assert not info.value.transient
    assert "credentials" in str(info.value.hint)


# --------------------------------------------------------------------------- conflicts


def test_a_field_owned_by_another_manager_conflicts_without_force(api: KubeApi) -> None:
    api.seed(gns("s1", ["192.0.2.0/24"]), manager="kubectl-edit")
    with api.client(force=False) as polite, pytest.raises(KubeError) as info:
        polite.apply(gns("s1", ["198.51.100.0/24"]))
    assert info.value.status == 409
    assert info.value.transient  # a conflict may clear after a re-read
    assert "kubectl-edit" in info.value.message
    assert api.objects("globalnetworksets")["s1"]["spec"]["nets"] == ["192.0.2.0/24"]

    with api.client() as forceful:  # egressguard's default: it owns what it renders
        live = forceful.apply(gns("s1", ["198.51.100.0/24"]))
    assert live["spec"]["nets"] == ["198.51.100.0/24"]
    managers = {(m["manager"], m["operation"]) for m in live["metadata"]["managedFields"]}
    assert ("egressguard", "Apply") in managers


def test_apply_removes_fields_it_applied_before_but_keeps_other_managers_fields(
    api: KubeApi, client: KubeClient
) -> None:
    first = gns("s1", ["192.0.2.0/24"], team="net")
    first["metadata"]["annotations"] = {"note": "v1"}
    client.apply(first)
    # Another manager adds a label of its own.
    api.server.store[api.server.key("projectcalico.org", "globalnetworksets", None, "s1")].obj[
        "metadata"
    ]["labels"]["owner"] = "kubectl"
    second = gns("s1", ["192.0.2.0/24"])

    live = client.apply(second)

    assert live["metadata"].get("annotations", {}) == {}
    assert live["metadata"]["labels"] == {"owner": "kubectl"}


def test_lease_update_with_a_stale_resource_version_is_409(client: KubeClient) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    ns = "egressguard-system"
    created = client.create_lease(ns, "lock", LeaseRecord("a", 15, t0, t0))
    assert created.holder == "a"
    assert created.renew_time == t0
    fresh = LeaseRecord("a", 15, t0, t0 + timedelta(seconds=2), 0, created.resource_version)
    renewed = client.update_lease(ns, "lock", fresh)
    assert renewed.resource_version != created.resource_version

    stale = LeaseRecord("b", 15, t0, t0 + timedelta(seconds=3), 1, created.resource_version)
    with pytest.raises(KubeError) as info:
        client.update_lease(ns, "lock", stale)
    assert info.value.status == 409
    assert info.value.transient
    assert client.get_lease(ns, "lock") == renewed
    with pytest.raises(KubeError) as again:
        client.create_lease(ns, "lock", LeaseRecord("b", 15))
    assert again.value.status == 409
    assert not again.value.transient  # AlreadyExists does not clear by retrying
    assert client.get_lease(ns, "missing") is None


# --------------------------------------------------------------------------- reads


def test_get_of_a_missing_object_is_none(client: KubeClient) -> None:
    assert client.get(ObjectRef(CALICO_V3, "GlobalNetworkSet", "missing")) is None


def test_delete_of_a_missing_object_is_404(client: KubeClient) -> None:
    with pytest.raises(KubeError) as info:
        client.delete(ObjectRef(CALICO_V3, "GlobalNetworkSet", "missing"))
    assert info.value.status == 404


def test_list_owned_selects_by_labels_and_follows_pagination(api: KubeApi) -> None:
    for index in range(7):
        api.seed(
            gns(
                f"s{index}",
                ["192.0.2.0/24"],
                **({"egressguard.io/blocklist": "demo"} if index % 2 == 0 else {}),
            )
        )
    lightkube = Client(KubeConfig.from_file(api.kubeconfig))
    with KubeClient(lightkube, list_chunk_size=2) as client:
        found = client.list_owned(
            CALICO_V3, "GlobalNetworkSet", labels={"egressguard.io/blocklist": "demo"}
        )
    assert [o["metadata"]["name"] for o in found] == ["s0", "s2", "s4", "s6"]
    lists = [r for r in api.requests() if r.method == "GET" and r.path == GNS_PATH]
    assert len(lists) == 2  # 4 items in pages of 2
    assert "continue" in lists[1].params


def test_kinds_egressguard_does_not_write_are_refused(client: KubeClient) -> None:
    with pytest.raises(ManifestError, match="not a kind egressguard writes"):
        client.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})


# --------------------------------------------------------------------------- configuration


def test_connect_uses_the_kubeconfig_context_namespace_and_token(api: KubeApi) -> None:
    with connect(api.kubeconfig) as client:
        assert client.namespace == "egressguard-system"
        client.get(ObjectRef(CALICO_V3, "GlobalNetworkSet", "x"))  # 401 would raise


def test_connect_without_a_kubeconfig_explains_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nope"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(KubeError, match="cannot load the Kubernetes configuration") as info:
        connect(service_account=tmp_path / "no-service-account")
    assert "KUBECONFIG" in str(info.value.hint)


def test_connect_in_a_pod_uses_the_service_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("pod-token")
    (account / "namespace").write_text("egressguard-system")
    trustme.CA().cert_pem.write_to_path(str(account / "ca.crt"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "192.0.2.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "ignored"))

    client = connect(service_account=account)
    try:
        assert client.namespace == "egressguard-system"
        config = client._kube.config
        assert config.cluster.server == "https://192.0.2.1:443"
        assert config.user is not None
        assert config.user.token == "pod-token"  # noqa: S105
    finally:
        client.close()

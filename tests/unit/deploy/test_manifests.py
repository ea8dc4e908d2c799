"""deploy/controller: every manifest is valid Kubernetes, and RBAC grants what the code uses.

Schema validation uses the Kubernetes OpenAPI schemas shipped in ``kubernetes-validate``
(strict: unknown fields are errors), for the oldest and the newest Kubernetes release we claim.
The RBAC tests tie the grants to the requests the adapter makes, so a new verb in the code
without a grant (or a grant nobody uses) fails here rather than in a cluster.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from egressguard.adapters.kube import CALICO_KINDS, CALICO_V1, CALICO_V3

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "controller"
K8S_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
NAMESPACE = "egressguard-system"
LEASE_NAME = "egressguard-controller"

# The requests egressguard.adapters.kube makes, by resource (see its module docstring):
# apply = patch, the Calico 3.32.0 fallback = create, prune = delete, ownership check = get,
# owned objects = list. Nothing watches: the controller's resync lists again.
CALICO_VERBS = {"get", "list", "create", "patch", "delete"}
LEASE_VERBS = {"get", "create", "update"}


def documents() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                out.append((path.name, doc))
    return out


def kube_objects() -> list[tuple[str, dict[str, Any]]]:
    return [(f, d) for f, d in documents() if d["kind"] != "Kustomization"]


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d for _, d in kube_objects() if d["kind"] == kind and name in (None, d["metadata"]["name"])
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def container() -> dict[str, Any]:
    (c,) = one("Deployment")["spec"]["template"]["spec"]["containers"]
    return c


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(
    ("filename", "doc"), kube_objects(), ids=lambda v: v if isinstance(v, str) else v["kind"]
)
def test_every_manifest_validates_against_the_kubernetes_schema(
    filename: str, doc: dict[str, Any], version: str
) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_does_reject_a_broken_manifest() -> None:
    broken = one("Deployment")
    broken = {**broken, "spec": {**broken["spec"], "replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest() -> None:
    (kustomization,) = [d for _, d in documents() if d["kind"] == "Kustomization"]
    files = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def test_namespaced_objects_live_in_the_controller_namespace() -> None:
    for _, doc in kube_objects():
        if doc["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["kind"]


# --------------------------------------------------------------------------- the Deployment


def test_deployment_runs_the_controller_image_and_command() -> None:
    c = container()
    assert c["image"] == "ghcr.io/egressguard/egressguard:0.1.0"
    assert c["command"] == ["egressguard", "controller", "-c", "/etc/egressguard/blocklist.yaml"]
    assert one("Deployment")["spec"]["replicas"] >= 2  # leader election makes more than one safe


def test_deployment_probes_health_and_readiness_on_the_metrics_port() -> None:
    c = container()
    (port,) = c["ports"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    service = one("Service")
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    assert service["spec"]["selector"] == one("Deployment")["spec"]["selector"]["matchLabels"]


def test_deployment_is_locked_down() -> None:
    pod = one("Deployment")["spec"]["template"]["spec"]
    c = container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert set(c["resources"]["requests"]) == {"cpu", "memory"}
    assert "memory" in c["resources"]["limits"]
    # With a read-only root, everything written goes to a volume.
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/etc/egressguard"]["readOnly"] is True
    assert {"/tmp", "/var/lib/egressguard"} <= set(mounts)


def test_provider_keys_come_from_a_secret_never_from_the_manifest() -> None:
    env = {e["name"]: e for e in container()["env"]}
    for name in ("MAXMIND_LICENSE_KEY", "MAXMIND_ACCOUNT_ID"):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "egressguard-provider-keys"
        assert ref["optional"] is True  # sources that need no key work without the Secret
        assert "value" not in env[name]
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert not [d for _, d in kube_objects() if d["kind"] == "Secret"]


def test_the_config_map_holds_a_blocklist_where_the_command_reads_it() -> None:
    config_map = one("ConfigMap")
    pod = one("Deployment")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "config"]
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    blocklist = yaml.safe_load(config_map["data"]["blocklist.yaml"])
    assert blocklist["apiVersion"] == "egressguard.io/v1alpha1"
    assert blocklist["kind"] == "Blocklist"
    assert blocklist["metadata"]["name"]
    assert set(blocklist["spec"]) == {"sources", "allow", "policy", "output"}
    assert blocklist["spec"]["sources"]
    assert all(s["url"].startswith("https://") for s in blocklist["spec"]["sources"] if "url" in s)


# --------------------------------------------------------------------------- RBAC


def rules_for(group: str, resource: str) -> list[dict[str, Any]]:
    return [
        rule
        for rule in one("ClusterRole")["rules"]
        if group in rule["apiGroups"] and resource in rule["resources"]
    ]


@pytest.mark.parametrize("api_version", [CALICO_V3, CALICO_V1])
def test_cluster_role_grants_exactly_the_calico_verbs_the_adapter_uses(api_version: str) -> None:
    group = api_version.split("/", maxsplit=1)[0]
    for info in CALICO_KINDS.values():
        rules = rules_for(group, info.plural)
        granted = {verb for rule in rules for verb in rule["verbs"]}
        assert granted == CALICO_VERBS, info.plural
        assert all("resourceNames" not in rule for rule in rules)


def test_cluster_role_grants_nothing_else() -> None:
    role = one("ClusterRole")
    for rule in role["rules"]:
        assert "*" not in rule["verbs"]
        assert "*" not in rule["resources"]
        assert set(rule["apiGroups"]) <= {"projectcalico.org", "crd.projectcalico.org"}
        assert set(rule["verbs"]) <= CALICO_VERBS
    tiered = rules_for("projectcalico.org", "tier.globalnetworkpolicies")
    writes = [r for r in tiered if {"create", "patch", "delete"} & set(r["verbs"])]
    assert writes
    assert all(r["resourceNames"] == ["egressguard.*"] for r in writes)


def test_the_lease_role_is_limited_to_the_controllers_own_lease() -> None:
    role = one("Role")
    assert role["metadata"]["namespace"] == NAMESPACE
    granted: set[str] = set()
    for rule in role["rules"]:
        assert rule["apiGroups"] == ["coordination.k8s.io"]
        assert rule["resources"] == ["leases"]
        if rule["verbs"] != ["create"]:  # create cannot be limited by name
            assert rule["resourceNames"] == [LEASE_NAME]
        granted |= set(rule["verbs"])
    assert granted == LEASE_VERBS


@pytest.mark.parametrize(
    ("binding", "role"), [("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")]
)
def test_bindings_tie_the_roles_to_the_controllers_service_account(binding: str, role: str) -> None:
    bound = one(binding)
    assert bound["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": role,
        "name": one(role)["metadata"]["name"],
    }
    account = one("ServiceAccount")
    assert bound["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
    ]
    assert (
        one("Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
        == account["metadata"]["name"]
    )


def _config_text(*, uncomment_examples: bool) -> str:
    text: str = yaml.safe_load((DEPLOY / "configmap.yaml").read_text())["data"]["blocklist.yaml"]
    if uncomment_examples:  # the commented geo source must be valid once a user enables it
        text = re.sub(r"^    # (- name: .*|  .*)$", r"    \1", text, flags=re.MULTILINE)
    return text


@pytest.mark.parametrize("uncomment_examples", [False, True], ids=["as-shipped", "geo-enabled"])
def test_the_shipped_config_passes_the_config_checker(uncomment_examples: bool) -> None:
    config = pytest.importorskip(
        "egressguard.app.config", reason="the config loader has not landed"
    )
    parsed = config.parse_config(
        _config_text(uncomment_examples=uncomment_examples), "configmap.yaml"
    )
    assert parsed.name == "egress-blocklist"
    assert len(parsed.sources) == (2 if uncomment_examples else 1)
    if uncomment_examples:
        geo = parsed.sources[1].spec.geo
        env = {e["name"] for e in container()["env"]}
        assert {geo.license_key_env, geo.account_id_env} <= env

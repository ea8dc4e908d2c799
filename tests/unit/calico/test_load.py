"""Loading manifests into typed resources, with origins and problems."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from egressguard.calico import (
    API_V1,
    API_V3,
    Action,
    GlobalNetworkPolicy,
    GlobalNetworkSet,
    KubernetesNetworkPolicy,
    NetworkPolicy,
    PolicyType,
    Port,
    Protocol,
    load_paths,
    load_text,
)
from egressguard.calico.load import from_dict
from egressguard.errors import ManifestError


def text(s: str) -> str:
    return textwrap.dedent(s).lstrip()


def test_reference_scenario_loads(examples_dir: Path) -> None:
    loaded = load_paths([examples_dir / "blog"])
    assert loaded.ok, loaded.problems
    assert [r.kind for r in loaded.resources] == [
        "GlobalNetworkPolicy",
        "GlobalNetworkPolicy",
        "GlobalNetworkSet",
    ]
    allow, block = loaded.global_network_policies
    assert (allow.name, allow.order, allow.types) == (
        "egress-traffic-allow",
        1000,
        (PolicyType.EGRESS,),
    )
    assert [r.action for r in block.egress] == [Action.LOG, Action.DENY]
    assert block.egress[0].destination.selector == "policy == 'egress-traffic-blocking'"
    (gns,) = loaded.network_sets
    assert isinstance(gns, GlobalNetworkSet)
    assert gns.nets == ("217.160.0.92/32", "217.160.0.111/32", "217.160.223.1/32")
    assert gns.labels == {"policy": "egress-traffic-blocking"}
    assert all(r.api_version == API_V1 for r in loaded.resources)


def test_origin_points_at_file_document_and_line(examples_dir: Path) -> None:
    loaded = load_paths([examples_dir / "blog" / "globalnetworkpolicies.yaml"])
    first, second = loaded.policies
    assert first.origin is not None
    assert second.origin is not None
    assert first.origin.file.endswith("globalnetworkpolicies.yaml")
    assert (first.origin.document, first.origin.line) == (0, 1)
    assert (second.origin.document, second.origin.line) == (1, 14)
    # the line of a path inside the document: the second egress rule
    assert second.origin.line_of(("spec", "egress", 1)) == 28


def test_both_api_groups_give_the_same_spec() -> None:
    doc = """
        apiVersion: {api}
        kind: GlobalNetworkPolicy
        metadata: {{name: p}}
        spec:
          order: 5
          egress:
          - action: Deny
            protocol: TCP
            destination: {{nets: [198.51.100.0/24], ports: [443, "8000:8080", http]}}
    """
    v1 = load_text(text(doc.format(api=API_V1)))
    v3 = load_text(text(doc.format(api=API_V3)))
    assert v1.ok
    assert v3.ok
    (p1,), (p3,) = v1.policies, v3.policies
    assert p1.api_version == API_V1
    assert p3.api_version == API_V3
    assert p1.egress == p3.egress
    assert p1.egress[0].protocol == Protocol("TCP")
    assert p1.egress[0].destination.ports == (
        Port.number(443),
        Port.range(8000, 8080),
        Port.named("http"),
    )
    # no types written: v1 means both directions for Felix, v3 is defaulted from the rules
    assert p1.effective_types() == (PolicyType.INGRESS, PolicyType.EGRESS)
    assert p3.effective_types() == (PolicyType.EGRESS,)


def test_numeric_strings_become_numbers() -> None:
    loaded = load_text(
        text("""
        apiVersion: projectcalico.org/v3
        kind: GlobalNetworkPolicy
        metadata: {name: p}
        spec:
          egress:
          - {action: Allow, protocol: "17", destination: {ports: ["53"]}}
        """)
    )
    (rule,) = loaded.policies[0].egress
    assert rule.protocol == Protocol(17)
    assert rule.destination.ports == (Port.number(53),)


def test_unknown_kind_is_a_problem_not_a_crash() -> None:
    loaded = load_text(
        text("""
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        ---
        apiVersion: crd.projectcalico.org/v1
        kind: GlobalNetworkSet
        metadata: {name: s}
        spec: {nets: [192.0.2.0/24]}
        """),
        "mixed.yaml",
    )
    assert len(loaded.resources) == 1
    (problem,) = loaded.problems
    assert (problem.file, problem.document, problem.path) == ("mixed.yaml", 0, "kind")
    assert "Deployment" in problem.message


def test_invalid_documents_are_reported_and_not_loaded() -> None:
    loaded = load_text(
        text("""
        apiVersion: crd.projectcalico.org/v1
        kind: GlobalNetworkPolicy
        metadata: {name: bad}
        spec:
          egress:
          - action: Deny
            destination:
              nets: [10.0.0.300/24]
        ---
        apiVersion: crd.projectcalico.org/v1
        kind: GlobalNetworkPolicy
        metadata: {name: good}
        spec: {egress: [{action: Pass}]}
        """),
        "p.yaml",
    )
    assert [p.name for p in loaded.policies] == ["good"]
    (problem,) = loaded.problems
    assert (
        str(problem) == "p.yaml:8 spec.egress[0].destination.nets[0]: '10.0.0.300/24' is not a CIDR"
    )


def test_yaml_syntax_error_is_a_located_problem() -> None:
    loaded = load_text("apiVersion: v1\nkind: [unclosed\n", "broken.yaml")
    (problem,) = loaded.problems
    assert problem.file == "broken.yaml"
    assert problem.line is not None
    assert "invalid YAML" in problem.message


def test_yaml_error_in_one_file_does_not_hide_the_others(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("kind: [unclosed\n")
    (tmp_path / "b.yml").write_text(
        "apiVersion: crd.projectcalico.org/v1\nkind: Tier\nmetadata: {name: t}\nspec: {order: 1}\n"
    )
    (tmp_path / "notes.txt").write_text("not yaml at all: [")
    loaded = load_paths([tmp_path])
    assert [t.name for t in loaded.tiers] == ["t"]
    assert [p.file for p in loaded.problems] == [str(tmp_path / "a.yaml")]


def test_duplicates_are_reported_and_the_last_wins() -> None:
    doc = (
        "apiVersion: crd.projectcalico.org/v1\nkind: GlobalNetworkSet\n"
        "metadata: {{name: s}}\nspec: {{nets: [{net}]}}\n"
    )
    loaded = load_text(doc.format(net="192.0.2.0/24") + "---\n" + doc.format(net="198.51.100.0/24"))
    (gns,) = loaded.network_sets
    assert gns.nets == ("198.51.100.0/24",)
    (problem,) = loaded.problems
    assert "defined twice" in problem.message
    assert problem.document == 1


def test_kind_list_is_expanded() -> None:
    loaded = load_text(
        text("""
        apiVersion: v1
        kind: List
        items:
        - apiVersion: crd.projectcalico.org/v1
          kind: GlobalNetworkSet
          metadata: {name: a}
          spec: {nets: [192.0.2.0/24]}
        - apiVersion: crd.projectcalico.org/v1
          kind: GlobalNetworkSet
          metadata: {name: b}
          spec: {nets: [bogus]}
        """),
        "list.yaml",
    )
    assert [s.name for s in loaded.network_sets] == ["a"]
    assert loaded.network_sets[0].origin is not None
    assert loaded.network_sets[0].origin.line == 4
    (problem,) = loaded.problems
    assert (problem.path, problem.line) == ("items[1].spec.nets[0]", 11)


def test_namespaced_kinds_default_to_the_default_namespace() -> None:
    loaded = load_text(
        "apiVersion: crd.projectcalico.org/v1\nkind: NetworkSet\nmetadata: {name: s}\n"
        "spec: {nets: [192.0.2.0/24]}\n"
    )
    assert loaded.namespaced_network_sets[0].namespace == "default"


def test_pods_and_namespaces() -> None:
    loaded = load_text(
        text("""
        apiVersion: v1
        kind: Namespace
        metadata: {name: shop, labels: {team: a}}
        ---
        apiVersion: v1
        kind: Pod
        metadata:
          name: web-0
          namespace: shop
          labels: {app: web}
        spec:
          serviceAccountName: web
          nodeName: node-1
          containers:
          - name: web
            ports: [{name: http, containerPort: 8080}, {containerPort: 53, protocol: UDP}]
          - name: sidecar
            ports: [{name: metrics, containerPort: 9090}]
        status:
          podIP: 192.0.2.10
          podIPs: [{ip: 192.0.2.10}, {ip: "2001:db8::10"}]
        ---
        apiVersion: v1
        kind: Pod
        metadata:
          name: old
          namespace: other
          annotations: {cni.projectcalico.org/podIPs: "192.0.2.20/32"}
        """)
    )
    assert loaded.ok, loaded.problems
    web, old = loaded.pods
    assert web.ips == ("192.0.2.10", "2001:db8::10")
    assert [(p.name, p.port, p.protocol) for p in web.ports] == [
        ("http", 8080, "TCP"),
        (None, 53, "UDP"),
        ("metrics", 9090, "TCP"),
    ]
    assert web.named_port("metrics")[0].port == 9090
    assert (web.service_account, web.node_name) == ("web", "node-1")
    assert old.ips == ("192.0.2.20",)
    assert old.service_account == "default"
    assert loaded.namespace("shop").labels == {"team": "a"}
    assert loaded.namespace("other").effective_labels() == {"kubernetes.io/metadata.name": "other"}
    assert web.calico_labels(loaded.namespace("shop"))["pcns.team"] == "a"


def test_effective_tiers_include_builtin_ones() -> None:
    loaded = load_text(
        "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: egressguard}\n"
        "spec: {order: 100, defaultAction: Pass}\n"
    )
    tiers = loaded.effective_tiers()
    assert set(tiers) == {"egressguard", "default", "kube-admin", "kube-baseline"}
    assert tiers["egressguard"].effective_default_action is Action.PASS
    assert tiers["default"].order == 1_000_000


def test_staged_policies_are_not_enforced_policies() -> None:
    loaded = load_text(
        "apiVersion: projectcalico.org/v3\nkind: StagedGlobalNetworkPolicy\n"
        "metadata: {name: trial}\nspec: {egress: [{action: Deny}]}\n"
    )
    assert loaded.policies == ()
    (staged,) = loaded.staged_policies
    assert staged.staged
    assert loaded.all_policies == (staged,)


def test_kubernetes_network_policy_is_kept_and_converted() -> None:
    loaded = load_text(
        text("""
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: web-egress, namespace: shop}
        spec:
          podSelector: {matchLabels: {app: web}}
          policyTypes: [Egress]
          egress:
          - to: [{ipBlock: {cidr: 192.0.2.0/24}}]
        """)
    )
    assert loaded.ok, loaded.problems
    (knp,) = loaded.kubernetes_network_policies
    assert isinstance(knp, KubernetesNetworkPolicy)
    (converted,) = loaded.policies
    assert isinstance(converted, NetworkPolicy)
    assert converted.name == "knp.default.web-egress"
    assert converted.namespace == "shop"
    assert (converted.tier, converted.order) == ("default", 1000)
    assert converted.from_kubernetes
    assert converted.origin == knp.origin
    assert loaded.network_policies == (converted,)


def test_from_dict_without_validation_raises_for_unusable_values() -> None:
    with pytest.raises(ManifestError, match=r"spec\.egress\[0\]\.action"):
        from_dict(
            {
                "apiVersion": API_V1,
                "kind": "GlobalNetworkPolicy",
                "metadata": {"name": "p"},
                "spec": {"egress": [{"action": "drop"}]},
            }
        )
    policy = from_dict(
        {"apiVersion": API_V1, "kind": "GlobalNetworkPolicy", "metadata": {"name": "p"}}
    )
    assert isinstance(policy, GlobalNetworkPolicy)


def test_validation_can_be_skipped_for_trusted_input() -> None:
    """Calico's validator rejects a bare IP in rule nets; the model can still hold it."""
    doc = (
        "apiVersion: crd.projectcalico.org/v1\nkind: GlobalNetworkPolicy\nmetadata: {name: p}\n"
        "spec: {egress: [{action: Deny, destination: {nets: [192.0.2.1]}}]}\n"
    )
    assert not load_text(doc).policies
    assert load_text(doc, validate=False).policies[0].egress[0].destination.nets == ("192.0.2.1",)


def test_problem_line_of_a_label_key_with_dots() -> None:
    loaded = load_text(
        text("""
        apiVersion: crd.projectcalico.org/v1
        kind: GlobalNetworkSet
        metadata:
          name: s
          labels:
            policy: blocked
            projectcalico.org/namespace: shop
        spec: {nets: [192.0.2.0/24]}
        """),
        "gns.yaml",
    )
    (problem,) = loaded.problems
    assert problem.path == "metadata.labels.projectcalico.org/namespace"
    assert problem.line == 7

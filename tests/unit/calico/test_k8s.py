"""Kubernetes NetworkPolicy → Calico NetworkPolicy, checked against what Calico's converter
produces (libcalico-go ``k8s/conversion/conversion.go`` and its ``conversion_test.go``)."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from egressguard.calico import Action, EntityRule, NetworkPolicy, PolicyType, Port, Protocol
from egressguard.calico.k8s import label_selector_to_calico, to_calico
from egressguard.calico.load import from_dict
from egressguard.calico.model import KubernetesNetworkPolicy, LabelSelector
from egressguard.calico.model import LabelSelectorRequirement as Req

ORCH = "projectcalico.org/orchestrator == 'k8s'"
TCP, UDP = Protocol("TCP"), Protocol("UDP")


def convert(spec: dict[str, Any], name: str = "np", namespace: str = "shop") -> NetworkPolicy:
    knp = from_dict(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )
    assert isinstance(knp, KubernetesNetworkPolicy)
    return to_calico(knp)


def test_identity_tier_order_and_selector() -> None:
    policy = convert({"podSelector": {"matchLabels": {"app": "web", "tier": "fe"}}}, "allow-dns")
    assert policy.name == "knp.default.allow-dns"
    assert policy.namespace == "shop"
    assert policy.tier == "default"
    assert policy.order == 1000
    assert policy.from_kubernetes
    # keys sorted, orchestrator first, exactly Calico's string form
    assert policy.selector == f"{ORCH} && app == 'web' && tier == 'fe'"


def test_empty_pod_selector_selects_every_pod_of_the_namespace() -> None:
    assert convert({"podSelector": {}}).selector == ORCH


@pytest.mark.parametrize(
    ("selector", "pod", "expected"),
    [
        (None, True, ORCH),
        (None, False, ""),
        (LabelSelector(), False, "all()"),
        (LabelSelector(), True, ORCH),
        (
            LabelSelector(
                match_expressions=(
                    Req("env", "In", ("prod", "stage")),
                    Req("tier", "NotIn", ("db",)),
                    Req("team", "Exists"),
                    Req("legacy", "DoesNotExist"),
                )
            ),
            False,
            "env in { 'prod', 'stage' } && tier not in { 'db' } && has(team) && ! has(legacy)",
        ),
    ],
)
def test_label_selector_strings(selector: LabelSelector | None, pod: bool, expected: str) -> None:
    assert label_selector_to_calico(selector, pod=pod) == expected


@pytest.mark.parametrize(
    ("spec", "types"),
    [
        ({"podSelector": {}}, (PolicyType.INGRESS,)),
        ({"podSelector": {}, "egress": [{}]}, (PolicyType.INGRESS, PolicyType.EGRESS)),
        ({"podSelector": {}, "policyTypes": ["Egress"]}, (PolicyType.EGRESS,)),
        (
            {"podSelector": {}, "policyTypes": ["Egress", "Ingress"]},
            (PolicyType.INGRESS, PolicyType.EGRESS),
        ),
    ],
)
def test_policy_types(spec: dict[str, Any], types: tuple[PolicyType, ...]) -> None:
    assert convert(spec).types == types


def test_default_deny_egress_has_no_rules() -> None:
    policy = convert({"podSelector": {}, "policyTypes": ["Egress"]})
    assert policy.egress == ()
    assert policy.types == (PolicyType.EGRESS,)


def test_allow_all_egress_rule() -> None:
    policy = convert({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]})
    assert [(r.action, r.protocol, r.destination) for r in policy.egress] == [
        (Action.ALLOW, None, EntityRule())
    ]


def test_ip_block_becomes_nets_and_not_nets() -> None:
    policy = convert(
        {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [
                        {
                            "ipBlock": {
                                "cidr": "0.0.0.0/0",
                                "except": ["10.0.0.0/8", "192.168.1.7/16"],
                            }
                        }
                    ]
                }
            ],
        }
    )
    (rule,) = policy.egress
    assert rule.destination.nets == ("0.0.0.0/0",)
    # Calico keeps the network of each except entry (host bits cleared)
    assert rule.destination.not_nets == ("10.0.0.0/8", "192.168.0.0/16")
    assert rule.source == EntityRule()


def test_peers_become_one_rule_each_with_namespace_semantics() -> None:
    policy = convert(
        {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [
                        {"podSelector": {"matchLabels": {"app": "db"}}},
                        {"namespaceSelector": {}},
                        {
                            "namespaceSelector": {"matchLabels": {"team": "a"}},
                            "podSelector": {},
                        },
                    ]
                }
            ],
        }
    )
    same_ns, all_ns, team_ns = (r.destination for r in policy.egress)
    assert (same_ns.selector, same_ns.namespace_selector) == (f"{ORCH} && app == 'db'", None)
    assert (all_ns.selector, all_ns.namespace_selector) == (ORCH, "all()")
    assert (team_ns.selector, team_ns.namespace_selector) == (ORCH, "team == 'a'")


def test_ports_default_to_tcp_merge_per_protocol_and_coalesce() -> None:
    policy = convert(
        {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "ports": [
                        {"port": 80},
                        {"port": 81},
                        {"protocol": "UDP", "port": 53},
                        {"port": 8000, "endPort": 8002},
                        {"port": 8003},
                        {"port": "http"},
                    ]
                }
            ],
        }
    )
    tcp, udp = policy.egress
    assert tcp.protocol == TCP
    assert tcp.destination.ports == (Port.named("http"), Port(80, 81), Port(8000, 8003))
    assert udp.protocol == UDP
    assert udp.destination.ports == (Port.number(53),)


def test_protocol_without_port_means_all_ports_of_it() -> None:
    policy = convert(
        {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"ports": [{"protocol": "UDP"}, {"protocol": "UDP", "port": 53}, {}]}],
        }
    )
    tcp, udp = policy.egress
    # an empty port entry still gets the implicit TCP protocol
    assert (tcp.protocol, tcp.destination.ports) == (TCP, ())
    assert (udp.protocol, udp.destination.ports) == (UDP, ())


def test_ports_times_peers() -> None:
    policy = convert(
        {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"ipBlock": {"cidr": "192.0.2.0/24"}}, {"podSelector": {}}],
                    "ports": [{"port": 443}, {"protocol": "UDP", "port": 443}],
                }
            ],
        }
    )
    assert [(str(r.protocol), r.source.nets, r.source.selector) for r in policy.ingress] == [
        ("TCP", ("192.0.2.0/24",), None),
        ("TCP", (), ORCH),
        ("UDP", ("192.0.2.0/24",), None),
        ("UDP", (), ORCH),
    ]
    # ingress ports are the destination (the selected pod's) ports
    assert all(r.destination.ports == (Port.number(443),) for r in policy.ingress)


def test_round_trip_of_the_kubernetes_form() -> None:
    from egressguard.calico import dump, load_text

    source = textwrap.dedent("""
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: web, namespace: shop}
        spec:
          podSelector:
            matchLabels: {app: web}
            matchExpressions: [{key: tier, operator: In, values: [fe]}]
          policyTypes: [Ingress, Egress]
          ingress:
          - from: [{namespaceSelector: {}, podSelector: {matchLabels: {role: lb}}}]
          egress:
          - to: [{ipBlock: {cidr: 192.0.2.0/24, except: [192.0.2.128/25]}}]
            ports: [{protocol: UDP, port: 53}, {port: 8000, endPort: 8080}]
        """)
    first = load_text(source)
    assert first.ok, first.problems
    again = load_text(dump(first.resources))
    assert again.resources == first.resources
    assert again.policies == first.policies

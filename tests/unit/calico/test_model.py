"""The resource model: immutability, types inference, built-in tiers, label sources."""

from __future__ import annotations

import dataclasses

import pytest

from egressguard.calico.model import (
    API_V1,
    API_V3,
    BUILTIN_TIERS,
    Action,
    EntityRule,
    FrozenMap,
    GlobalNetworkPolicy,
    Metadata,
    Namespace,
    NetworkPolicy,
    NetworkSet,
    Origin,
    Pod,
    PolicyType,
    Port,
    Protocol,
    Rule,
    StagedGlobalNetworkPolicy,
    Tier,
)
from egressguard.problems import Problem

INGRESS, EGRESS = PolicyType.INGRESS, PolicyType.EGRESS
ALLOW = Rule(action=Action.ALLOW)


def gnp(api: str, *, types=(), ingress=(), egress=()) -> GlobalNetworkPolicy:  # type: ignore[no-untyped-def]
    return GlobalNetworkPolicy(
        metadata=Metadata("p"), api_version=api, types=types, ingress=ingress, egress=egress
    )


@pytest.mark.parametrize(
    ("ingress", "egress", "defaulted"),
    [
        ((), (), (INGRESS,)),  # no rules at all: Ingress only
        ((ALLOW,), (), (INGRESS,)),
        ((), (ALLOW,), (EGRESS,)),
        ((ALLOW,), (ALLOW,), (INGRESS, EGRESS)),
    ],
)
def test_types_inference_v3_defaulting_vs_v1_felix(ingress, egress, defaulted) -> None:  # type: ignore[no-untyped-def]
    v3 = gnp(API_V3, ingress=ingress, egress=egress)
    v1 = gnp(API_V1, ingress=ingress, egress=egress)
    assert v3.defaulted_types() == defaulted
    assert v3.effective_types() == defaulted
    # A raw v1 object with empty types reaches Felix as-is: both directions.
    assert v1.felix_types() == (INGRESS, EGRESS)
    assert v1.effective_types() == (INGRESS, EGRESS)


def test_explicit_types_win_even_when_rules_disagree() -> None:
    policy = gnp(API_V1, types=(EGRESS,), ingress=(ALLOW,))
    assert policy.effective_types() == (EGRESS,)
    assert policy.governs(EGRESS)
    assert not policy.governs(INGRESS)
    assert gnp(API_V3, types=(EGRESS,), ingress=(ALLOW,)).effective_types() == (EGRESS,)


def test_builtin_tiers() -> None:
    assert BUILTIN_TIERS["default"].order == 1_000_000
    assert BUILTIN_TIERS["default"].effective_default_action is Action.DENY
    assert BUILTIN_TIERS["kube-admin"].order == 1_000
    assert BUILTIN_TIERS["kube-admin"].effective_default_action is Action.PASS
    assert BUILTIN_TIERS["kube-baseline"].order == 10_000_000
    assert BUILTIN_TIERS["kube-baseline"].effective_default_action is Action.PASS
    assert Tier(metadata=Metadata("mine")).effective_default_action is Action.DENY


def test_resources_are_frozen_and_hashable() -> None:
    policy = gnp(API_V1, egress=(ALLOW,))
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.order = 3  # type: ignore[misc]
    assert hash(policy) == hash(gnp(API_V1, egress=(ALLOW,)))
    assert {policy, gnp(API_V1, egress=(ALLOW,))} == {policy}


def test_origin_does_not_take_part_in_equality() -> None:
    a = dataclasses.replace(gnp(API_V1), origin=Origin("a.yaml", 0, 1))
    b = dataclasses.replace(gnp(API_V1), origin=Origin("b.yaml", 3, 9))
    assert a == b


def test_staged_policies_are_marked_and_distinct_from_enforced() -> None:
    staged = StagedGlobalNetworkPolicy(metadata=Metadata("p"))
    assert staged.staged
    assert not gnp(API_V1).staged
    assert not isinstance(staged, GlobalNetworkPolicy)


def test_frozen_map() -> None:
    labels = FrozenMap({"a": "1", "b": "2"})
    assert labels == {"b": "2", "a": "1"}
    assert labels == FrozenMap([("b", "2"), ("a", "1")])
    assert hash(labels) == hash(FrozenMap({"b": "2", "a": "1"}))
    assert list(labels) == ["a", "b"]
    assert labels != FrozenMap({"a": "1"})
    with pytest.raises(TypeError):
        labels["c"] = "3"  # type: ignore[index]


@pytest.mark.parametrize(
    ("value", "number", "ports"),
    [
        ("TCP", 6, True),
        ("UDP", 17, True),
        ("SCTP", 132, True),
        ("UDPLite", 136, False),
        ("ICMP", 1, False),
        ("ICMPv6", 58, False),
        (6, 6, True),
        (47, 47, False),
    ],
)
def test_protocol(value: str | int, number: int, ports: bool) -> None:
    proto = Protocol(value)
    assert proto.number == number
    assert proto.supports_ports is ports


def test_port_forms() -> None:
    assert Port.number(443).to_yaml() == 443
    assert Port.range(8000, 8080).to_yaml() == "8000:8080"
    assert Port.named("http").to_yaml() == "http"
    assert Port.range(8000, 8080).contains(8000)
    assert Port.range(8000, 8080).contains(8080)
    assert not Port.range(8000, 8080).contains(8081)
    assert not Port.named("http").contains(0)


@pytest.mark.parametrize(
    ("namespace_selector", "global_only"),
    [(None, False), ("global()", True), (" global( ) ", True), ("all()", False)],
)
def test_entity_rule_global_only(namespace_selector: str | None, global_only: bool) -> None:
    assert EntityRule(namespace_selector=namespace_selector).is_global_only is global_only


def test_pod_labels_as_calico_sees_them() -> None:
    ns = Namespace(metadata=Metadata("shop", labels=FrozenMap({"team": "a"})))
    pod = Pod(
        metadata=Metadata("web-0", "shop", labels=FrozenMap({"app": "web", "team": "own"})),
        service_account="web",
    )
    labels = pod.calico_labels(ns)
    assert labels["app"] == "web"
    assert labels["team"] == "own"  # the pod's own labels win
    assert labels["projectcalico.org/namespace"] == "shop"
    assert labels["projectcalico.org/orchestrator"] == "k8s"
    assert labels["projectcalico.org/serviceaccount"] == "web"
    assert labels["pcns.team"] == "a"
    assert labels["pcns.projectcalico.org/name"] == "shop"
    assert labels["pcns.kubernetes.io/metadata.name"] == "shop"
    assert labels["pcsa.projectcalico.org/name"] == "web"


def test_network_set_labels_inherit_namespace() -> None:
    netset = NetworkSet(metadata=Metadata("partners", "shop", labels=FrozenMap({"k": "v"})))
    labels = netset.calico_labels(None)
    assert labels == {
        "k": "v",
        "projectcalico.org/namespace": "shop",
        "pcns.projectcalico.org/name": "shop",
        "pcns.kubernetes.io/metadata.name": "shop",
    }


def test_namespace_automatic_label() -> None:
    ns = Namespace(metadata=Metadata("shop", labels=FrozenMap({"team": "a"})))
    assert ns.effective_labels() == {"team": "a", "kubernetes.io/metadata.name": "shop"}
    assert Namespace.implicit("x").effective_labels() == {"kubernetes.io/metadata.name": "x"}


def test_policy_sort_key_orders_missing_order_last_then_by_name() -> None:
    a = GlobalNetworkPolicy(metadata=Metadata("b"), order=10)
    b = GlobalNetworkPolicy(metadata=Metadata("a"), order=10)
    c = GlobalNetworkPolicy(metadata=Metadata("0"))
    d = GlobalNetworkPolicy(metadata=Metadata("z"), order=-1.5)
    assert sorted([a, b, c, d], key=lambda p: p.sort_key) == [d, b, a, c]


def test_tier_sort_key_orders_missing_order_last_then_by_name() -> None:
    first = Tier(metadata=Metadata("z"), order=-5)
    tie_a = Tier(metadata=Metadata("a"), order=100)
    tie_b = Tier(metadata=Metadata("b"), order=100.0)
    last_a = Tier(metadata=Metadata("a-unordered"))
    last_b = Tier(metadata=Metadata("b-unordered"))
    tiers = [last_b, tie_b, BUILTIN_TIERS["default"], last_a, tie_a, first]
    ordered = sorted(tiers, key=lambda t: t.sort_key)
    assert [t.name for t in ordered] == ["z", "a", "b", "default", "a-unordered", "b-unordered"]


def test_knp_short_kind() -> None:
    knp = NetworkPolicy(metadata=Metadata("knp.default.x", "ns"), from_kubernetes=True)
    assert knp.short_kind == "knp"
    assert NetworkPolicy(metadata=Metadata("x", "ns")).short_kind == "np"


def test_origin_locates_problems() -> None:
    origin = Origin("p.yaml", 2, 10, {("spec",): 14, ("spec", "egress"): 15})
    located = origin.locate(Problem("spec.egress[3]", "m"), ("spec", "egress", 3))
    assert (located.file, located.line, located.document) == ("p.yaml", 15, 2)
    assert origin.line_of(("metadata",)) == 10


def test_catch_all_and_whole_family_rules() -> None:
    from egressguard.calico.model import Action, EntityRule, Protocol, Rule

    assert Rule(action=Action.ALLOW).is_catch_all
    v4 = Rule(action=Action.DENY, ip_version=4)
    assert v4.matches_whole_family
    assert not v4.is_catch_all
    tcp = Rule(action=Action.DENY, protocol=Protocol("TCP"))
    assert not tcp.matches_whole_family
    assert not tcp.is_catch_all
    to_nets = Rule(action=Action.DENY, destination=EntityRule(nets=("192.0.2.0/24",)))
    assert not to_nets.matches_whole_family

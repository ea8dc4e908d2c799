"""Dumping: canonical form, API group choice, and the law load → dump → load = identity."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from egressguard.calico import (
    API_V1,
    API_V3,
    Action,
    EntityRule,
    FrozenMap,
    GlobalNetworkPolicy,
    GlobalNetworkSet,
    HttpMatch,
    HttpPath,
    IcmpMatch,
    Metadata,
    NetworkPolicy,
    NetworkSet,
    Port,
    Protocol,
    Rule,
    StagedGlobalNetworkPolicy,
    StagedNetworkPolicy,
    Tier,
    dump,
    load_paths,
    load_text,
    to_dict,
    validate,
)
from egressguard.calico.model import PolicyType

# ---------------------------------------------------------------- strategies of valid values

names = st.from_regex(r"\A[a-z]([a-z0-9-]{0,10}[a-z0-9])?\Z")
label_keys = st.from_regex(r"\A([a-z]{1,5}\.io/)?[A-Za-z]([A-Za-z0-9_.-]{0,6}[A-Za-z0-9])?\Z")
label_values = st.from_regex(r"\A([A-Za-z0-9]([A-Za-z0-9_.-]{0,6}[A-Za-z0-9])?)?\Z")
label_maps = st.dictionaries(label_keys, label_values, max_size=3).map(FrozenMap)
selectors = st.sampled_from(
    [
        "policy == 'egress-traffic-blocking'",
        "all()",
        "has(exempt) && !has(x)",
        "app in {'a', 'b'} || tier != 'db'",
        'name starts with "web"',
    ]
)


@st.composite
def networks(draw: st.DrawFn, version: int) -> str:
    bits = 32 if version == 4 else 128
    prefix = draw(st.integers(1, bits))
    address = draw(st.integers(0, 2**bits - 1))
    cls = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
    return str(cls((address, prefix), strict=False))


numeric_ports = st.one_of(
    st.integers(1, 65535).map(Port.number),
    st.tuples(st.integers(1, 65535), st.integers(1, 65535)).map(
        lambda ab: Port.range(min(ab), max(ab))
    ),
)
named_ports = st.from_regex(r"\A[a-z][a-z0-9-]{0,8}\Z").map(Port.named)


@st.composite
def entity_rules(draw: st.DrawFn, version: int, protocol: Protocol | None) -> EntityRule:
    max_ports = 3
    if protocol is None:
        port_strategy = named_ports
    elif protocol.supports_ports:
        port_strategy = st.one_of(numeric_ports, named_ports)
    else:
        port_strategy, max_ports = named_ports, 0
    return EntityRule(
        nets=tuple(draw(st.lists(networks(version), max_size=3, unique=True))),
        not_nets=tuple(draw(st.lists(networks(version), max_size=2, unique=True))),
        selector=draw(st.one_of(st.none(), selectors)),
        not_selector=draw(st.one_of(st.none(), selectors)),
        namespace_selector=draw(st.sampled_from([None, "global()", "team == 'a'"])),
        ports=tuple(draw(st.lists(port_strategy, max_size=max_ports))),
        not_ports=tuple(draw(st.lists(port_strategy, max_size=min(2, max_ports)))),
    )


protocols = st.sampled_from(
    [None, "TCP", "UDP", "SCTP", "UDPLite", "ICMP", "ICMPv6", 6, 17, 132, 47]
).map(lambda v: None if v is None else Protocol(v))


@st.composite
def rules(draw: st.DrawFn, *, ingress: bool) -> Rule:
    version = draw(st.sampled_from([4, 6]))
    protocol = draw(protocols)
    icmp = None
    ip_version = draw(st.sampled_from([None, version]))
    if protocol is not None and protocol.number in (1, 58):
        ip_version = None
        if draw(st.booleans()):
            icmp_type = draw(st.integers(0, 254))
            icmp = IcmpMatch(type=icmp_type, code=draw(st.one_of(st.none(), st.integers(0, 255))))
    action = draw(st.sampled_from(list(Action)))
    http = None
    if ingress and action is Action.ALLOW and (protocol is None or protocol.number == 6):
        http = draw(
            st.one_of(
                st.none(),
                st.just(HttpMatch(methods=("GET",), paths=(HttpPath(prefix="/api"),))),
            )
        )
    return Rule(
        action=action,
        ip_version=ip_version,
        protocol=protocol,
        icmp=icmp,
        source=draw(entity_rules(version, protocol)),
        destination=draw(entity_rules(version, protocol)),
        http=http,
        annotations=draw(st.sampled_from([FrozenMap(), FrozenMap({"note": "why this rule"})])),
    )


orders = st.one_of(
    st.none(),
    st.integers(-1000, 10**7).map(float),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
)
api_versions = st.sampled_from([API_V1, API_V3])


@st.composite
def policies(draw: st.DrawFn) -> Any:
    kind = draw(
        st.sampled_from(
            [GlobalNetworkPolicy, NetworkPolicy, StagedGlobalNetworkPolicy, StagedNetworkPolicy]
        )
    )
    namespaced = kind in (NetworkPolicy, StagedNetworkPolicy)
    fields: dict[str, Any] = {
        "metadata": Metadata(
            draw(names),
            draw(names) if namespaced else None,
            labels=draw(label_maps),
        ),
        "api_version": draw(api_versions),
        "tier": draw(st.sampled_from(["default", "egressguard"])),
        "order": draw(orders),
        "selector": draw(st.one_of(st.none(), selectors)),
        "types": tuple(
            draw(st.sampled_from([(), ("Ingress",), ("Egress",), ("Ingress", "Egress")]))
        ),
        "ingress": tuple(draw(st.lists(rules(ingress=True), max_size=2))),
        "egress": tuple(draw(st.lists(rules(ingress=False), max_size=2))),
    }
    fields["types"] = tuple(PolicyType(t) for t in fields["types"])
    if kind in (GlobalNetworkPolicy, StagedGlobalNetworkPolicy):
        fields["namespace_selector"] = draw(st.one_of(st.none(), st.just("team == 'a'")))
        fields["apply_on_forward"] = draw(st.booleans())
    if kind in (StagedGlobalNetworkPolicy, StagedNetworkPolicy):
        fields["staged_action"] = draw(st.sampled_from([None, "Set", "Learn"]))
    return kind(**fields)


@st.composite
def network_sets(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from([GlobalNetworkSet, NetworkSet]))
    nets = draw(st.lists(st.one_of(networks(4), networks(6)), max_size=5))
    return kind(
        metadata=Metadata(
            draw(names),
            draw(names) if kind is NetworkSet else None,
            labels=draw(label_maps),
        ),
        api_version=draw(api_versions),
        nets=tuple(nets),
    )


tiers = st.builds(
    lambda name, order, action, api: Tier(
        metadata=Metadata(name), order=order, default_action=action, api_version=api
    ),
    names.filter(lambda n: n not in ("default", "kube-admin", "kube-baseline")),
    orders,
    st.sampled_from([None, Action.DENY, Action.PASS]),
    api_versions,
)
resources = st.one_of(policies(), network_sets(), tiers)


# ---------------------------------------------------------------- laws


@settings(max_examples=300, deadline=None)
@given(resources)
def test_load_dump_load_is_identity(resource: Any) -> None:
    text = dump([resource])
    loaded = load_text(text)
    assert loaded.problems == (), text
    assert loaded.resources == (resource,)
    # and the canonical text is a fixed point
    assert dump(loaded.resources) == text


@settings(max_examples=100, deadline=None)
@given(resources, api_versions)
def test_dump_in_either_api_group(resource: Any, group: str) -> None:
    doc = to_dict(resource, group)
    assert doc["apiVersion"] == group
    assert validate(doc) == []
    (again,) = load_text(dump([resource], group)).resources
    assert again == dataclasses.replace(resource, api_version=group)


# ---------------------------------------------------------------- tables


def test_reference_scenario_dumps_canonically(examples_dir: Path) -> None:
    loaded = load_paths([examples_dir / "blog"])
    text = dump(loaded.global_network_sets, API_V3)
    assert text == (
        "---\n"
        "apiVersion: projectcalico.org/v3\n"
        "kind: GlobalNetworkSet\n"
        "metadata:\n"
        "  name: egress-traffic-blocking\n"
        "  labels:\n"
        "    policy: egress-traffic-blocking\n"
        "spec:\n"
        "  nets:\n"
        "  - 217.160.0.92/32\n"
        "  - 217.160.0.111/32\n"
        "  - 217.160.223.1/32\n"
    )
    assert load_text(dump(loaded.resources)).resources == loaded.resources


def test_key_order_follows_calico_structs() -> None:
    rule = Rule(
        action=Action.DENY,
        ip_version=4,
        protocol=Protocol("TCP"),
        destination=EntityRule(nets=("192.0.2.0/24",), selector="a == 'b'", ports=(Port(1, 2),)),
        source=EntityRule(not_nets=("198.51.100.0/24",)),
    )
    policy = GlobalNetworkPolicy(
        metadata=Metadata("p", labels=FrozenMap({"x": "y"})),
        tier="egressguard",
        order=10,
        selector="all()",
        types=(PolicyType.EGRESS,),
        egress=(rule,),
        apply_on_forward=True,
    )
    doc = to_dict(policy)
    assert list(doc) == ["apiVersion", "kind", "metadata", "spec"]
    assert list(doc["spec"]) == ["tier", "order", "selector", "types", "egress", "applyOnForward"]
    assert list(doc["spec"]["egress"][0]) == [
        "action",
        "ipVersion",
        "protocol",
        "source",
        "destination",
    ]
    assert doc["spec"]["egress"][0]["destination"] == {
        "nets": ["192.0.2.0/24"],
        "selector": "a == 'b'",
        "ports": ["1:2"],
    }
    assert doc["spec"]["order"] == 10
    assert isinstance(doc["spec"]["order"], int)


def test_default_tier_and_empty_values_are_left_out() -> None:
    doc = to_dict(GlobalNetworkPolicy(metadata=Metadata("p"), egress=(Rule(action=Action.PASS),)))
    assert doc["spec"] == {"egress": [{"action": "Pass"}]}


def test_converted_kubernetes_policy_dumps_as_calico_policy() -> None:
    loaded = load_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {name: deny-all, namespace: shop}\n"
        "spec: {podSelector: {}, policyTypes: [Egress]}\n"
    )
    (converted,) = loaded.policies
    doc = to_dict(converted, API_V3)
    assert doc == {
        "apiVersion": API_V3,
        "kind": "NetworkPolicy",
        "metadata": {"name": "knp.default.deny-all", "namespace": "shop"},
        "spec": {
            "order": 1000,
            "selector": "projectcalico.org/orchestrator == 'k8s'",
            "types": ["Egress"],
        },
    }
    assert validate(doc) == []

"""Kubernetes ``networking.k8s.io/v1`` NetworkPolicy → Calico NetworkPolicy, as Calico does it.

Calico's Kubernetes datastore driver converts each Kubernetes NetworkPolicy into a namespaced
Calico ``NetworkPolicy`` (``libcalico-go/lib/backend/k8s/conversion/conversion.go``,
``K8sNetworkPolicyToCalico``). Facts reproduced here:

* name ``knp.default.<name>``, same namespace, tier ``default``, order 1000;
* ``podSelector`` becomes ``projectcalico.org/orchestrator == 'k8s'`` ANDed with one term per
  ``matchLabels`` entry (keys sorted) and per ``matchExpressions`` entry (in order); Felix then
  restricts it to the policy's namespace like every namespaced policy;
* each rule becomes one Calico ``Allow`` rule per (protocol × peer): a peer's ``ipBlock`` gives
  ``nets`` and ``notNets`` (its ``except``); ``podSelector`` gives ``selector`` (with the
  orchestrator term); ``namespaceSelector`` gives the rule's ``namespaceSelector`` (``{}`` →
  ``all()``; absent → the policy's own namespace); Felix prefixes its keys with ``pcns.``;
* ports default to protocol TCP (even an empty entry ``{}`` means "TCP, any port"); ``endPort``
  makes a range; ports of one protocol are merged into one rule, adjacent numbers coalesced into
  ranges (``SimplifyPorts``), and a protocol listed without a port absorbs that protocol's
  ports; a rule without ``ports`` matches any protocol;
* ``policyTypes``: the API server fills it in when omitted (Ingress, plus Egress when there are
  egress rules); Calico keeps Ingress/Egress as given and falls back to ``[Ingress]`` when the
  list is empty.
"""

from __future__ import annotations

import ipaddress

from egressguard.calico.model import (
    DEFAULT_TIER,
    K8S_POLICY_ORDER,
    KNP_PREFIX,
    LABEL_ORCHESTRATOR,
    Action,
    EntityRule,
    KubernetesNetworkPolicy,
    KubernetesPeer,
    KubernetesPort,
    KubernetesRule,
    LabelSelector,
    Metadata,
    NetworkPolicy,
    PolicyType,
    Port,
    Protocol,
    Rule,
)

__all__ = ["label_selector_to_calico", "to_calico"]


def label_selector_to_calico(selector: LabelSelector | None, *, pod: bool) -> str:
    """A Kubernetes label selector as a Calico selector string.

    Pod selectors always carry ``projectcalico.org/orchestrator == 'k8s'``; an empty namespace
    selector (``{}``) means every namespace, ``all()``; ``None`` for a namespace selector gives
    the empty string (the policy's own namespace).
    """
    terms: list[str] = []
    if pod:
        terms.append(f"{LABEL_ORCHESTRATOR} == 'k8s'")
    if selector is None:
        return " && ".join(terms)
    if not pod and selector.is_empty:
        return "all()"
    for key in sorted(selector.match_labels):
        terms.append(f"{key} == '{selector.match_labels[key]}'")
    for expr in selector.match_expressions:
        values = "', '".join(expr.values)
        if expr.operator == "In":
            terms.append(f"{expr.key} in {{ '{values}' }}")
        elif expr.operator == "NotIn":
            terms.append(f"{expr.key} not in {{ '{values}' }}")
        elif expr.operator == "Exists":
            terms.append(f"has({expr.key})")
        elif expr.operator == "DoesNotExist":
            terms.append(f"! has({expr.key})")
    return " && ".join(terms)


def _simplify_ports(ports: list[Port]) -> tuple[Port, ...]:
    """Named ports as they are, numbers coalesced into a minimal list of ranges."""
    if len(ports) <= 1:
        return tuple(ports)
    named = [p for p in ports if p.is_named]
    numbers = sorted({n for p in ports if not p.is_named for n in range(p.min, p.max + 1)})
    if len(numbers) <= 1:
        return tuple(ports)
    out: list[Port] = list(named)
    first = last = numbers[0]
    for n in numbers[1:]:
        if n == last + 1:
            last = n
            continue
        out.append(Port(first, last))
        first = last = n
    out.append(Port(first, last))
    return tuple(out)


def _port(port: KubernetesPort) -> tuple[Protocol, Port | None]:
    proto = Protocol(port.protocol or "TCP")
    if port.port is None:
        return proto, None
    if isinstance(port.port, str) and not port.port.isdigit():
        return proto, Port.named(port.port)
    first = int(port.port)
    last = port.end_port if port.end_port is not None else first
    return proto, Port(first, last)


def _peer_fields(peer: KubernetesPeer | None) -> dict[str, object]:
    if peer is None:
        return {}
    if peer.ip_block is not None:
        # Calico parses with ParseCIDR and keeps the network (host bits cleared).
        nets = (str(ipaddress.ip_network(peer.ip_block.cidr, strict=False)),)
        not_nets = tuple(str(ipaddress.ip_network(e, strict=False)) for e in peer.ip_block.except_)
        return {"nets": nets, "not_nets": not_nets}
    selector = label_selector_to_calico(peer.pod_selector, pod=True)
    ns_selector = label_selector_to_calico(peer.namespace_selector, pod=False)
    return {"selector": selector or None, "namespace_selector": ns_selector or None}


def _rules(rule: KubernetesRule, *, ingress: bool) -> list[Rule]:
    peers: list[KubernetesPeer | None] = list(rule.peers) or [None]
    # protocol value (None = any) → ports (None = all ports of that protocol)
    by_proto: dict[str | int | None, list[Port] | None] = {}
    if not rule.ports:
        by_proto = {None: None}
    for kport in rule.ports:
        # Every entry gets a protocol (TCP by default), so even ``{}`` means "TCP, any port".
        proto, port = _port(kport)
        if port is None:
            by_proto[proto.value] = None
        elif proto.value not in by_proto:
            by_proto[proto.value] = [port]
        else:
            existing = by_proto[proto.value]
            if existing is not None:  # None = all ports already; keep it
                existing.append(port)
    out: list[Rule] = []
    for proto_value in sorted(by_proto, key=lambda v: "" if v is None else str(v)):
        ports = by_proto[proto_value]
        port_tuple = _simplify_ports(ports) if ports else ()
        protocol = Protocol(proto_value) if proto_value is not None else None
        for peer in peers:
            fields = _peer_fields(peer)
            if ingress:
                source = EntityRule(**fields)  # type: ignore[arg-type]
                destination = EntityRule(ports=port_tuple)
            else:
                source = EntityRule()
                destination = EntityRule(ports=port_tuple, **fields)  # type: ignore[arg-type]
            out.append(
                Rule(
                    action=Action.ALLOW,
                    protocol=protocol,
                    source=source,
                    destination=destination,
                )
            )
    return out


def to_calico(policy: KubernetesNetworkPolicy) -> NetworkPolicy:
    """The Calico ``NetworkPolicy`` Calico derives from ``policy`` (see the module doc)."""
    ingress = tuple(r for rule in policy.ingress for r in _rules(rule, ingress=True))
    egress = tuple(r for rule in policy.egress for r in _rules(rule, ingress=False))
    declared = policy.defaulted_policy_types()
    types: list[PolicyType] = []
    if PolicyType.INGRESS in declared:
        types.append(PolicyType.INGRESS)
    if PolicyType.EGRESS in declared:
        types.append(PolicyType.EGRESS)
    if not types:
        types.append(PolicyType.INGRESS)
    return NetworkPolicy(
        metadata=Metadata(
            name=KNP_PREFIX + policy.metadata.name,
            namespace=policy.metadata.namespace,
        ),
        api_version=policy.api_version,
        origin=policy.origin,
        tier=DEFAULT_TIER,
        order=K8S_POLICY_ORDER,
        selector=label_selector_to_calico(policy.pod_selector, pod=True),
        types=tuple(types),
        ingress=ingress,
        egress=egress,
        from_kubernetes=True,
    )

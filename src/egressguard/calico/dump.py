"""Resources back to canonical manifests: plain dicts with a stable key order, then YAML.

Keys follow the order of Calico's Go structs (``apiVersion``, ``kind``, ``metadata``, ``spec``;
inside a rule ``action``, ``ipVersion``, ``protocol``, …), empty and default values are left
out, so equal resources always dump to identical text and ``load → dump → load`` is the
identity. Calico resources are written in the API group asked for (``crd.projectcalico.org/v1``
or ``projectcalico.org/v3``), or the one they were read in; Kubernetes resources keep theirs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from egressguard import yamlio
from egressguard.calico.model import (
    CALICO_API_GROUPS,
    DEFAULT_TIER,
    K8S_NETWORKING_V1,
    EntityRule,
    FrozenMap,
    GlobalNetworkPolicy,
    GlobalNetworkSet,
    HttpMatch,
    IcmpMatch,
    KubernetesNetworkPolicy,
    KubernetesRule,
    LabelSelector,
    Metadata,
    Namespace,
    NetworkSet,
    Pod,
    Policy,
    Protocol,
    Resource,
    Rule,
    StagedGlobalNetworkPolicy,
    StagedNetworkPolicy,
    Tier,
)

__all__ = ["dump", "rule_to_dict", "to_dict"]


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` unless ``value`` is empty (``None``, ``""``, ``()``, ``{}``, ``False``)."""
    if value is None or value is False:
        return
    if isinstance(value, str | list | tuple | dict | FrozenMap) and not value:
        return
    out[key] = value.to_dict() if isinstance(value, FrozenMap) else value


def _number(value: float) -> int | float:
    """Whole numbers as ints (``order: 1000``, not ``1000.0``)."""
    value = float(value)
    return int(value) if value.is_integer() else value


def _metadata(meta: Metadata) -> dict[str, Any]:
    out: dict[str, Any] = {"name": meta.name}
    _put(out, "namespace", meta.namespace)
    _put(out, "labels", meta.labels)
    _put(out, "annotations", meta.annotations)
    return out


def _protocol(protocol: Protocol | None) -> str | int | None:
    return None if protocol is None else protocol.value


def _icmp(icmp: IcmpMatch | None) -> dict[str, int] | None:
    if icmp is None:
        return None
    out: dict[str, int] = {}
    if icmp.type is not None:
        out["type"] = icmp.type
    if icmp.code is not None:
        out["code"] = icmp.code
    return out


def _entity(entity: EntityRule) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _put(out, "nets", list(entity.nets))
    _put(out, "notNets", list(entity.not_nets))
    _put(out, "selector", entity.selector)
    _put(out, "notSelector", entity.not_selector)
    _put(out, "namespaceSelector", entity.namespace_selector)
    _put(out, "ports", [p.to_yaml() for p in entity.ports])
    _put(out, "notPorts", [p.to_yaml() for p in entity.not_ports])
    if entity.service_accounts is not None:
        sa: dict[str, Any] = {}
        _put(sa, "names", list(entity.service_accounts.names))
        _put(sa, "selector", entity.service_accounts.selector)
        out["serviceAccounts"] = sa
    if entity.services is not None:
        svc: dict[str, Any] = {}
        _put(svc, "name", entity.services.name)
        _put(svc, "namespace", entity.services.namespace)
        out["services"] = svc
    return out


def _http(http: HttpMatch | None) -> dict[str, Any] | None:
    if http is None:
        return None
    out: dict[str, Any] = {}
    _put(out, "methods", list(http.methods))
    paths = []
    for path in http.paths:
        entry: dict[str, str] = {}
        _put(entry, "exact", path.exact)
        _put(entry, "prefix", path.prefix)
        paths.append(entry)
    _put(out, "paths", paths)
    return out


def rule_to_dict(rule: Rule) -> dict[str, Any]:
    """One rule in API form."""
    out: dict[str, Any] = {"action": str(rule.action)}
    _put(out, "ipVersion", rule.ip_version)
    _put(out, "protocol", _protocol(rule.protocol))
    icmp = _icmp(rule.icmp)
    if icmp is not None:
        out["icmp"] = icmp
    _put(out, "notProtocol", _protocol(rule.not_protocol))
    not_icmp = _icmp(rule.not_icmp)
    if not_icmp is not None:
        out["notICMP"] = not_icmp
    _put(out, "source", _entity(rule.source))
    _put(out, "destination", _entity(rule.destination))
    http = _http(rule.http)
    if http is not None:
        out["http"] = http
    if rule.annotations:
        out["metadata"] = {"annotations": rule.annotations.to_dict()}
    return out


def _policy_spec(policy: Policy) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if isinstance(policy, StagedGlobalNetworkPolicy | StagedNetworkPolicy):
        _put(spec, "stagedAction", policy.staged_action)
    if policy.tier != DEFAULT_TIER:
        spec["tier"] = policy.tier
    if policy.order is not None:
        spec["order"] = _number(policy.order)
    _put(spec, "selector", policy.selector)
    if isinstance(policy, GlobalNetworkPolicy | StagedGlobalNetworkPolicy):
        _put(spec, "namespaceSelector", policy.namespace_selector)
    _put(spec, "serviceAccountSelector", policy.service_account_selector)
    _put(spec, "types", [str(t) for t in policy.types])
    _put(spec, "ingress", [rule_to_dict(r) for r in policy.ingress])
    _put(spec, "egress", [rule_to_dict(r) for r in policy.egress])
    if isinstance(policy, GlobalNetworkPolicy | StagedGlobalNetworkPolicy):
        _put(spec, "doNotTrack", policy.do_not_track)
        _put(spec, "preDNAT", policy.pre_dnat)
        _put(spec, "applyOnForward", policy.apply_on_forward)
    _put(spec, "performanceHints", list(policy.performance_hints))
    return spec


def _label_selector(selector: LabelSelector) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _put(out, "matchLabels", selector.match_labels)
    exprs = []
    for expr in selector.match_expressions:
        entry: dict[str, Any] = {"key": expr.key, "operator": expr.operator}
        _put(entry, "values", list(expr.values))
        exprs.append(entry)
    _put(out, "matchExpressions", exprs)
    return out


def _k8s_rule(rule: KubernetesRule, peers_key: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    peers = []
    for peer in rule.peers:
        entry: dict[str, Any] = {}
        if peer.pod_selector is not None:
            entry["podSelector"] = _label_selector(peer.pod_selector)
        if peer.namespace_selector is not None:
            entry["namespaceSelector"] = _label_selector(peer.namespace_selector)
        if peer.ip_block is not None:
            block: dict[str, Any] = {"cidr": peer.ip_block.cidr}
            _put(block, "except", list(peer.ip_block.except_))
            entry["ipBlock"] = block
        peers.append(entry)
    _put(out, peers_key, peers)
    ports = []
    for port in rule.ports:
        pentry: dict[str, Any] = {}
        _put(pentry, "protocol", port.protocol)
        _put(pentry, "port", port.port)
        _put(pentry, "endPort", port.end_port)
        ports.append(pentry)
    _put(out, "ports", ports)
    return out


def to_dict(resource: Resource, api_version: str | None = None) -> dict[str, Any]:
    """``resource`` as a manifest mapping.

    ``api_version`` (``crd.projectcalico.org/v1`` or ``projectcalico.org/v3``) applies to Calico
    kinds; ``None`` keeps the group the resource was read in. A NetworkPolicy converted from a
    Kubernetes one dumps as the Calico policy (``knp.default.<name>``).
    """
    if isinstance(resource, KubernetesNetworkPolicy):
        spec: dict[str, Any] = {"podSelector": _label_selector(resource.pod_selector)}
        _put(spec, "policyTypes", [str(t) for t in resource.policy_types])
        _put(spec, "ingress", [_k8s_rule(r, "from") for r in resource.ingress])
        _put(spec, "egress", [_k8s_rule(r, "to") for r in resource.egress])
        return {
            "apiVersion": K8S_NETWORKING_V1,
            "kind": "NetworkPolicy",
            "metadata": _metadata(resource.metadata),
            "spec": spec,
        }
    if isinstance(resource, Namespace):
        return {"apiVersion": "v1", "kind": "Namespace", "metadata": _metadata(resource.metadata)}
    if isinstance(resource, Pod):
        return _pod(resource)
    group = api_version or resource.api_version
    if group not in CALICO_API_GROUPS:
        group = CALICO_API_GROUPS[0]
    out: dict[str, Any] = {
        "apiVersion": group,
        "kind": resource.KIND,
        "metadata": _metadata(resource.metadata),
    }
    spec = {}
    if isinstance(resource, GlobalNetworkSet | NetworkSet):
        _put(spec, "nets", list(resource.nets))
        _put(spec, "allowedEgressDomains", list(resource.allowed_egress_domains))
    elif isinstance(resource, Tier):
        if resource.order is not None:
            spec["order"] = _number(resource.order)
        if resource.default_action is not None:
            spec["defaultAction"] = str(resource.default_action)
    elif isinstance(resource, Policy):
        spec = _policy_spec(resource)
    out["spec"] = spec
    return out


def _pod(pod: Pod) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    _put(spec, "nodeName", pod.node_name)
    _put(spec, "hostNetwork", pod.host_network)
    if pod.service_account != "default":
        spec["serviceAccountName"] = pod.service_account
    ports = []
    for port in pod.ports:
        entry: dict[str, Any] = {}
        _put(entry, "name", port.name)
        entry["containerPort"] = port.port
        if port.protocol != "TCP":
            entry["protocol"] = port.protocol
        ports.append(entry)
    container: dict[str, Any] = {"name": "main"}
    _put(container, "ports", ports)
    spec["containers"] = [container]
    out: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(pod.metadata),
        "spec": spec,
    }
    if pod.ips:
        out["status"] = {"podIP": pod.ips[0], "podIPs": [{"ip": ip} for ip in pod.ips]}
    return out


def dump(resources: Iterable[Resource], api_version: str | None = None) -> str:
    """A multi-document YAML text of ``resources`` in the given order."""
    return yamlio.dump_documents(to_dict(r, api_version) for r in resources)

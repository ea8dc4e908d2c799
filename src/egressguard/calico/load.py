"""Load manifests into typed resources: YAML documents → ``Manifests``.

Each document is validated first (``egressguard.calico.validate``), and only documents without
problems become resources: Calico would refuse an invalid object, so it would not exist in the
cluster. Problems — invalid fields, unknown kinds, YAML syntax errors, resources defined twice —
are collected, never raised, each with file, line, document index and YAML path.

``kind: List`` documents (and ``<Kind>List``, as ``kubectl get -o yaml`` prints them) are
expanded into their items.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path as FsPath
from typing import Any

from egressguard import yamlio
from egressguard.calico import k8s
from egressguard.calico.model import (
    BUILTIN_TIERS,
    CALICO_API_GROUPS,
    K8S_NETWORKING_V1,
    Action,
    ContainerPort,
    EntityRule,
    FrozenMap,
    GlobalNetworkPolicy,
    GlobalNetworkSet,
    HttpMatch,
    HttpPath,
    IcmpMatch,
    IpBlock,
    KubernetesNetworkPolicy,
    KubernetesPeer,
    KubernetesPort,
    KubernetesRule,
    LabelSelector,
    LabelSelectorRequirement,
    Metadata,
    Namespace,
    NetworkPolicy,
    NetworkSet,
    Origin,
    Pod,
    Policy,
    PolicyType,
    Port,
    Protocol,
    Resource,
    Rule,
    ServiceAccountMatch,
    ServiceMatch,
    StagedGlobalNetworkPolicy,
    StagedNetworkPolicy,
    Tier,
)
from egressguard.calico.validate import check, manifest_items
from egressguard.errors import ManifestError
from egressguard.problems import Path, Problem, format_path

__all__ = [
    "Manifests",
    "expand_paths",
    "from_dict",
    "load_documents",
    "load_paths",
    "load_text",
    "port_from_yaml",
    "protocol_from_yaml",
    "rule_from_yaml",
    "yaml_problem",
]

#: Kinds per API group that the model understands.
CALICO_KINDS = frozenset(
    {
        "GlobalNetworkSet",
        "NetworkSet",
        "GlobalNetworkPolicy",
        "NetworkPolicy",
        "StagedGlobalNetworkPolicy",
        "StagedNetworkPolicy",
        "Tier",
    }
)


class _Bad(Exception):
    """A value the converter cannot use (only reachable with ``validate=False``)."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


# --------------------------------------------------------------------------------------------
# dict → model


def _map(value: Any, path: Path) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _Bad(path, "must be a mapping")
    return value


def _list(value: Any, path: Path) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Bad(path, "must be a list")
    return value


def _opt_str(value: Any, path: Path) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Bad(path, "must be a string")
    return value or None


def _strs(value: Any, path: Path) -> tuple[str, ...]:
    out = []
    for i, item in enumerate(_list(value, path)):
        if not isinstance(item, str):
            raise _Bad((*path, i), "must be a string")
        out.append(item)
    return tuple(out)


def _opt_int(value: Any, path: Path) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(path, "must be an integer")
    return value


def _opt_float(value: Any, path: Path) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Bad(path, "must be a number")
    return float(value)


def _bool(value: Any, path: Path) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _Bad(path, "must be true or false")
    return value


def _string_map(value: Any, path: Path) -> FrozenMap:
    data = _map(value, path)
    for key, item in data.items():
        if not isinstance(item, str):
            raise _Bad((*path, key), "must be a string")
    return FrozenMap(data)


def _metadata(doc: Mapping[str, Any], *, namespaced: bool, path: Path) -> Metadata:
    meta = _map(doc.get("metadata"), (*path, "metadata"))
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise _Bad((*path, "metadata", "name"), "is required")
    namespace = _opt_str(meta.get("namespace"), (*path, "metadata", "namespace"))
    if namespaced and namespace is None:
        namespace = "default"
    return Metadata(
        name=name,
        namespace=namespace if namespaced else None,
        labels=_string_map(meta.get("labels"), (*path, "metadata", "labels")),
        annotations=_string_map(meta.get("annotations"), (*path, "metadata", "annotations")),
    )


def protocol_from_yaml(value: Any, path: Path = ()) -> Protocol | None:
    """``"TCP"`` → ``Protocol("TCP")``; ``6`` and ``"6"`` → ``Protocol(6)``."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise _Bad(path, "must be a protocol name or number")
    if isinstance(value, int):
        return Protocol(value)
    if isinstance(value, str):
        return Protocol(int(value)) if value.isdigit() else Protocol(value)
    raise _Bad(path, "must be a protocol name or number")


_RANGE = re.compile(r"^(\d+):(\d+)$")


def port_from_yaml(value: Any, path: Path = ()) -> Port:
    """``80`` / ``"80"`` → port 80; ``"80:90"`` → range; anything else → named port."""
    if isinstance(value, bool):
        raise _Bad(path, "must be a port number, range or name")
    if isinstance(value, int):
        return Port.number(value)
    if isinstance(value, str):
        if value.isdigit():
            return Port.number(int(value))
        match = _RANGE.match(value)
        if match:
            return Port.range(int(match[1]), int(match[2]))
        return Port.named(value)
    raise _Bad(path, "must be a port number, range or name")


def _ports(value: Any, path: Path) -> tuple[Port, ...]:
    return tuple(port_from_yaml(item, (*path, i)) for i, item in enumerate(_list(value, path)))


def _icmp(value: Any, path: Path) -> IcmpMatch | None:
    if value is None:
        return None
    data = _map(value, path)
    return IcmpMatch(
        type=_opt_int(data.get("type"), (*path, "type")),
        code=_opt_int(data.get("code"), (*path, "code")),
    )


def _entity(value: Any, path: Path) -> EntityRule:
    if value is None:
        return EntityRule()
    data = _map(value, path)
    sa = data.get("serviceAccounts")
    services = data.get("services")
    sa_value = None
    if sa is not None:
        sa_map = _map(sa, (*path, "serviceAccounts"))
        sa_value = ServiceAccountMatch(
            names=_strs(sa_map.get("names"), (*path, "serviceAccounts", "names")),
            selector=_opt_str(sa_map.get("selector"), (*path, "serviceAccounts", "selector")),
        )
    svc_value = None
    if services is not None:
        svc_map = _map(services, (*path, "services"))
        svc_value = ServiceMatch(
            name=_opt_str(svc_map.get("name"), (*path, "services", "name")) or "",
            namespace=_opt_str(svc_map.get("namespace"), (*path, "services", "namespace")),
        )
    return EntityRule(
        nets=_strs(data.get("nets"), (*path, "nets")),
        not_nets=_strs(data.get("notNets"), (*path, "notNets")),
        selector=_opt_str(data.get("selector"), (*path, "selector")),
        not_selector=_opt_str(data.get("notSelector"), (*path, "notSelector")),
        namespace_selector=_opt_str(data.get("namespaceSelector"), (*path, "namespaceSelector")),
        ports=_ports(data.get("ports"), (*path, "ports")),
        not_ports=_ports(data.get("notPorts"), (*path, "notPorts")),
        service_accounts=sa_value,
        services=svc_value,
    )


def _http(value: Any, path: Path) -> HttpMatch | None:
    if value is None:
        return None
    data = _map(value, path)
    paths = []
    for i, item in enumerate(_list(data.get("paths"), (*path, "paths"))):
        entry = _map(item, (*path, "paths", i))
        paths.append(
            HttpPath(
                exact=_opt_str(entry.get("exact"), (*path, "paths", i, "exact")),
                prefix=_opt_str(entry.get("prefix"), (*path, "paths", i, "prefix")),
            )
        )
    return HttpMatch(methods=_strs(data.get("methods"), (*path, "methods")), paths=tuple(paths))


def rule_from_yaml(value: Any, path: Path = ()) -> Rule:
    """One Calico rule mapping → ``Rule``."""
    data = _map(value, path)
    action = data.get("action")
    try:
        act = Action(str(action))
    except ValueError:
        raise _Bad((*path, "action"), f"{action!r} is not an action") from None
    meta = _map(data.get("metadata"), (*path, "metadata"))
    return Rule(
        action=act,
        ip_version=_opt_int(data.get("ipVersion"), (*path, "ipVersion")),
        protocol=protocol_from_yaml(data.get("protocol"), (*path, "protocol")),
        not_protocol=protocol_from_yaml(data.get("notProtocol"), (*path, "notProtocol")),
        icmp=_icmp(data.get("icmp"), (*path, "icmp")),
        not_icmp=_icmp(data.get("notICMP"), (*path, "notICMP")),
        source=_entity(data.get("source"), (*path, "source")),
        destination=_entity(data.get("destination"), (*path, "destination")),
        http=_http(data.get("http"), (*path, "http")),
        annotations=_string_map(meta.get("annotations"), (*path, "metadata", "annotations")),
    )


def _rules(value: Any, path: Path) -> tuple[Rule, ...]:
    return tuple(rule_from_yaml(item, (*path, i)) for i, item in enumerate(_list(value, path)))


def _types(value: Any, path: Path) -> tuple[PolicyType, ...]:
    out = []
    for i, item in enumerate(_list(value, path)):
        try:
            out.append(PolicyType(item))
        except ValueError:
            raise _Bad((*path, i), f"{item!r} is not Ingress or Egress") from None
    return tuple(out)


def _policy_fields(spec: Mapping[str, Any], path: Path) -> dict[str, Any]:
    return {
        "tier": _opt_str(spec.get("tier"), (*path, "tier")) or "default",
        "order": _opt_float(spec.get("order"), (*path, "order")),
        "selector": _opt_str(spec.get("selector"), (*path, "selector")),
        "service_account_selector": _opt_str(
            spec.get("serviceAccountSelector"), (*path, "serviceAccountSelector")
        ),
        "types": _types(spec.get("types"), (*path, "types")),
        "ingress": _rules(spec.get("ingress"), (*path, "ingress")),
        "egress": _rules(spec.get("egress"), (*path, "egress")),
        "performance_hints": _strs(spec.get("performanceHints"), (*path, "performanceHints")),
    }


def _global_fields(spec: Mapping[str, Any], path: Path) -> dict[str, Any]:
    return {
        "namespace_selector": _opt_str(spec.get("namespaceSelector"), (*path, "namespaceSelector")),
        "do_not_track": _bool(spec.get("doNotTrack"), (*path, "doNotTrack")),
        "pre_dnat": _bool(spec.get("preDNAT"), (*path, "preDNAT")),
        "apply_on_forward": _bool(spec.get("applyOnForward"), (*path, "applyOnForward")),
    }


def _label_selector(value: Any, path: Path) -> LabelSelector | None:
    if value is None:
        return None
    data = _map(value, path)
    exprs = []
    for i, item in enumerate(_list(data.get("matchExpressions"), (*path, "matchExpressions"))):
        entry = _map(item, (*path, "matchExpressions", i))
        exprs.append(
            LabelSelectorRequirement(
                key=_opt_str(entry.get("key"), (*path, "matchExpressions", i, "key")) or "",
                operator=_opt_str(entry.get("operator"), (*path, "matchExpressions", i, "operator"))
                or "",
                values=_strs(entry.get("values"), (*path, "matchExpressions", i, "values")),
            )
        )
    return LabelSelector(
        match_labels=_string_map(data.get("matchLabels"), (*path, "matchLabels")),
        match_expressions=tuple(exprs),
    )


def _k8s_rules(value: Any, peers_key: str, path: Path) -> tuple[KubernetesRule, ...]:
    out = []
    for i, item in enumerate(_list(value, path)):
        rpath = (*path, i)
        data = _map(item, rpath)
        peers = []
        for j, peer in enumerate(_list(data.get(peers_key), (*rpath, peers_key))):
            ppath = (*rpath, peers_key, j)
            pdata = _map(peer, ppath)
            block = None
            if pdata.get("ipBlock") is not None:
                bdata = _map(pdata["ipBlock"], (*ppath, "ipBlock"))
                block = IpBlock(
                    cidr=_opt_str(bdata.get("cidr"), (*ppath, "ipBlock", "cidr")) or "",
                    except_=_strs(bdata.get("except"), (*ppath, "ipBlock", "except")),
                )
            peers.append(
                KubernetesPeer(
                    pod_selector=_label_selector(pdata.get("podSelector"), (*ppath, "podSelector")),
                    namespace_selector=_label_selector(
                        pdata.get("namespaceSelector"), (*ppath, "namespaceSelector")
                    ),
                    ip_block=block,
                )
            )
        ports = []
        for j, port in enumerate(_list(data.get("ports"), (*rpath, "ports"))):
            ppath = (*rpath, "ports", j)
            pdata = _map(port, ppath)
            raw = pdata.get("port")
            if raw is not None and (isinstance(raw, bool) or not isinstance(raw, int | str)):
                raise _Bad((*ppath, "port"), "must be a number or a name")
            ports.append(
                KubernetesPort(
                    protocol=_opt_str(pdata.get("protocol"), (*ppath, "protocol")),
                    port=raw,
                    end_port=_opt_int(pdata.get("endPort"), (*ppath, "endPort")),
                )
            )
        out.append(KubernetesRule(peers=tuple(peers), ports=tuple(ports)))
    return tuple(out)


def _pod(doc: Mapping[str, Any], meta: Metadata, path: Path) -> dict[str, Any]:
    spec = _map(doc.get("spec"), (*path, "spec"))
    status = _map(doc.get("status"), (*path, "status"))
    ports = []
    containers = _list(spec.get("containers"), (*path, "spec", "containers"))
    for i, container in enumerate(containers):
        cpath = (*path, "spec", "containers", i)
        cdata = _map(container, cpath)
        for j, port in enumerate(_list(cdata.get("ports"), (*cpath, "ports"))):
            ppath = (*cpath, "ports", j)
            pdata = _map(port, ppath)
            number = _opt_int(pdata.get("containerPort"), (*ppath, "containerPort"))
            if number is None:
                raise _Bad((*ppath, "containerPort"), "is required")
            ports.append(
                ContainerPort(
                    port=number,
                    protocol=_opt_str(pdata.get("protocol"), (*ppath, "protocol")) or "TCP",
                    name=_opt_str(pdata.get("name"), (*ppath, "name")),
                )
            )
    # Calico's order of preference (conversion.go:getPodIPs): status.podIPs, status.podIP,
    # then Calico's own CNI annotations.
    ips: tuple[str, ...] = ()
    pod_ips = _list(status.get("podIPs"), (*path, "status", "podIPs"))
    if pod_ips:
        ips = tuple(
            _opt_str(_map(item, (*path, "status", "podIPs", i)).get("ip"), ()) or ""
            for i, item in enumerate(pod_ips)
        )
    elif status.get("podIP"):
        ips = (str(status["podIP"]),)
    elif meta.annotations.get("cni.projectcalico.org/podIPs"):
        ips = tuple(meta.annotations["cni.projectcalico.org/podIPs"].split(","))
    elif meta.annotations.get("cni.projectcalico.org/podIP"):
        ips = (meta.annotations["cni.projectcalico.org/podIP"],)
    # Calico stores /32 or /128 networks; the model keeps plain addresses.
    ips = tuple(ip.strip().split("/")[0] for ip in ips if ip.strip())
    return {
        "ips": ips,
        "ports": tuple(ports),
        "service_account": _opt_str(
            spec.get("serviceAccountName"), (*path, "spec", "serviceAccountName")
        )
        or "default",
        "node_name": _opt_str(spec.get("nodeName"), (*path, "spec", "nodeName")),
        "host_network": _bool(spec.get("hostNetwork"), (*path, "spec", "hostNetwork")),
    }


def _convert(doc: Mapping[str, Any], origin: Origin | None, path: Path) -> Resource:
    api = doc.get("apiVersion")
    kind = doc.get("kind")
    spec_path = (*path, "spec")
    if api in CALICO_API_GROUPS and kind in CALICO_KINDS:
        api_version = str(api)
        spec = _map(doc.get("spec"), spec_path)
        if kind == "GlobalNetworkSet":
            return GlobalNetworkSet(
                metadata=_metadata(doc, namespaced=False, path=path),
                api_version=api_version,
                origin=origin,
                nets=_strs(spec.get("nets"), (*spec_path, "nets")),
                allowed_egress_domains=_strs(
                    spec.get("allowedEgressDomains"), (*spec_path, "allowedEgressDomains")
                ),
            )
        if kind == "NetworkSet":
            return NetworkSet(
                metadata=_metadata(doc, namespaced=True, path=path),
                api_version=api_version,
                origin=origin,
                nets=_strs(spec.get("nets"), (*spec_path, "nets")),
                allowed_egress_domains=_strs(
                    spec.get("allowedEgressDomains"), (*spec_path, "allowedEgressDomains")
                ),
            )
        if kind == "Tier":
            default_action = spec.get("defaultAction")
            return Tier(
                metadata=_metadata(doc, namespaced=False, path=path),
                api_version=api_version,
                origin=origin,
                order=_opt_float(spec.get("order"), (*spec_path, "order")),
                default_action=Action(default_action) if default_action else None,
            )
        common = _policy_fields(spec, spec_path)
        if kind == "GlobalNetworkPolicy":
            return GlobalNetworkPolicy(
                metadata=_metadata(doc, namespaced=False, path=path),
                api_version=api_version,
                origin=origin,
                **common,
                **_global_fields(spec, spec_path),
            )
        if kind == "StagedGlobalNetworkPolicy":
            return StagedGlobalNetworkPolicy(
                metadata=_metadata(doc, namespaced=False, path=path),
                api_version=api_version,
                origin=origin,
                staged_action=_opt_str(spec.get("stagedAction"), (*spec_path, "stagedAction")),
                **common,
                **_global_fields(spec, spec_path),
            )
        if kind == "NetworkPolicy":
            return NetworkPolicy(
                metadata=_metadata(doc, namespaced=True, path=path),
                api_version=api_version,
                origin=origin,
                **common,
            )
        return StagedNetworkPolicy(
            metadata=_metadata(doc, namespaced=True, path=path),
            api_version=api_version,
            origin=origin,
            staged_action=_opt_str(spec.get("stagedAction"), (*spec_path, "stagedAction")),
            **common,
        )
    if api == K8S_NETWORKING_V1 and kind == "NetworkPolicy":
        spec = _map(doc.get("spec"), spec_path)
        pod_selector = _label_selector(spec.get("podSelector"), (*spec_path, "podSelector"))
        return KubernetesNetworkPolicy(
            metadata=_metadata(doc, namespaced=True, path=path),
            api_version=K8S_NETWORKING_V1,
            origin=origin,
            pod_selector=pod_selector or LabelSelector(),
            policy_types=_types(spec.get("policyTypes"), (*spec_path, "policyTypes")),
            ingress=_k8s_rules(spec.get("ingress"), "from", (*spec_path, "ingress")),
            egress=_k8s_rules(spec.get("egress"), "to", (*spec_path, "egress")),
        )
    if api == "v1" and kind == "Pod":
        meta = _metadata(doc, namespaced=True, path=path)
        return Pod(metadata=meta, api_version="v1", origin=origin, **_pod(doc, meta, path))
    if api == "v1" and kind == "Namespace":
        return Namespace(
            metadata=_metadata(doc, namespaced=False, path=path), api_version="v1", origin=origin
        )
    raise _Bad(path, f"{describe_kind(doc)} is not a kind egressguard understands")


def describe_kind(doc: Mapping[str, Any]) -> str:
    """``kind Deployment (apps/v1)`` for messages."""
    return f"kind {doc.get('kind')!r} ({doc.get('apiVersion')})"


def from_dict(data: Mapping[str, Any], origin: Origin | None = None) -> Resource:
    """Convert one manifest mapping to its resource *without validating it*.

    Raises ``ManifestError`` when the document cannot be represented (unknown kind, wrong
    types). Use ``load_documents`` for validation and problem collection.
    """
    try:
        return _convert(data, origin, ())
    except _Bad as exc:
        where = format_path(exc.path)
        raise ManifestError(f"{where + ': ' if where else ''}{exc.message}") from None


# --------------------------------------------------------------------------------------------
# The loaded set


@dataclass(frozen=True, slots=True)
class Manifests:
    """Everything loaded from a set of manifests, in input order, plus the problems found.

    Accessors return tuples in input order. ``policies`` are the *enforced* Calico policies,
    including Kubernetes NetworkPolicies converted the way Calico converts them; staged
    policies are in ``staged_policies`` only. Build one from resources with ``Manifests.of``
    (it converts the Kubernetes policies), not with the constructor.
    """

    resources: tuple[Resource, ...] = ()
    problems: tuple[Problem, ...] = ()
    #: Calico view of each ``KubernetesNetworkPolicy`` in ``resources``, same order.
    converted: tuple[NetworkPolicy, ...] = field(default=(), repr=False)

    @classmethod
    def of(cls, resources: Iterable[Resource], problems: Iterable[Problem] = ()) -> Manifests:
        res = tuple(resources)
        converted = tuple(k8s.to_calico(r) for r in res if isinstance(r, KubernetesNetworkPolicy))
        return cls(res, tuple(problems), converted)

    def __add__(self, other: Manifests) -> Manifests:
        return Manifests(
            self.resources + other.resources,
            self.problems + other.problems,
            self.converted + other.converted,
        )

    @property
    def ok(self) -> bool:
        return not self.problems

    def _of(self, kind: Any) -> tuple[Any, ...]:
        return tuple(r for r in self.resources if isinstance(r, kind))

    @property
    def global_network_sets(self) -> tuple[GlobalNetworkSet, ...]:
        return self._of(GlobalNetworkSet)

    @property
    def namespaced_network_sets(self) -> tuple[NetworkSet, ...]:
        return self._of(NetworkSet)

    @property
    def network_sets(self) -> tuple[GlobalNetworkSet | NetworkSet, ...]:
        """GlobalNetworkSets and NetworkSets together (both can be reached by rule selectors)."""
        return self._of(GlobalNetworkSet | NetworkSet)

    @property
    def global_network_policies(self) -> tuple[GlobalNetworkPolicy, ...]:
        return self._of(GlobalNetworkPolicy)

    @property
    def network_policies(self) -> tuple[NetworkPolicy, ...]:
        """Calico NetworkPolicies as written plus the converted Kubernetes ones."""
        return self._of(NetworkPolicy) + self.converted

    @property
    def kubernetes_network_policies(self) -> tuple[KubernetesNetworkPolicy, ...]:
        return self._of(KubernetesNetworkPolicy)

    @property
    def policies(self) -> tuple[GlobalNetworkPolicy | NetworkPolicy, ...]:
        """Every enforced policy: GNPs, Calico NPs and converted Kubernetes NPs."""
        return self._of(GlobalNetworkPolicy | NetworkPolicy) + self.converted

    @property
    def staged_policies(self) -> tuple[StagedGlobalNetworkPolicy | StagedNetworkPolicy, ...]:
        return self._of(StagedGlobalNetworkPolicy | StagedNetworkPolicy)

    @property
    def all_policies(self) -> tuple[Policy, ...]:
        return self.policies + self.staged_policies

    @property
    def tiers(self) -> tuple[Tier, ...]:
        """Tiers declared in the input (see ``effective_tiers`` for the built-in ones)."""
        return self._of(Tier)

    def effective_tiers(self) -> dict[str, Tier]:
        """Declared tiers plus the built-in ``default``, ``kube-admin`` and ``kube-baseline``
        where not declared, by name."""
        out = dict(BUILTIN_TIERS)
        for tier in self.tiers:
            out[tier.name] = tier
        return out

    @property
    def pods(self) -> tuple[Pod, ...]:
        return self._of(Pod)

    @property
    def namespaces(self) -> tuple[Namespace, ...]:
        return self._of(Namespace)

    def namespace(self, name: str) -> Namespace:
        """The declared namespace ``name``, or an implicit one with only its automatic label."""
        for ns in self.namespaces:
            if ns.name == name:
                return ns
        return Namespace.implicit(name)


# --------------------------------------------------------------------------------------------
# Loading


def _origin(doc: yamlio.Document) -> Origin:
    return Origin(file=doc.source, document=doc.index, line=doc.line, lines=doc.lines)


def load_documents(documents: Iterable[yamlio.Document], *, validate: bool = True) -> Manifests:
    """Validate and convert YAML documents; invalid ones are reported, not converted.

    ``validate=False`` skips Calico's validator (for trusted, rendered input): only documents
    that cannot be represented at all become problems.
    """
    resources: list[Resource] = []
    problems: list[Problem] = []
    seen: dict[tuple[str, str | None, str], Resource] = {}
    for doc in documents:
        origin = _origin(doc)
        for prefix, item in manifest_items(doc.data):
            if validate:
                found = check(item, prefix)
                if found:
                    problems.extend(doc.locate(problem, path) for path, problem in found)
                    continue
            try:
                resource = _convert(_map(item, prefix), origin, prefix)
            except _Bad as exc:
                problems.append(doc.locate(Problem(format_path(exc.path), exc.message), exc.path))
                continue
            if prefix:  # an item of a List: point at the item
                resource = _with_origin(resource, origin, prefix)
            previous = seen.get(resource.key)
            if previous is not None:
                first = f" (first at {previous.origin})" if previous.origin else ""
                problems.append(
                    doc.locate(
                        Problem(
                            format_path((*prefix, "metadata", "name")),
                            f"{resource.describe()} is defined twice{first}; the last one wins",
                        ),
                        (*prefix, "metadata", "name"),
                    )
                )
                resources.remove(previous)
            seen[resource.key] = resource
            resources.append(resource)
    return Manifests.of(resources, problems)


def _with_origin(resource: Resource, origin: Origin, prefix: Path) -> Resource:
    item_origin = Origin(
        file=origin.file,
        document=origin.document,
        line=origin.line_of(prefix),
        lines=origin.lines,
    )
    return replace(resource, origin=item_origin)


def load_text(text: str, source: str = "<string>", *, validate: bool = True) -> Manifests:
    """Load a (multi-document) YAML text; YAML syntax errors become one problem."""
    try:
        docs = yamlio.load_text(text, source)
    except ManifestError as exc:
        return Manifests(problems=(yaml_problem(source, exc),))
    return load_documents(docs, validate=validate)


def yaml_problem(source: str, exc: ManifestError) -> Problem:
    """A ``ManifestError`` of ``yamlio`` (syntax error, unreadable file) as a located problem."""
    if exc.source is None:
        return Problem("", exc.message, file=source, line=None, document=None)
    return Problem("", exc.reason, file=source, line=exc.line, document=None)


def expand_paths(paths: Iterable[str | FsPath]) -> list[FsPath]:
    """Files as given; directories expanded to their ``*.yaml``/``*.yml`` files, sorted."""
    out: list[FsPath] = []
    for raw in paths:
        p = FsPath(raw)
        if p.is_dir():
            out.extend(
                sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in (".yaml", ".yml"))
            )
        else:
            out.append(p)
    return out


def load_paths(paths: Sequence[str | FsPath], *, validate: bool = True) -> Manifests:
    """Load files and directories (recursively, ``*.yaml``/``*.yml``).

    A file that cannot be read or parsed becomes a problem; the other files still load.
    """
    docs: list[yamlio.Document] = []
    problems: list[Problem] = []
    for path in expand_paths(paths):
        try:
            docs.extend(yamlio.load_file(path))
        except ManifestError as exc:
            problems.append(yaml_problem(str(path), exc))
    loaded = load_documents(docs, validate=validate)
    return Manifests(loaded.resources, (*problems, *loaded.problems), loaded.converted)

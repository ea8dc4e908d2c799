"""Calico resources: the typed model, loading, dumping and validation.

Typical use::

    from egressguard import calico

    loaded = calico.load_paths(["examples/blog"])     # Manifests: resources + problems
    for problem in loaded.problems:
        print(problem)                                # file:line path: message
    for policy in loaded.policies:                    # GNPs, NPs, converted Kubernetes NPs
        print(policy.name, policy.order, policy.effective_types())

    calico.validate({"apiVersion": ..., "kind": ..., ...})   # list[Problem], empty when valid
    print(calico.dump(loaded.resources, api_version=calico.API_V3))

Modules: ``model`` (the dataclasses), ``load`` (YAML → ``Manifests``), ``k8s`` (Kubernetes
NetworkPolicy → Calico), ``dump`` (resources → canonical YAML), ``validate`` (Calico's
validator, every problem at once).
"""

from __future__ import annotations

from egressguard.calico.dump import dump, to_dict
from egressguard.calico.k8s import to_calico
from egressguard.calico.load import Manifests, from_dict, load_documents, load_paths, load_text
from egressguard.calico.model import (
    API_V1,
    API_V3,
    BUILTIN_TIERS,
    Action,
    ContainerPort,
    EntityRule,
    FrozenMap,
    GlobalNetworkPolicy,
    GlobalNetworkSet,
    HttpMatch,
    HttpPath,
    IcmpMatch,
    KubernetesNetworkPolicy,
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
from egressguard.calico.validate import validate, validate_documents

__all__ = [
    "API_V1",
    "API_V3",
    "BUILTIN_TIERS",
    "Action",
    "ContainerPort",
    "EntityRule",
    "FrozenMap",
    "GlobalNetworkPolicy",
    "GlobalNetworkSet",
    "HttpMatch",
    "HttpPath",
    "IcmpMatch",
    "KubernetesNetworkPolicy",
    "Manifests",
    "Metadata",
    "Namespace",
    "NetworkPolicy",
    "NetworkSet",
    "Origin",
    "Pod",
    "Policy",
    "PolicyType",
    "Port",
    "Protocol",
    "Resource",
    "Rule",
    "ServiceAccountMatch",
    "ServiceMatch",
    "StagedGlobalNetworkPolicy",
    "StagedNetworkPolicy",
    "Tier",
    "dump",
    "from_dict",
    "load_documents",
    "load_paths",
    "load_text",
    "to_calico",
    "to_dict",
    "validate",
    "validate_documents",
]

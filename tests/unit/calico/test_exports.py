"""The public API of egressguard.calico is explicit: what ``__all__`` names exists."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "egressguard.calico",
    "egressguard.calico.model",
    "egressguard.calico.load",
    "egressguard.calico.k8s",
    "egressguard.calico.dump",
    "egressguard.calico.validate",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__all__, f"{name} has an empty __all__"
    for attr in module.__all__:
        assert hasattr(module, attr), f"{name}.{attr} is in __all__ but missing"


def test_package_surface() -> None:
    from egressguard import calico

    assert {
        "load_paths",
        "load_documents",
        "load_text",
        "Manifests",
        "validate",
        "validate_documents",
        "dump",
        "to_dict",
        "to_calico",
        "GlobalNetworkSet",
        "NetworkSet",
        "GlobalNetworkPolicy",
        "NetworkPolicy",
        "StagedGlobalNetworkPolicy",
        "StagedNetworkPolicy",
        "KubernetesNetworkPolicy",
        "Tier",
        "Pod",
        "Namespace",
        "Rule",
        "EntityRule",
    } <= set(calico.__all__)

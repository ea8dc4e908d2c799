"""The public API is small and explicit: each package's ``__all__`` names what users import."""

from __future__ import annotations

import importlib

import pytest

import egressguard

PUBLIC = {
    "egressguard": {"__version__"},
    "egressguard.errors": {
        "ConfigError",
        "DataplaneError",
        "EgressguardError",
        "EnvironmentProblem",
        "InputError",
        "KubeError",
        "ManifestError",
        "SafetyError",
        "SelectorError",
        "SourceError",
        "UsageError",
    },
    "egressguard.problems": {"Path", "Problem", "format_path"},
    "egressguard.yamlio": {"Document", "dump_documents", "load_file", "load_text"},
}


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_exported_members(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert set(module.__all__) == PUBLIC[module_name]
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.{name} is in __all__ but missing"


def test_version_is_a_string() -> None:
    assert egressguard.__version__.count(".") == 2

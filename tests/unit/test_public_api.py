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
    "egressguard.yamlio": {"Document", "dump_documents", "load_file", "load_text", "nearest_line"},
}


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_exported_members(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert set(module.__all__) == PUBLIC[module_name]
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.{name} is in __all__ but missing"


def test_every_module_declares_what_it_exports() -> None:
    """Every module has an ``__all__`` and every name in it exists (CONVENTIONS 7)."""
    import pkgutil

    for info in pkgutil.walk_packages(egressguard.__path__, "egressguard."):
        if info.name.endswith("__main__"):
            continue  # running it starts the CLI
        module = importlib.import_module(info.name)
        exported = getattr(module, "__all__", None)
        assert exported is not None, f"{info.name} has no __all__"
        missing = [name for name in exported if not hasattr(module, name)]
        assert not missing, f"{info.name}.__all__ names missing members {missing}"


def test_version_is_a_string() -> None:
    assert egressguard.__version__.count(".") == 2

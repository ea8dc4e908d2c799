"""The public names of the render package, the build use case and its config are explicit."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "egressguard.render.ownership": {
        "BLOCKLIST_LABEL",
        "CONTENT_HASH_ANNOTATION",
        "ENTRIES_ANNOTATION",
        "MANAGED_BY_LABEL",
        "MANAGED_BY_VALUE",
        "RANGE_ANNOTATION",
        "SOURCES_ANNOTATION",
        "content_hash",
        "ownership_labels",
        "stamp",
    },
    "egressguard.render.networksets": {
        "DEFAULT_MAX_BYTES",
        "DEFAULT_MAX_ENTRIES",
        "Shard",
        "ShardLimits",
        "bucket_name",
        "generic_manifest_text",
        "manifest_text",
        "plan_shards",
        "render_network_sets",
        "shard_manifest",
    },
    "egressguard.render.policies": {
        "DEFAULT_TIER_NAME",
        "DEFAULT_TIER_ORDER",
        "PolicySettings",
        "check_policies",
        "endpoint_scope",
        "policy_resources",
        "render_policies",
        "set_selector",
    },
    "egressguard.app.config": {
        "API_VERSION",
        "DEFAULT_INTERVAL",
        "KIND",
        "SCHEMA_RESOURCE",
        "BlocklistConfig",
        "ConfigProblems",
        "ProtectConfig",
        "SafetyConfig",
        "SourceConfig",
        "check_document",
        "load_config",
        "parse_config",
        "parse_duration",
        "schema",
    },
    "egressguard.app.build": {
        "CRITICAL",
        "LOCK_FILE",
        "PUBLIC_DNS",
        "SPECIAL_PURPOSE",
        "BuildRefused",
        "BuildResult",
        "Changes",
        "PreviousBuild",
        "SafetyCheck",
        "SourceOutcome",
        "Subtraction",
        "build",
        "read_previous",
        "write",
    },
    "egressguard.adapters.outdir": {"LocalManifestDir", "ManifestDir", "MemoryManifestDir"},
}


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_exported_members(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert set(module.__all__) == PUBLIC[module_name]
    for name in module.__all__:
        assert hasattr(module, name)


def test_the_render_package_reexports_its_modules() -> None:
    from egressguard import render

    expected = set().union(
        *(PUBLIC[f"egressguard.render.{m}"] for m in ("ownership", "networksets", "policies"))
    ) - {"generic_manifest_text"}
    assert set(render.__all__) == expected

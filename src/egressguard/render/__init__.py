"""Blocklist → Calico manifests: network-set shards and the policies that use them.

Pure functions over values; nothing here reads or writes files.

* :mod:`~egressguard.render.networksets` - ``render_network_sets``: an ``AddressSet`` to
  GlobalNetworkSet shards cut on fixed address-space boundaries (stable names, bounded size).
* :mod:`~egressguard.render.policies` - ``PolicySettings``, ``render_policies`` (tier mode: Tier
  + Log/Deny/Pass policy; blog mode: the reference two policies) and ``check_policies`` (the
  "never default-deny all egress" safety net).
* :mod:`~egressguard.render.ownership` - ownership labels, annotation keys and the content hash.
"""

from __future__ import annotations

from egressguard.render.networksets import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ENTRIES,
    Shard,
    ShardLimits,
    bucket_name,
    manifest_text,
    plan_shards,
    render_network_sets,
    shard_manifest,
)
from egressguard.render.ownership import (
    BLOCKLIST_LABEL,
    CONTENT_HASH_ANNOTATION,
    ENTRIES_ANNOTATION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    RANGE_ANNOTATION,
    SOURCES_ANNOTATION,
    content_hash,
    ownership_labels,
    stamp,
)
from egressguard.render.policies import (
    DEFAULT_TIER_NAME,
    DEFAULT_TIER_ORDER,
    PolicySettings,
    check_policies,
    endpoint_scope,
    policy_resources,
    render_policies,
    set_selector,
)

__all__ = [
    "BLOCKLIST_LABEL",
    "CONTENT_HASH_ANNOTATION",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_ENTRIES",
    "DEFAULT_TIER_NAME",
    "DEFAULT_TIER_ORDER",
    "ENTRIES_ANNOTATION",
    "MANAGED_BY_LABEL",
    "MANAGED_BY_VALUE",
    "RANGE_ANNOTATION",
    "SOURCES_ANNOTATION",
    "PolicySettings",
    "Shard",
    "ShardLimits",
    "bucket_name",
    "check_policies",
    "content_hash",
    "endpoint_scope",
    "manifest_text",
    "ownership_labels",
    "plan_shards",
    "policy_resources",
    "render_network_sets",
    "render_policies",
    "set_selector",
    "shard_manifest",
    "stamp",
]

"""The labels and annotations that mark what egressguard renders, and the content hash.

Every object a build writes carries two ownership labels::

    app.kubernetes.io/managed-by: egressguard
    egressguard.io/blocklist: <blocklist name>

Cluster sync prunes by exactly these labels, so they must be on every object, and nothing else
may carry them. Each object also carries ``egressguard.io/content-hash``: a SHA-256 over what
egressguard sets on it (name, namespace, labels, other annotations and every top-level field
but ``apiVersion``/``metadata``/``status``). The API group is left out on purpose, so the same
build rendered for ``crd.projectcalico.org/v1`` and ``projectcalico.org/v3`` hashes alike, and a
sync can skip any object whose live hash is the one it would write; ``app.sync`` uses these
very definitions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final

__all__ = [
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
]

MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE: Final = "egressguard"
BLOCKLIST_LABEL: Final = "egressguard.io/blocklist"
CONTENT_HASH_ANNOTATION: Final = "egressguard.io/content-hash"
#: On the blocking policy: which version of every source went into this build (JSON).
SOURCES_ANNOTATION: Final = "egressguard.io/sources"
#: On each network-set shard: the address-space bucket it covers and how many entries it has.
RANGE_ANNOTATION: Final = "egressguard.io/range"
ENTRIES_ANNOTATION: Final = "egressguard.io/entries"


def ownership_labels(blocklist: str) -> dict[str, str]:
    """The two labels that mark an object as this blocklist's."""
    return {MANAGED_BY_LABEL: MANAGED_BY_VALUE, BLOCKLIST_LABEL: blocklist}


def _canonical(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    annotations = {
        key: value
        for key, value in (meta.get("annotations") or {}).items()
        if key != CONTENT_HASH_ANNOTATION
    }
    body = {
        key: value for key, value in obj.items() if key not in ("apiVersion", "metadata", "status")
    }
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "labels": meta.get("labels") or {},
        "annotations": annotations,
        "body": body,
    }


def content_hash(obj: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of the canonical JSON of ``obj``; ignores key order, the API group and
    an existing content-hash annotation."""
    text = json.dumps(_canonical(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def stamp(obj: dict[str, Any]) -> dict[str, Any]:
    """Set the content-hash annotation on ``obj`` (in place) and return it.

    Annotations are re-sorted by key so the rendered text does not depend on the order in which
    they were added.
    """
    meta = obj.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    annotations.pop(CONTENT_HASH_ANNOTATION, None)
    meta["annotations"] = annotations
    annotations[CONTENT_HASH_ANNOTATION] = content_hash(obj)
    meta["annotations"] = dict(sorted(annotations.items()))
    return obj

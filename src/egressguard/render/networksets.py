"""A blocklist's addresses → GlobalNetworkSet shards with stable names and bounded size.

Why shard. One GlobalNetworkSet holding a world-size list is several megabytes of YAML: above
etcd's request limit (1.5 MiB by default) and far above the 256 KiB that ``kubectl apply``
(client side) can store in its ``last-applied-configuration`` annotation. Every shard therefore
stays below ``ShardLimits.max_entries`` entries and ``max_bytes`` bytes of YAML (defaults 8,000
and 200,000, so ``kubectl apply -f`` works on the output as well as server-side apply). All
shards of a blocklist carry the same label, and the policy selects them by it.

Why this split. Shards are cut on **fixed address-space boundaries**, never by position in the
list: the address family starts as one bucket (``0.0.0.0/0`` or ``::/0``); a bucket whose
entries do not fit is split into its two aligned halves, recursively, and every non-empty
bucket that fits becomes one shard, named after the bucket::

    egress-blocklist-v4            the whole IPv4 space fits in one shard
    egress-blocklist-v4-96-3       96.0.0.0/3 (octets of the start as needed for the length)
    egress-blocklist-v4-192.168-16 192.168.0.0/16
    egress-blocklist-v6-2001.db8-32 2001:db8::/32

A CIDR of the canonical list is aligned, so it always falls inside exactly one half of any
bucket larger than itself: buckets and CIDRs nest, and no entry is ever split. The layout is a
pure function of the set (the same set always gives the same shards, byte for byte), and a
change to the set only rewrites the shards whose bucket holds a changed entry, plus the
neighbour halves when a bucket crosses the limit and splits (or merges back). Cutting by count
instead (``-000``, ``-001``, …) would shift every boundary after the first insertion and
rewrite nearly every shard for a one-line feed change.

Rendering is pure: it returns manifest dicts (``calico.dump.to_dict`` of the model objects,
stamped with the content hash) and the caller writes them.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from egressguard import yamlio
from egressguard.calico.dump import to_dict
from egressguard.calico.model import API_V1, FrozenMap, GlobalNetworkSet, Metadata
from egressguard.cidr.addresses import MAX_PREFIX, Cidr, Family
from egressguard.cidr.sets import AddressSet, CidrSet
from egressguard.render.ownership import (
    BLOCKLIST_LABEL,
    ENTRIES_ANNOTATION,
    RANGE_ANNOTATION,
    ownership_labels,
    stamp,
)

__all__ = [
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
]

DEFAULT_MAX_ENTRIES: Final = 8_000
DEFAULT_MAX_BYTES: Final = 200_000
#: YAML bytes of one ``nets`` item beyond the CIDR text: ``"  - "`` and the newline.
_ITEM_OVERHEAD: Final = 5
#: Room left for quoting the odd entry (PyYAML quotes a scalar that starts with ``:``).
_SLACK: Final = 256


@dataclass(frozen=True, slots=True)
class ShardLimits:
    """Upper bounds for one shard: entries in ``spec.nets`` and bytes of its YAML document."""

    max_entries: int = DEFAULT_MAX_ENTRIES
    max_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        if self.max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        if self.max_bytes < 4096:
            raise ValueError("max_bytes must be at least 4096")


@dataclass(frozen=True, slots=True)
class Shard:
    """One GlobalNetworkSet of a blocklist: its name, the address-space bucket it covers and
    its entries (canonical CIDR strings, ascending)."""

    name: str
    family: int
    bucket: Cidr
    nets: tuple[str, ...]

    @property
    def range(self) -> str:
        return str(self.bucket)


def bucket_name(blocklist: str, bucket: Cidr) -> str:
    """The shard name for ``bucket``: ``<blocklist>-v4`` for the whole family, else the groups of
    the start address the prefix length needs (octets for IPv4, hextets in hex for IPv6)
    joined by dots, then the length: ``<blocklist>-v4-192.168-16``, ``<blocklist>-v6-2001.db8-32``.

    The names are valid DNS-1123 subdomains (Calico's rule for GlobalNetworkSet names).
    """
    family = bucket.family
    base = f"{blocklist}-v{family}"
    if bucket.prefixlen == 0:
        return base
    bits = 8 if family == 4 else 16
    width = MAX_PREFIX[family]
    groups = -(-bucket.prefixlen // bits)
    values = [
        (bucket.network >> (width - bits * (i + 1))) & ((1 << bits) - 1) for i in range(groups)
    ]
    text = ".".join(str(v) if family == 4 else f"{v:x}" for v in values)
    return f"{base}-{text}-{bucket.prefixlen}"


def plan_shards(
    cidrs: Sequence[Cidr], strings: Sequence[str], limits: ShardLimits, *, overhead: int
) -> list[tuple[Cidr, int, int]]:
    """Split a canonical CIDR list (one family, ascending) into buckets that fit ``limits``.

    Returns ``(bucket, start, stop)`` slices of the list, ascending. ``overhead`` is the size of
    a shard's YAML without entries; an entry costs its text plus ``_ITEM_OVERHEAD`` bytes.
    """
    if not cidrs:
        return []
    family = cidrs[0].family
    width = MAX_PREFIX[family]
    starts = [c.network for c in cidrs]
    sizes = [0, *itertools.accumulate(len(s) + _ITEM_OVERHEAD for s in strings)]
    budget = limits.max_bytes - overhead - _SLACK
    out: list[tuple[Cidr, int, int]] = []

    def fits(lo: int, hi: int) -> bool:
        return hi - lo <= limits.max_entries and sizes[hi] - sizes[lo] <= budget

    def visit(network: int, prefixlen: int, lo: int, hi: int) -> None:
        if lo == hi:
            return
        # one entry always fits (limits are far above one CIDR); so does a bucket that *is* an
        # entry, because a canonical list holds nothing else inside it
        if fits(lo, hi) or hi - lo == 1 or prefixlen == width:
            out.append((Cidr(family, network, prefixlen), lo, hi))
            return
        half = network | (1 << (width - prefixlen - 1))
        mid = bisect.bisect_left(starts, half, lo, hi)
        visit(network, prefixlen + 1, lo, mid)
        visit(half, prefixlen + 1, mid, hi)

    visit(0, 0, 0, len(cidrs))
    return out


def shard_manifest(
    shard: Shard,
    *,
    blocklist: str,
    set_label: str = BLOCKLIST_LABEL,
    api_version: str = API_V1,
) -> dict[str, Any]:
    """The stamped GlobalNetworkSet manifest of one shard."""
    labels = ownership_labels(blocklist)
    labels[set_label] = blocklist
    annotations = {
        ENTRIES_ANNOTATION: str(len(shard.nets)),
        RANGE_ANNOTATION: shard.range,
    }
    gns = GlobalNetworkSet(
        metadata=Metadata(
            shard.name,
            labels=FrozenMap(sorted(labels.items())),
            annotations=FrozenMap(sorted(annotations.items())),
        ),
        api_version=api_version,
        nets=shard.nets,
    )
    return stamp(to_dict(gns, api_version))


def manifest_text(obj: Mapping[str, Any]) -> str:
    """One manifest as a YAML document (``---`` first), exactly as ``build`` writes it.

    A network set's entries are written directly rather than through PyYAML's representer
    (which costs about 20 µs per item): a CIDR made of hex digits, dots, colons and one slash
    is always a plain YAML scalar, so the text is the same byte for byte (a test compares the
    two on the world set). Anything else takes the generic path.
    """
    spec = obj.get("spec")
    nets = spec.get("nets") if isinstance(spec, Mapping) else None
    if (
        obj.get("kind") in ("GlobalNetworkSet", "NetworkSet")
        and isinstance(spec, Mapping)
        and list(spec) == ["nets"]
        and isinstance(nets, list | tuple)
        and nets
        and all(isinstance(n, str) and _PLAIN_CIDR.fullmatch(n) for n in nets)
    ):
        head = yamlio.dump_documents([{**obj, "spec": {"nets": ["0/0"]}}])
        if head.endswith(_PLACEHOLDER):
            body = "".join(f"  - {n}\n" for n in nets)
            return head[: -len(_PLACEHOLDER)] + "  nets:\n" + body
    return yamlio.dump_documents([obj])


def generic_manifest_text(obj: Mapping[str, Any]) -> str:
    """``manifest_text`` without the fast path (for tests and comparisons)."""
    return yamlio.dump_documents([obj])


_PLAIN_CIDR: Final = re.compile(r"[0-9a-f.:]+/[0-9]{1,3}")
_PLACEHOLDER: Final = "  nets:\n  - 0/0\n"


def _overhead(blocklist: str, family: Family, set_label: str, api_version: str) -> int:
    """Bytes of the largest possible empty shard of this blocklist (longest name and range)."""
    width = MAX_PREFIX[family]
    longest = Cidr(family, (1 << width) - 1 - ((1 << 4) - 1), width - 4)  # long name and range
    probe = Shard(bucket_name(blocklist, longest), family, longest, ())
    text = manifest_text(
        shard_manifest(probe, blocklist=blocklist, set_label=set_label, api_version=api_version)
    )
    # the probe has no ``nets:`` key and its entry count has one digit
    return len(text.encode()) + len("  nets:\n") + 8


def render_network_sets(
    blocklist: str,
    addresses: AddressSet,
    *,
    limits: ShardLimits | None = None,
    set_label: str = BLOCKLIST_LABEL,
    api_version: str = API_V1,
) -> tuple[list[Shard], list[dict[str, Any]]]:
    """Shard ``addresses`` (IPv4 first, then IPv6) and render one manifest per shard.

    Returns the shards and their stamped manifests, in the same order. An empty family gives
    no shard. Entries carry their prefix (``192.0.2.7/32``), as Calico writes them.
    """
    limits = limits or ShardLimits()
    shards: list[Shard] = []
    manifests: list[dict[str, Any]] = []
    for family_set in (addresses.v4, addresses.v6):
        shards.extend(_family_shards(blocklist, family_set, limits, set_label, api_version))
    for shard in shards:
        manifests.append(
            shard_manifest(shard, blocklist=blocklist, set_label=set_label, api_version=api_version)
        )
    return shards, manifests


def _family_shards(
    blocklist: str, family_set: CidrSet, limits: ShardLimits, set_label: str, api_version: str
) -> list[Shard]:
    if not family_set:
        return []
    cidrs = family_set.cidrs()
    strings = family_set.cidr_strings()
    overhead = _overhead(blocklist, family_set.family, set_label, api_version)
    return [
        Shard(bucket_name(blocklist, bucket), family_set.family, bucket, tuple(strings[lo:hi]))
        for bucket, lo, hi in plan_shards(cidrs, strings, limits, overhead=overhead)
    ]

"""Read our table back from ``nft -j list table inet egressguard`` output (already parsed JSON).

Only what ``diff`` and ``status`` need: each set's family and elements (as a canonical
``CidrSet``), the chain names, and the state marker written by :mod:`egressguard.nft.render`.
Rules are not decoded: the marker's structure digest says whether they are ours, unchanged.

The JSON format is libnftables' (``man libnftables-json``): a list under ``"nftables"`` of
objects keyed ``table``, ``set``, ``chain``, ``rule``; set elements are an address string, a
``{"prefix": {"addr", "len"}}``, a ``{"range": [first, last]}``, or any of those wrapped in
``{"elem": {"val": ...}}`` when the element carries extra data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from egressguard.cidr.addresses import Family, parse_address
from egressguard.cidr.sets import CidrSet
from egressguard.errors import DataplaneError
from egressguard.nft import ir, render

__all__ = ["KernelSet", "KernelTable", "from_json", "table_exists"]


@dataclass(frozen=True, slots=True)
class KernelSet:
    name: str
    type: str
    family: Family | None
    elements: CidrSet | None
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class KernelTable:
    """Our table as the kernel holds it."""

    sets: Mapping[str, KernelSet] = field(default_factory=dict)
    chains: tuple[str, ...] = ()
    base_chains: tuple[str, ...] = ()
    rule_count: int = 0
    marker_comment: str | None = None

    @property
    def marker(self) -> tuple[str, str] | None:
        return render.parse_marker(self.marker_comment)

    @property
    def structure(self) -> str | None:
        found = self.marker
        return found[0] if found else None

    @property
    def content(self) -> str | None:
        found = self.marker
        return found[1] if found else None

    def set_elements(self) -> dict[str, tuple[Family, CidrSet]]:
        return {
            s.name: (s.family, s.elements)
            for s in self.sets.values()
            if s.family is not None and s.elements is not None
        }

    def summary(self) -> dict[str, Any]:
        """A JSON-ready overview: set sizes, chains, the marker."""
        return {
            "sets": {
                name: {"type": s.type, "ranges": s.elements.range_count if s.elements else None}
                for name, s in sorted(self.sets.items())
            },
            "chains": list(self.chains),
            "base_chains": list(self.base_chains),
            "rules": self.rule_count,
            "marker": self.marker_comment,
        }


def _element_range(family: Family, value: Any) -> tuple[int, int]:
    if isinstance(value, Mapping) and "elem" in value:
        return _element_range(family, value["elem"]["val"])
    if isinstance(value, str):
        fam, address = parse_address(value)
        if fam != family:
            raise ValueError(value)
        return address, address
    if isinstance(value, Mapping) and "prefix" in value:
        fam, address = parse_address(value["prefix"]["addr"])
        bits = 32 if family == 4 else 128
        size = 1 << (bits - int(value["prefix"]["len"]))
        if fam != family:
            raise ValueError(value)
        return address, address + size - 1
    if isinstance(value, Mapping) and "range" in value:
        first = _element_range(family, value["range"][0])[0]
        last = _element_range(family, value["range"][1])[1]
        return first, last
    raise ValueError(value)


def from_json(document: Mapping[str, Any]) -> KernelTable:
    """Parse ``nft -j list table inet egressguard`` output into a :class:`KernelTable`."""
    try:
        items = document["nftables"]
    except (KeyError, TypeError) as exc:
        raise DataplaneError("nft JSON output has no 'nftables' list") from exc
    sets: dict[str, KernelSet] = {}
    chains: list[str] = []
    base: list[str] = []
    rules = 0
    marker_comment: str | None = None
    for item in items:
        if "set" in item:
            raw = item["set"]
            kind = raw.get("type")
            family = ir.set_family(kind) if isinstance(kind, str) else None
            elements: CidrSet | None = None
            if family is not None:
                try:
                    ranges = [_element_range(family, e) for e in raw.get("elem", [])]
                except (ValueError, KeyError, TypeError, IndexError) as exc:
                    raise DataplaneError(
                        f"set {raw.get('name')}: cannot read element {exc.args[0]!r}"
                    ) from exc
                elements = CidrSet.from_ranges(family, ranges)
            sets[raw["name"]] = KernelSet(
                raw["name"], str(kind), family, elements, tuple(raw.get("flags", ()))
            )
        elif "chain" in item:
            raw = item["chain"]
            chains.append(raw["name"])
            if "hook" in raw:
                base.append(raw["name"])
        elif "rule" in item:
            raw = item["rule"]
            rules += 1
            if raw.get("chain") == render.MARKER_CHAIN and marker_comment is None:
                marker_comment = raw.get("comment")
    return KernelTable(sets, tuple(chains), tuple(base), rules, marker_comment)


def table_exists(document: Mapping[str, Any] | None) -> bool:
    """Whether a listing holds our table (``None`` means ``nft`` said there is none)."""
    if document is None:
        return False
    return any(
        "table" in item and item["table"].get("name") == ir.TABLE_NAME
        for item in document.get("nftables", ())
    )

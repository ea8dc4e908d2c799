"""Compare two tables and choose the cheapest correct update.

* ``unchanged``: the same structure and the same elements; nothing to send.
* ``elements``: the same structure (sets' names and types, chains, rules), only set contents
  differ: delete the ranges that went away, add the ranges that are new, rewrite the marker.
  For a world-size set a 1% change touches 1% of the elements instead of reloading all.
* ``replace``: anything else (a rule, a chain or a set definition changed, or nothing is known
  about the current table): the full-replace script.

The old side is either a :class:`~egressguard.nft.ir.Table` (what the agent applied last) or a
:class:`~egressguard.nft.state.KernelTable` read back from the kernel; both give set elements as
canonical ranges and a structure digest, which is all the comparison needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from egressguard.cidr.addresses import Family
from egressguard.cidr.sets import CidrSet
from egressguard.nft import ir, render

__all__ = ["Plan", "SetChange", "TableView", "plan", "range_changes"]

Range = tuple[int, int]


@dataclass(frozen=True, slots=True)
class SetChange:
    """Ranges to delete from and to add to one set (exact canonical ranges)."""

    name: str
    family: Family
    removed: tuple[Range, ...]
    added: tuple[Range, ...]
    #: The same ranges as ``(n, 2)`` int64 arrays (IPv4), for encoders that want arrays.
    arrays: tuple[Any, Any] | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, object]:
        """How many ranges the set loses and gains (``nft diff -o json``, agent log lines)."""
        return {"set": self.name, "removed": len(self.removed), "added": len(self.added)}


class TableView(Protocol):
    """What ``plan`` needs to know about the current table."""

    @property
    def structure(self) -> str | None: ...

    def set_elements(self) -> dict[str, tuple[Family, CidrSet]]: ...


@dataclass(frozen=True, slots=True)
class _IrView:
    table: ir.Table

    @property
    def structure(self) -> str | None:
        return render.structure_digest(self.table)

    def set_elements(self) -> dict[str, tuple[Family, CidrSet]]:
        return {s.name: (s.family, s.elements) for s in self.table.sets}


@dataclass(frozen=True, slots=True)
class Plan:
    """The update from a current table to ``table``; ``script()`` is its ``nft -f`` text."""

    kind: Literal["unchanged", "elements", "replace"]
    table: ir.Table
    changes: tuple[SetChange, ...] = ()
    reason: str = ""

    @property
    def marker(self) -> str:
        return render.table_marker(self.table)

    def script(self) -> str:
        if self.kind == "unchanged":
            return ""
        if self.kind == "replace":
            return render.script(self.table)
        return render.update_script(
            ((c.name, c.family, c.removed, c.added) for c in self.changes), self.marker
        )

    def summary(self) -> dict[str, object]:
        """A JSON-ready description (for ``nft diff -o json`` and agent log lines)."""
        return {
            "kind": self.kind,
            "reason": self.reason,
            "sets": [c.to_json() for c in self.changes],
        }


def range_changes(old: CidrSet, new: CidrSet) -> tuple[tuple[Range, ...], tuple[Range, ...]]:
    """``(removed, added)``: ranges of ``old`` not exactly in ``new``, and the reverse.

    Vectorised for IPv4 (a world-size set has ~10^5 ranges). A range that grows, shrinks or
    splits appears once on each side.
    """
    if old.family != new.family:
        raise ValueError("range_changes needs two sets of one family")
    if old == new:
        return (), ()
    if old.family == 4:
        return _v4_changes(old, new)
    old_ranges = set(old.ranges())
    new_ranges = set(new.ranges())
    return tuple(sorted(old_ranges - new_ranges)), tuple(sorted(new_ranges - old_ranges))


def _v4_changes(old: CidrSet, new: CidrSet) -> tuple[tuple[Range, ...], tuple[Range, ...]]:
    gone, came = _v4_change_arrays(old, new)
    return _pairs(gone), _pairs(came)


def _pairs(ranges: Any) -> tuple[Range, ...]:
    return tuple(zip(ranges[:, 0].tolist(), ranges[:, 1].tolist(), strict=True))


def _v4_change_arrays(old: CidrSet, new: CidrSet) -> tuple[Any, Any]:
    """``(removed, added)`` as ``(n, 2)`` int64 arrays of inclusive ranges, ascending."""
    # Each range as one 64-bit key (first, last); both key lists are sorted (canonical ranges),
    # so a stable sort of the two lists together is one linear merge (timsort). A key seen
    # twice is a range of both sets; a key seen once is removed (old) or added (new).
    of, ol = old.range_arrays()
    nf, nl = new.range_arrays()
    shift = np.uint64(32)
    keys = np.concatenate(
        (
            of.astype(np.uint64) << shift | ol.astype(np.uint64),
            nf.astype(np.uint64) << shift | nl.astype(np.uint64),
        )
    )
    order = np.argsort(keys, kind="stable")
    merged = keys[order]
    twice = np.zeros(keys.shape[0], dtype=bool)
    same = merged[1:] == merged[:-1]
    twice[1:] |= same
    twice[:-1] |= same
    once = order[~twice]
    split = of.shape[0]
    gone = once[once < split]
    came = once[once >= split] - split
    return np.stack((of[gone], ol[gone]), axis=1), np.stack((nf[came], nl[came]), axis=1)


def plan(current: ir.Table | TableView | None, new: ir.Table) -> Plan:
    """The update that turns ``current`` into ``new`` (``None``: nothing known → replace)."""
    if current is None:
        return Plan("replace", new, reason="no current table")
    view: TableView = _IrView(current) if isinstance(current, ir.Table) else current
    structure = view.structure
    if structure is None:
        return Plan("replace", new, reason="the current table carries no egressguard marker")
    if structure != render.structure_digest(new):
        return Plan("replace", new, reason="rules, chains or set definitions changed")
    old_sets = view.set_elements()
    changes: list[SetChange] = []
    for item in new.sets:
        known = old_sets.get(item.name)
        if known is None or known[0] != item.family:
            # Cannot happen with equal structure digests unless the kernel was edited by hand.
            return Plan("replace", new, reason=f"set {item.name} differs from its definition")
        if item.family == 4 and known[1] != item.elements:
            gone, came = _v4_change_arrays(known[1], item.elements)
            changes.append(SetChange(item.name, 4, _pairs(gone), _pairs(came), arrays=(gone, came)))
            continue
        removed, added = range_changes(known[1], item.elements)
        if removed or added:
            changes.append(SetChange(item.name, item.family, removed, added))
    if not changes:
        return Plan("unchanged", new, reason="same rules and set contents")
    return Plan("elements", new, tuple(changes), reason="only set contents changed")

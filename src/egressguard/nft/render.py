"""Render the IR as ``nft -f`` text: one atomic transaction per script.

A full script replaces our table and nothing else::

    table inet egressguard            # create it if missing, so that the next line cannot fail
    delete table inet egressguard     # drop every old set, chain and rule of *our* table
    table inet egressguard { ... }    # the new sets (with elements) and chains

``nft -f`` sends the whole file as one netlink batch, so the kernel switches from the old
table to the new one in a single commit: no packet sees a half-built table, and when any line
fails (a syntax error, a bad reference, a kernel refusal) nothing changes at all. ``flush
table`` would not do: it empties the chains but keeps the old sets and chains, so a set whose
type changed could not be redefined. (Both checked with nft 1.0.6 on Linux 6.x.)

The script also carries a *state marker*, a one-rule chain ``egressguard_state`` whose rule
comment holds two digests: of the table's structure (everything but set elements) and of its
content (the elements). Readers of the kernel's table (``diff``, the agent after a restart)
learn from it, without listing 200k set elements, whether the kernel holds exactly what an IR
renders to. Element updates rewrite the marker in the same transaction (a rule rewrite costs
the kernel about 0.1 ms, measured; the set-element updates around it cost far more). The
digests are computed once per table (``table_marker``; ``ir.Table.memo`` keeps them).

Set elements are written as canonical ranges: a single address (``192.0.2.1``), a CIDR when
the range is one (``192.0.2.0/24``), else ``first-last``. The kernel stores an interval either
way; ranges keep the element count at the number of canonical ranges.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np

from egressguard.cidr.addresses import Family, format_address
from egressguard.cidr.sets import CidrSet
from egressguard.nft import ir

__all__ = [
    "MARKER_CHAIN",
    "MARKER_PREFIX",
    "content_digest",
    "element_texts",
    "marker",
    "match_text",
    "parse_marker",
    "range_text",
    "rule_text",
    "script",
    "structure_digest",
    "table_marker",
    "update_script",
]

#: The chain that carries the state marker (a regular chain nothing jumps to).
MARKER_CHAIN = "egressguard_state"
#: Start of the marker rule's comment; the version lets a later format be told apart.
MARKER_PREFIX = "egressguard/1"

_TABLE = f"{ir.TABLE_FAMILY} {ir.TABLE_NAME}"
_OCTETS = [str(i) for i in range(256)]


# ----------------------------------------------------------------------------- elements


def _v4(value: int) -> str:
    o = _OCTETS
    return f"{o[value >> 24]}.{o[(value >> 16) & 255]}.{o[(value >> 8) & 255]}.{o[value & 255]}"


def range_text(family: Family, first: int, last: int) -> str:
    """One interval as nft element text: an address, a CIDR or ``first-last``."""
    fmt = _v4 if family == 4 else (lambda v: format_address(6, v))
    if first == last:
        return fmt(first)
    size = last - first + 1
    if size & (size - 1) == 0 and first & (size - 1) == 0:
        bits = 32 if family == 4 else 128
        return f"{fmt(first)}/{bits - size.bit_length() + 1}"
    return f"{fmt(first)}-{fmt(last)}"


def element_texts(elements: CidrSet | Iterable[tuple[int, int]], family: Family) -> list[str]:
    """Element texts of canonical ranges, ascending."""
    ranges = elements.ranges() if isinstance(elements, CidrSet) else elements
    if family == 4:
        # The hot path of a world-size load: inline the common cases.
        out: list[str] = []
        append = out.append
        for first, last in ranges:
            if first == last:
                append(_v4(first))
                continue
            size = last - first + 1
            if size & (size - 1) == 0 and first & (size - 1) == 0:
                append(f"{_v4(first)}/{33 - size.bit_length()}")
            else:
                append(f"{_v4(first)}-{_v4(last)}")
        return out
    return [range_text(6, first, last) for first, last in ranges]


def _element_block(texts: Sequence[str], indent: str) -> str:
    joiner = ",\n" + indent
    return indent + joiner.join(texts)


# ------------------------------------------------------------------------------ matches


def _addr_proto(family: Family) -> str:
    return "ip" if family == 4 else "ip6"


def _op(negate: bool) -> str:
    return "!= " if negate else ""


def _anon(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def _port_range(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}-{hi}"


def match_text(match: ir.Match) -> str:
    """The nft text of one match expression."""
    if isinstance(match, ir.CtState):
        return "ct state " + ",".join(match.states)
    if isinstance(match, ir.NfProto):
        return f"meta nfproto ipv{match.family}"
    if isinstance(match, ir.L4Proto):
        return "meta l4proto " + _op(match.negate) + _anon([str(p) for p in match.protocols])
    if isinstance(match, ir.AddrInSet):
        return f"{_addr_proto(match.family)} {match.field} {_op(match.negate)}@{match.set_name}"
    if isinstance(match, ir.AddrInNets):
        texts = element_texts(match.nets, match.family)
        body = texts[0] if len(texts) == 1 and not match.negate else "{ " + ", ".join(texts) + " }"
        return f"{_addr_proto(match.family)} {match.field} {_op(match.negate)}{body}"
    if isinstance(match, ir.Ports):
        items = [_port_range(lo, hi) for lo, hi in match.ranges]
        return f"th {match.field} {_op(match.negate)}{_anon(items)}"
    if isinstance(match, ir.AddrPorts):
        triples = [
            f"{proto} . {range_text(match.family, first, last)} . {_port_range(lo, hi)}"
            for proto, first, last, lo, hi in match.entries
        ]
        return (
            f"meta l4proto . {_addr_proto(match.family)} {match.addr_field} . th "
            f"{match.port_field} {_op(match.negate)}{{ {', '.join(triples)} }}"
        )
    if isinstance(match, ir.Icmp):
        name = "icmp" if match.family == 4 else "icmpv6"
        if match.negate:
            # Not "icmp type != T": that carries the dependency "meta l4proto icmp".
            proto = 1 if match.family == 4 else 58
            if match.code is None:
                return f"meta l4proto . @th,0,8 != {{ {proto} . {match.type} }}"
            both = (match.type << 8) | match.code
            return f"meta l4proto . @th,0,16 != {{ {proto} . {both} }}"
        if match.code is None:
            return f"{name} type {match.type}"
        return f"{name} type {match.type} {name} code {match.code}"
    if isinstance(match, ir.IcmpTypes):
        name = "icmp" if match.family == 4 else "icmpv6"
        return f"{name} type " + _anon([str(t) for t in match.types])
    if isinstance(match, ir.IfName):
        return f'{match.direction} {_op(match.negate)}"{match.pattern}"'
    raise TypeError(f"not a match: {match!r}")  # pragma: no cover - exhaustive union


def _statement_text(statement: ir.Statement) -> str:
    text = f'log prefix "{statement.prefix}" level {statement.level}'
    if statement.limit is not None:
        lim = statement.limit
        text = f"limit rate {lim.rate}/{lim.unit} burst {lim.burst} packets {text}"
    return text


def _verdict_text(verdict: ir.Verdict) -> str:
    return verdict.kind if verdict.target is None else f"{verdict.kind} {verdict.target}"


def rule_text(rule: ir.Rule) -> str:
    """One rule as a single line of nft text."""
    parts = [match_text(m) for m in rule.matches]
    parts += [_statement_text(s) for s in rule.statements]
    if rule.verdict is not None:
        parts.append(_verdict_text(rule.verdict))
    if rule.comment is not None:
        parts.append(f'comment "{rule.comment}"')
    return " ".join(parts)


# ------------------------------------------------------------------------------- tables


def _set_lines(item: ir.IntervalSet, *, with_elements: bool) -> list[str]:
    lines = [f"\tset {item.name} {{", f"\t\ttype {item.type}", "\t\tflags interval"]
    if item.comment:
        lines.append(f'\t\tcomment "{item.comment}"')
    if with_elements and item.elements:
        lines.append("\t\telements = {")
        lines.append(_element_block(element_texts(item.elements, item.family), "\t\t\t"))
        lines.append("\t\t}")
    lines.append("\t}")
    return lines


def _chain_lines(chain: ir.Chain) -> list[str]:
    lines = [f"\tchain {chain.name} {{"]
    if chain.hook is not None:
        h = chain.hook
        lines.append(f"\t\ttype {h.type} hook {h.hook} priority {h.priority}; policy {h.policy};")
    lines.extend(f"\t\t{rule_text(rule)}" for rule in chain.rules)
    lines.append("\t}")
    return lines


def _body_lines(table: ir.Table, *, with_elements: bool) -> list[str]:
    lines: list[str] = []
    for item in table.sets:
        lines.extend(_set_lines(item, with_elements=with_elements))
    for chain in table.dependency_order():
        lines.extend(_chain_lines(chain))
    return lines


def structure_digest(table: ir.Table) -> str:
    """16 hex digits over everything but set elements (sets' names/types, chains, rules)."""
    found = table.memo.get("structure")
    if found is None:
        text = "\n".join(_body_lines(table, with_elements=False))
        found = table.memo["structure"] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return found


def _range_bytes(elements: CidrSet) -> bytes:
    first, last = elements.range_arrays()
    dtype = "<i8" if elements.family == 4 else "<u8"
    return (
        np.ascontiguousarray(first, dtype=dtype).tobytes()
        + np.ascontiguousarray(last, dtype=dtype).tobytes()
    )


def content_digest(sets: Iterable[ir.IntervalSet]) -> str:
    """16 hex digits over every set's name and elements (order of ``sets`` does not matter)."""
    h = hashlib.sha256()
    for item in sorted(sets, key=lambda s: s.name):
        h.update(f"{item.name}\0{item.family}\0{item.elements.range_count}\0".encode())
        h.update(_range_bytes(item.elements))
    return h.hexdigest()[:16]


def marker(structure: str, content: str) -> str:
    """The marker comment for a table with these digests."""
    return f"{MARKER_PREFIX} structure={structure} content={content}"


def table_marker(table: ir.Table) -> str:
    """``marker(structure_digest(table), content_digest(table.sets))``, computed once per table
    (hashing a 200k-range set takes milliseconds, and an update compares markers often)."""
    found = table.memo.get("marker")
    if found is None:
        found = table.memo["marker"] = marker(structure_digest(table), content_digest(table.sets))
    return found


def parse_marker(comment: str | None) -> tuple[str, str] | None:
    """``(structure, content)`` from a marker comment; ``None`` if it is not one of ours."""
    if comment is None:
        return None
    parts = comment.split(" ")
    if len(parts) != 3 or parts[0] != MARKER_PREFIX:
        return None
    fields = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    if set(fields) != {"structure", "content"}:
        return None
    return fields["structure"], fields["content"]


def _marker_chain_lines(comment: str) -> list[str]:
    return [f"\tchain {MARKER_CHAIN} {{", f'\t\treturn comment "{comment}"', "\t}"]


def script(table: ir.Table) -> str:
    """The full-replace transaction for ``table`` (see the module docstring)."""
    name = f"{table.family} {table.name}"
    stamp = table_marker(table)
    lines = [
        f"table {name}",
        f"delete table {name}",
        f"table {name} {{",
        *_body_lines(table, with_elements=True),
        *_marker_chain_lines(stamp),
        "}",
    ]
    return "\n".join(lines) + "\n"


def update_script(
    changes: Iterable[tuple[str, Family, Sequence[tuple[int, int]], Sequence[tuple[int, int]]]],
    new_marker: str,
    *,
    table: str = _TABLE,
) -> str:
    """An element-only transaction: ``(set, family, removed, added)`` ranges, then the marker.

    Deletions come first: within one transaction the kernel ignores elements deleted earlier
    in it when checking an added interval for overlap, so a range may grow, shrink or move.
    """
    changes = list(changes)
    lines: list[str] = []
    for set_name, family, removed, _added in changes:
        if removed:
            lines.append(f"delete element {table} {set_name} {{")
            lines.append(_element_block(element_texts(removed, family), "\t"))
            lines.append("}")
    for set_name, family, _removed, added in changes:
        if added:
            lines.append(f"add element {table} {set_name} {{")
            lines.append(_element_block(element_texts(added, family), "\t"))
            lines.append("}")
    lines.append(f"flush chain {table} {MARKER_CHAIN}")
    lines.append(f'add rule {table} {MARKER_CHAIN} return comment "{new_marker}"')
    return "\n".join(lines) + "\n"

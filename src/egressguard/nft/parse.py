"""Read back the ``nft -f`` dialect that :mod:`egressguard.nft.render` writes.

This is not a general nft parser. It understands exactly the commands egressguard emits (the
full-replace script, element updates, marker rewrites, ``delete table``) with their line
layout, and turns them into :class:`Command` values. The in-package fake nftables
(``egressguard.adapters.nftables.FakeNftables``) executes those commands against an in-memory
table, so unit tests can exercise apply/diff/agent logic without a kernel; anything outside the
dialect is reported as a syntax error with its line number, as ``nft`` would.

Element texts are decoded to inclusive integer ranges: ``192.0.2.1``, ``192.0.2.0/24``,
``192.0.2.0-192.0.2.9`` (IPv6 likewise).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from egressguard.cidr.addresses import Family, parse_address, parse_cidr

__all__ = ["ChainDef", "Command", "ParseError", "SetDef", "element_range", "parse_script"]


class ParseError(ValueError):
    """A line of the script is outside the dialect; ``line`` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


@dataclass
class SetDef:
    name: str
    type: str
    flags: tuple[str, ...] = ()
    comment: str = ""
    elements: list[str] = field(default_factory=list)
    line: int = 0


@dataclass
class ChainDef:
    name: str
    hook: str | None = None
    priority: int | None = None
    policy: str | None = None
    rules: list[tuple[int, str]] = field(default_factory=list)
    line: int = 0


CommandKind = Literal[
    "add_table",
    "delete_table",
    "define_table",
    "add_element",
    "delete_element",
    "flush_chain",
    "add_rule",
]


@dataclass
class Command:
    kind: CommandKind
    line: int
    family: str
    table: str
    target: str = ""  # set or chain name
    elements: list[str] = field(default_factory=list)
    rule: str = ""
    sets: list[SetDef] = field(default_factory=list)
    chains: list[ChainDef] = field(default_factory=list)


_IDENT = r"[A-Za-z_][A-Za-z0-9_.-]*"
_TABLE = re.compile(rf"^table (inet|ip|ip6) ({_IDENT})( \{{)?$")
_DELETE_TABLE = re.compile(rf"^delete table (inet|ip|ip6) ({_IDENT})$")
_ELEMENT = re.compile(rf"^(add|delete) element (inet|ip|ip6) ({_IDENT}) ({_IDENT}) \{{(.*)$")
_FLUSH_CHAIN = re.compile(rf"^flush chain (inet|ip|ip6) ({_IDENT}) ({_IDENT})$")
_ADD_RULE = re.compile(rf"^add rule (inet|ip|ip6) ({_IDENT}) ({_IDENT}) (.+)$")
_SET = re.compile(rf"^set ({_IDENT}) \{{$")
_CHAIN = re.compile(rf"^chain ({_IDENT}) \{{$")
_HOOK = re.compile(r"^type filter hook (\w+) priority (-?\d+|filter); policy (accept|drop);$")
_COMMENT = re.compile(r'^comment "([^"]*)"$')


def element_range(text: str, family: Family) -> tuple[int, int]:
    """``192.0.2.0/24`` → ``(first, last)``; raises ``ValueError`` for a bad element."""
    text = text.strip()
    if "/" in text:
        cidr = parse_cidr(text, strict=True)
        if cidr.family != family:
            raise ValueError(f"{text} is not an IPv{family} element")
        return cidr.first, cidr.last
    if "-" in text:
        low, high = text.split("-", 1)
        fam_a, first = parse_address(low)
        fam_b, last = parse_address(high)
        if fam_a != family or fam_b != family or first > last:
            raise ValueError(f"{text} is not an IPv{family} range")
        return first, last
    fam, value = parse_address(text)
    if fam != family:
        raise ValueError(f"{text} is not an IPv{family} element")
    return value, value


class _Lines:
    def __init__(self, text: str) -> None:
        self.items = [(n, raw.strip()) for n, raw in enumerate(text.splitlines(), start=1)]
        self.pos = 0

    def next(self) -> tuple[int, str]:
        while self.pos < len(self.items):
            item = self.items[self.pos]
            self.pos += 1
            if item[1] and not item[1].startswith("#"):
                return item
        last = self.items[-1][0] if self.items else 0
        raise ParseError(last, "unexpected end of file")

    def done(self) -> bool:
        while self.pos < len(self.items) and (
            not self.items[self.pos][1] or self.items[self.pos][1].startswith("#")
        ):
            self.pos += 1
        return self.pos >= len(self.items)


def _element_list(lines: _Lines, first: str) -> list[str]:
    """Elements after an opening ``{`` up to the closing ``}`` (one or many lines)."""
    out: list[str] = []
    chunk = first
    while True:
        closing = chunk.endswith("}")
        body = chunk[:-1] if closing else chunk
        out.extend(part.strip() for part in body.split(",") if part.strip())
        if closing:
            return out
        chunk = lines.next()[1]


def _parse_set(lines: _Lines, name: str, line: int) -> SetDef:
    result = SetDef(name, "", line=line)
    while True:
        number, text = lines.next()
        if text == "}":
            if not result.type:
                raise ParseError(line, f"set {name} has no type")
            return result
        if text.startswith("type "):
            result.type = text[5:]
        elif text.startswith("flags "):
            result.flags = tuple(f.strip() for f in text[6:].split(","))
        elif m := _COMMENT.match(text):
            result.comment = m.group(1)
        elif text.startswith("elements = {"):
            result.elements = _element_list(lines, text[len("elements = {") :].strip())
        else:
            raise ParseError(number, f"unexpected line in set {name}: {text}")


def _parse_chain(lines: _Lines, name: str, line: int) -> ChainDef:
    result = ChainDef(name, line=line)
    while True:
        number, text = lines.next()
        if text == "}":
            return result
        if m := _HOOK.match(text):
            if result.rules or result.hook is not None:
                raise ParseError(number, "the hook must be the first line of a chain")
            result.hook = m.group(1)
            result.priority = 0 if m.group(2) == "filter" else int(m.group(2))
            result.policy = m.group(3)
        else:
            result.rules.append((number, text))


def _parse_table_block(lines: _Lines, cmd: Command) -> None:
    while True:
        number, text = lines.next()
        if text == "}":
            return
        if m := _SET.match(text):
            cmd.sets.append(_parse_set(lines, m.group(1), number))
        elif m := _CHAIN.match(text):
            cmd.chains.append(_parse_chain(lines, m.group(1), number))
        else:
            raise ParseError(number, f"unexpected line in table {cmd.table}: {text}")


def parse_script(text: str) -> list[Command]:
    """The commands of a script, in order; raises :class:`ParseError`."""
    lines = _Lines(text)
    commands: list[Command] = []
    while not lines.done():
        number, line = lines.next()
        if m := _TABLE.match(line):
            if m.group(3):
                cmd = Command("define_table", number, m.group(1), m.group(2))
                _parse_table_block(lines, cmd)
            else:
                cmd = Command("add_table", number, m.group(1), m.group(2))
            commands.append(cmd)
        elif m := _DELETE_TABLE.match(line):
            commands.append(Command("delete_table", number, m.group(1), m.group(2)))
        elif m := _ELEMENT.match(line):
            kind: CommandKind = "add_element" if m.group(1) == "add" else "delete_element"
            elements = _element_list(lines, m.group(5).strip())
            commands.append(
                Command(kind, number, m.group(2), m.group(3), m.group(4), elements=elements)
            )
        elif m := _FLUSH_CHAIN.match(line):
            commands.append(Command("flush_chain", number, m.group(1), m.group(2), m.group(3)))
        elif m := _ADD_RULE.match(line):
            commands.append(
                Command("add_rule", number, m.group(1), m.group(2), m.group(3), rule=m.group(4))
            )
        else:
            raise ParseError(number, f"syntax error: {line}")
    return commands

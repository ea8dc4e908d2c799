"""The nftables adapter: apply our scripts, read our table back, remove it.

``Nftables`` is the seam. ``NftCli`` is the real one: ``nft`` run with argument lists (inside a
network namespace through ``ip netns exec NS``) and, for element updates, one nfnetlink batch
(:mod:`egressguard.adapters.nfnetlink`; ``nft`` 1.0.6 would first fetch every element of a
large set). ``FakeNftables`` is the in-package fake, an in-memory kernel in the spirit of
kubernetes-sigs/knftables' ``fake.go``: it executes the dialect egressguard writes with the
kernel's all-or-nothing semantics and its refusals (overlapping intervals, deleting a missing
element, jumping to a missing chain), so unit tests of apply/diff/agent logic need no root.

Every method touches only the table ``inet egressguard``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from egressguard.adapters import nfnetlink
from egressguard.adapters.netns import NetnsRunner, SubprocessNetnsRunner
from egressguard.cidr.addresses import Family
from egressguard.errors import DataplaneError
from egressguard.nft import diff, ir, parse, render, state

__all__ = ["FakeNftables", "NftCli", "Nftables", "nft_error"]

_TABLE_ARGS = [ir.TABLE_FAMILY, ir.TABLE_NAME]
_FLUSH_SCRIPT = (
    f"table {ir.TABLE_FAMILY} {ir.TABLE_NAME}\ndelete table {ir.TABLE_FAMILY} {ir.TABLE_NAME}\n"
)


class Nftables(Protocol):
    """Apply and inspect our table in one network namespace (``netns``; ``None``: ours)."""

    netns: str | None

    def apply(self, script: str) -> None:
        """Run ``script`` as one transaction; on failure nothing changes (``DataplaneError``)."""

    def check(self, script: str) -> None:
        """Dry run (``nft -c``): raise ``DataplaneError`` if the kernel would refuse it."""

    def list_table(self) -> dict[str, Any] | None:
        """``nft -j list table inet egressguard`` as JSON; ``None`` if there is no table."""

    def flush(self) -> bool:
        """Remove our table (only ours); ``True`` if there was one."""

    def update(self, plan: diff.Plan) -> None:
        """Apply an ``elements`` plan as element deletions/additions plus the marker, atomically."""

    def read_marker(self) -> str | None:
        """The marker comment of the table in the kernel, cheaply; ``None`` if none."""

    def close(self) -> None:
        """Release what the adapter keeps open between calls (a netlink socket)."""


_NFT_ERROR = re.compile(
    r"^(?P<where>[^:\n]*):(?P<line>\d+):(?P<cols>[\d-]+): Error: (?P<msg>.*)$", re.MULTILINE
)


def nft_error(stderr: str, script: str | None, *, action: str) -> DataplaneError:
    """A ``DataplaneError`` from nft's stderr: its first error, the line, and that line's text."""
    found = _NFT_ERROR.search(stderr)
    if found is None:
        text = stderr.strip() or "no message"
        return DataplaneError(f"nft {action} failed: {text}", hint=_hint(text))
    line = int(found.group("line"))
    message = found.group("msg").strip()
    shown = ""
    if script is not None:
        lines = script.splitlines()
        if 0 < line <= len(lines):
            snippet = lines[line - 1].strip()
            shown = f": {snippet[:120]}" if snippet else ""
    return DataplaneError(
        f"nft {action} failed at script line {line}: {message}{shown}",
        hint=_hint(message) or "nothing was changed: the previous ruleset is still in place",
    )


def _json(output: bytes) -> dict[str, Any]:
    try:
        document: dict[str, Any] = json.loads(output)
    except ValueError as exc:
        raise DataplaneError(f"nft -j printed no valid JSON: {exc}") from exc
    return document


def _hint(text: str) -> str | None:
    if "Operation not permitted" in text:
        return "run as root (nftables needs CAP_NET_ADMIN)"
    if "overlaps" in text:
        return "two elements of one interval set overlap; egressguard's own scripts never do this"
    if "No such file or directory" in text:
        return "a table, chain or set named in the script does not exist"
    return None


class NftCli:
    """The real adapter: the ``nft`` binary plus nfnetlink element batches.

    Element updates and marker reads share one netlink socket per adapter, opened at first
    use (entering a namespace costs a thread and ``setns``; the agent would pay it on every
    update); ``close()`` releases it.
    """

    def __init__(
        self,
        netns: str | None = None,
        *,
        runner: NetnsRunner | None = None,
        nft: str = "nft",
        timeout: float = 120.0,
        netlink: bool = True,
    ) -> None:
        self.netns = netns
        self.runner = runner or SubprocessNetnsRunner()
        self.nft = nft
        self.timeout = timeout
        self.netlink = netlink
        self._link: nfnetlink.NfNetlink | None = None

    @property
    def link(self) -> nfnetlink.NfNetlink:
        """The netlink channel of this adapter: one socket, opened at first use and reused."""
        if self._link is None:
            self._link = nfnetlink.NfNetlink(self.netns, timeout=self.timeout)
        return self._link

    def close(self) -> None:
        """Close the netlink socket, if one is open (the next call opens another)."""
        if self._link is not None:
            self._link.close()

    def _run(self, args: Sequence[str], *, script: str | None = None, action: str) -> bytes:
        result = self.runner.run(
            self.netns,
            [self.nft, *args],
            input=script.encode() if script is not None else None,
            timeout=self.timeout,
            check=False,
        )
        if result.returncode != 0:
            raise nft_error(result.stderr.decode("utf-8", "replace"), script, action=action)
        return result.stdout

    def apply(self, script: str) -> None:
        if script:
            self._run(["-f", "-"], script=script, action="apply")

    def check(self, script: str) -> None:
        if script:
            self._run(["-c", "-f", "-"], script=script, action="check")

    def list_table(self) -> dict[str, Any] | None:
        result = self.runner.run(
            self.netns,
            [self.nft, "-j", "list", "table", *_TABLE_ARGS],
            timeout=self.timeout,
            check=False,
        )
        if result.returncode != 0:
            err = result.stderr.decode("utf-8", "replace")
            if "No such file or directory" in err:
                return None
            raise nft_error(err, None, action="list")
        return _json(result.stdout)

    def flush(self) -> bool:
        tables = self._run(["-j", "list", "tables", ir.TABLE_FAMILY], action="list")
        existed = state.table_exists(_json(tables))
        if existed:
            self._run(["-f", "-"], script=_FLUSH_SCRIPT, action="flush")
        return existed

    def update(self, plan: diff.Plan) -> None:
        if plan.kind == "unchanged":
            return
        if plan.kind != "elements" or not self.netlink:
            self.apply(plan.script())
            return
        batches = [
            nfnetlink.ElementBatch(c.name, c.family, *(c.arrays or (c.removed, c.added)))
            for c in plan.changes
        ]
        self.link.update_elements(ir.TABLE_NAME, batches, marker=(render.MARKER_CHAIN, plan.marker))

    def read_marker(self) -> str | None:
        comments = self.link.rule_comments(ir.TABLE_NAME, render.MARKER_CHAIN)
        return comments[0] if comments else None


# ------------------------------------------------------------------------------ the fake


@dataclass
class _FakeSet:
    name: str
    type: str
    family: Family
    flags: tuple[str, ...]
    comment: str
    ranges: dict[int, int] = field(default_factory=dict)  # first -> last

    def overlaps(self, first: int, last: int) -> bool:
        return any(f <= last and first <= la for f, la in self.ranges.items())


@dataclass
class _FakeChain:
    name: str
    hook: str | None
    priority: int | None
    policy: str | None
    rules: list[str] = field(default_factory=list)


@dataclass
class _FakeTable:
    sets: dict[str, _FakeSet] = field(default_factory=dict)
    chains: dict[str, _FakeChain] = field(default_factory=dict)


_SET_REF = re.compile(r"@([A-Za-z_][A-Za-z0-9_.-]*)")
_JUMP = re.compile(r"\b(?:jump|goto) ([A-Za-z_][A-Za-z0-9_.-]*)")
_COMMENT = re.compile(r' comment "([^"]*)"$')


class FakeNftables:
    """An in-memory nftables holding any number of tables; commits all or nothing.

    ``applied`` lists every script that committed, ``updates`` every element plan; set
    ``fail_next`` to an error message to make the next change fail (as a kernel refusal), or
    ``refuse`` to make every change fail until it is cleared.
    ``dump()`` prints the tables back in the dialect of :mod:`egressguard.nft.render`.
    """

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self.tables: dict[tuple[str, str], _FakeTable] = {}
        self.applied: list[str] = []
        self.updates: list[diff.Plan] = []
        self.fail_next: str | None = None
        self.refuse: str | None = None

    # -- protocol -----------------------------------------------------------------------

    def apply(self, script: str) -> None:
        if not script:
            return
        self._maybe_fail()
        try:
            commands = parse.parse_script(script)
        except parse.ParseError as exc:
            raise DataplaneError(
                f"nft apply failed at script line {exc.line}: {exc.message}"
            ) from exc
        work = copy.deepcopy(self.tables)
        for command in commands:
            self._execute(work, command)
        for table in work.values():
            self._validate(table)
        self.tables = work
        self.applied.append(script)

    def check(self, script: str) -> None:
        saved_tables, saved_applied = self.tables, list(self.applied)
        try:
            self.apply(script)
        finally:
            self.tables, self.applied = saved_tables, saved_applied

    def list_table(self) -> dict[str, Any] | None:
        table = self.tables.get((ir.TABLE_FAMILY, ir.TABLE_NAME))
        if table is None:
            return None
        items: list[dict[str, Any]] = [
            {"metainfo": {"version": "fake", "json_schema_version": 1}},
            {"table": {"family": ir.TABLE_FAMILY, "name": ir.TABLE_NAME}},
        ]
        for item in table.sets.values():
            raw: dict[str, Any] = {
                "family": ir.TABLE_FAMILY,
                "name": item.name,
                "table": ir.TABLE_NAME,
                "type": item.type,
                "flags": list(item.flags),
            }
            if item.comment:
                raw["comment"] = item.comment
            if item.ranges:
                raw["elem"] = [
                    _json_element(item.family, f, la) for f, la in sorted(item.ranges.items())
                ]
            items.append({"set": raw})
        for chain in table.chains.values():
            raw = {"family": ir.TABLE_FAMILY, "table": ir.TABLE_NAME, "name": chain.name}
            if chain.hook is not None:
                raw.update(type="filter", hook=chain.hook, prio=chain.priority, policy=chain.policy)
            items.append({"chain": raw})
        for chain in table.chains.values():
            for text in chain.rules:
                rule: dict[str, Any] = {
                    "family": ir.TABLE_FAMILY,
                    "table": ir.TABLE_NAME,
                    "chain": chain.name,
                    "expr": [],
                    "egressguard_fake_text": text,
                }
                found = _COMMENT.search(text)
                if found:
                    rule["comment"] = found.group(1)
                items.append({"rule": rule})
        return {"nftables": items}

    def flush(self) -> bool:
        self._maybe_fail()
        return self.tables.pop((ir.TABLE_FAMILY, ir.TABLE_NAME), None) is not None

    def update(self, plan: diff.Plan) -> None:
        if plan.kind == "unchanged":
            return
        if plan.kind != "elements":
            self.apply(plan.script())
            return
        self._maybe_fail()
        work = copy.deepcopy(self.tables)
        table = work.get((ir.TABLE_FAMILY, ir.TABLE_NAME))
        if table is None:
            raise DataplaneError("nftables refused to update elements: the table does not exist")
        for change in plan.changes:
            target = table.sets.get(change.name)
            if target is None:
                raise DataplaneError(f"nftables refused to update set {change.name}: no such set")
            for first, last in change.removed:
                if target.ranges.get(first) != last:
                    raise DataplaneError(
                        f"nftables refused to delete elements of set {change.name}: "
                        "an element to delete does not exist"
                    )
                del target.ranges[first]
        for change in plan.changes:
            target = table.sets[change.name]
            for first, last in change.added:
                if target.overlaps(first, last):
                    raise DataplaneError(
                        f"nftables refused to add elements of set {change.name}: "
                        "an added interval overlaps an element already in the set"
                    )
                target.ranges[first] = last
        marker_chain = table.chains.get(render.MARKER_CHAIN)
        if marker_chain is None:
            raise DataplaneError(
                f"nftables refused to flush chain {render.MARKER_CHAIN}: no such chain"
            )
        marker_chain.rules = [f'return comment "{plan.marker}"']
        self.tables = work
        self.updates.append(plan)

    def close(self) -> None:
        """Nothing is held open; kept for the protocol."""

    def read_marker(self) -> str | None:
        table = self.tables.get((ir.TABLE_FAMILY, ir.TABLE_NAME))
        if table is None or render.MARKER_CHAIN not in table.chains:
            return None
        for text in table.chains[render.MARKER_CHAIN].rules:
            found = _COMMENT.search(text)
            if found:
                return found.group(1)
        return None

    # -- helpers ------------------------------------------------------------------------

    def dump(self) -> str:
        """All tables in nft text (sorted ranges, rules as written)."""
        out: list[str] = []
        for (family, name), table in sorted(self.tables.items()):
            out.append(f"table {family} {name} {{")
            for item in table.sets.values():
                out.append(f"\tset {item.name} {{")
                out.append(f"\t\ttype {item.type}")
                if item.flags:
                    out.append(f"\t\tflags {','.join(item.flags)}")
                if item.ranges:
                    texts = [
                        render.range_text(item.family, f, la)
                        for f, la in sorted(item.ranges.items())
                    ]
                    out.append("\t\telements = { " + ", ".join(texts) + " }")
                out.append("\t}")
            for chain in table.chains.values():
                out.append(f"\tchain {chain.name} {{")
                if chain.hook is not None:
                    out.append(
                        f"\t\ttype filter hook {chain.hook} priority {chain.priority}; "
                        f"policy {chain.policy};"
                    )
                out.extend(f"\t\t{rule}" for rule in chain.rules)
                out.append("\t}")
            out.append("}")
        return "\n".join(out) + ("\n" if out else "")

    def _maybe_fail(self) -> None:
        if self.refuse is not None:
            raise DataplaneError(self.refuse)
        if self.fail_next is not None:
            message, self.fail_next = self.fail_next, None
            raise DataplaneError(message)

    @staticmethod
    def _error(command: parse.Command, message: str) -> DataplaneError:
        return DataplaneError(f"nft apply failed at script line {command.line}: {message}")

    def _execute(self, work: dict[tuple[str, str], _FakeTable], command: parse.Command) -> None:
        key = (command.family, command.table)
        if command.kind == "add_table":
            work.setdefault(key, _FakeTable())
            return
        if command.kind == "delete_table":
            if key not in work:
                raise self._error(command, "No such file or directory (table)")
            del work[key]
            return
        if command.kind == "define_table":
            table = work.setdefault(key, _FakeTable())
            for item in command.sets:
                family = ir.set_family(item.type)
                if family is None:
                    raise self._error(command, f"set {item.name}: unsupported type {item.type}")
                if item.name in table.sets:
                    raise self._error(command, f"set {item.name} exists")
                made = _FakeSet(item.name, item.type, family, item.flags, item.comment)
                table.sets[item.name] = made
                self._add_elements(command, made, item.elements)
            for chain in command.chains:
                if chain.name in table.chains:
                    raise self._error(command, f"chain {chain.name} exists")
                table.chains[chain.name] = _FakeChain(
                    chain.name,
                    chain.hook,
                    chain.priority,
                    chain.policy,
                    [text for _, text in chain.rules],
                )
            return
        table_or_none = work.get(key)
        if table_or_none is None:
            raise self._error(command, "No such file or directory (table)")
        table = table_or_none
        if command.kind in ("add_element", "delete_element"):
            target = table.sets.get(command.target)
            if target is None:
                raise self._error(command, f"No such file or directory (set {command.target})")
            if command.kind == "add_element":
                self._add_elements(command, target, command.elements)
            else:
                for text in command.elements:
                    first, last = self._element(command, target, text)
                    if target.ranges.get(first) != last:
                        raise self._error(command, f"element does not exist: {text}")
                    del target.ranges[first]
            return
        found = table.chains.get(command.target)
        if found is None:
            raise self._error(command, f"No such file or directory (chain {command.target})")
        if command.kind == "flush_chain":
            found.rules = []
        else:
            found.rules.append(command.rule)

    def _element(self, command: parse.Command, target: _FakeSet, text: str) -> tuple[int, int]:
        try:
            return parse.element_range(text, target.family)
        except ValueError as exc:
            raise self._error(command, f"bad element {text!r}: {exc}") from exc

    def _add_elements(self, command: parse.Command, target: _FakeSet, texts: list[str]) -> None:
        if texts and "interval" not in target.flags:
            raise self._error(command, f"set {target.name} needs flags interval")
        for text in texts:
            first, last = self._element(command, target, text)
            if target.ranges.get(first) == last:
                continue  # adding an existing element is not an error (no NLM_F_EXCL)
            if target.overlaps(first, last):
                raise self._error(command, f"interval overlaps with an existing one: {text}")
            target.ranges[first] = last

    @staticmethod
    def _validate(table: _FakeTable) -> None:
        for chain in table.chains.values():
            for text in chain.rules:
                for ref in _SET_REF.findall(text):
                    if ref not in table.sets:
                        raise DataplaneError(
                            f"nft apply failed: chain {chain.name}: set {ref} does not exist"
                        )
                for target in _JUMP.findall(text):
                    if target not in table.chains:
                        raise DataplaneError(
                            f"nft apply failed: chain {chain.name}: chain {target} does not exist"
                        )


def _json_element(family: Family, first: int, last: int) -> Any:
    text = render.range_text(family, first, last)
    if "/" in text:
        addr, length = text.split("/")
        return {"prefix": {"addr": addr, "len": int(length)}}
    if "-" in text:
        low, high = text.split("-", 1)
        return {"range": [low, high]}
    return text

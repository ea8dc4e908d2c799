"""The selector syntax tree: immutable, hashable nodes that print in Calico's canonical form.

Every node is a frozen, slotted dataclass, so nodes compare and hash by structure and can be
shared freely (the parser caches them). ``str(node)`` is Calico's canonical text
(``libcalico-go/lib/selector/parser/ast.go``, ``collectFragments``):

* ``key == "v"``, ``key != "v"``, ``key contains "v"``, ``key starts with "v"``,
  ``key ends with "v"``: a value is quoted with ``"``, or with ``'`` when it contains ``"``;
* ``key in {"a", "b"}`` / ``key not in {}``: members sorted and de-duplicated (the node
  normalises them when it is built, so ``In("k", ("b", "a", "a")) == In("k", ("a", "b"))``);
* ``has(key)``, ``all()``, ``global()``;
* ``!operand``; ``(a && b && c)`` and ``(a || b)``: every AND and OR group is parenthesised.

Two deliberate differences keep the promise "the canonical text re-parses to the same tree"
(and so "printing is idempotent"), which Calico's printer breaks:

* ``Not(Not(x))`` prints as ``!(!x)``. The parser builds it from ``!(!x)`` (a parenthesised
  negation inside a negation; a run ``!!x`` collapses instead). Calico prints it as ``!!x``,
  which it re-parses as plain ``x``: same meaning, different tree, different text. Only for
  such selectors does ``str()`` (and so ``Selector.unique_id()``) differ from Calico's.
* ``And``/``Or`` need at least two operands (the parser never builds fewer).

Constructors validate what the printer relies on: a label key is 1..512 characters from
``[A-Za-z0-9_./-]`` and a value may not contain both quote characters (the language has no
escapes, so such a value cannot be written). A violation raises ``ValueError``.

Each node also has ``evaluate(labels)``: the reference semantics, written for clarity. The
hot path uses :func:`egressguard.selector.compiler.compile_matcher`, which property tests
check against ``evaluate``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TypeAlias

__all__ = [
    "MAX_KEY_LENGTH",
    "All",
    "And",
    "Contains",
    "EndsWith",
    "Eq",
    "Global",
    "Has",
    "In",
    "KeyedNode",
    "Ne",
    "Node",
    "Not",
    "NotIn",
    "Or",
    "StartsWith",
    "is_valid_key",
    "keys",
    "map_keys",
    "quote",
    "transform",
    "walk",
]

#: Longest label key the tokenizer accepts (``tokenizer.MaxLabelLength`` in Calico).
MAX_KEY_LENGTH = 512

_KEY_RE = re.compile(r"[A-Za-z0-9_./-]{1,%d}" % MAX_KEY_LENGTH)  # noqa: UP031 (regex braces)


def is_valid_key(key: str) -> bool:
    """True when ``key`` can be written as a label key in a selector."""
    return _KEY_RE.fullmatch(key) is not None


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not is_valid_key(key):
        raise ValueError(
            f"invalid selector label key {key!r}: use 1..{MAX_KEY_LENGTH} characters "
            "from A-Z a-z 0-9 _ . / -"
        )


def _check_value(value: str) -> None:
    if not isinstance(value, str):
        raise ValueError(f"selector value must be a string, not {type(value).__name__}")
    if '"' in value and "'" in value:
        raise ValueError(
            f"selector value {value!r} contains both quote characters; selector string "
            "literals have no escapes, so it cannot be written"
        )


def quote(value: str) -> str:
    """Quote a value as Calico prints it: ``"v"``, or ``'v'`` when ``v`` contains ``"``."""
    q = "'" if '"' in value else '"'
    return f"{q}{value}{q}"


# --- leaves -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class All:
    """``all()``: true for every label map (also what an empty selector means)."""

    def __str__(self) -> str:
        return "all()"

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Global:
    """``global()``: evaluates like ``all()``.

    Its meaning comes from the rewrite Calico applies when it is the whole ``namespaceSelector``
    of an EntityRule: ``!has(projectcalico.org/namespace)`` (see
    :mod:`egressguard.selector.rewrite`).
    """

    def __str__(self) -> str:
        return "global()"

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Has:
    """``has(key)``: the label is present (any value, including the empty string)."""

    key: str

    def __post_init__(self) -> None:
        _check_key(self.key)

    def __str__(self) -> str:
        return f"has({self.key})"

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return self.key in labels


@dataclass(frozen=True, slots=True)
class _KeyValue:
    """Base of the comparisons of one label with one string literal."""

    key: str
    value: str

    def __post_init__(self) -> None:
        _check_key(self.key)
        _check_value(self.value)


@dataclass(frozen=True, slots=True)
class Eq(_KeyValue):
    """``key == "v"``: false when the label is missing."""

    def __str__(self) -> str:
        return f"{self.key} == {quote(self.value)}"

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return labels.get(self.key) == self.value


@dataclass(frozen=True, slots=True)
class Ne(_KeyValue):
    """``key != "v"``: **true** when the label is missing."""

    def __str__(self) -> str:
        return f"{self.key} != {quote(self.value)}"

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return labels.get(self.key) != self.value


@dataclass(frozen=True, slots=True)
class Contains(_KeyValue):
    """``key contains "v"``: substring test, false when the label is missing."""

    def __str__(self) -> str:
        return f"{self.key} contains {quote(self.value)}"

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.key)
        return actual is not None and self.value in actual


@dataclass(frozen=True, slots=True)
class StartsWith(_KeyValue):
    """``key starts with "v"`` (also spelt ``startswith``): false when the label is missing."""

    def __str__(self) -> str:
        return f"{self.key} starts with {quote(self.value)}"

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.key)
        return actual is not None and actual.startswith(self.value)


@dataclass(frozen=True, slots=True)
class EndsWith(_KeyValue):
    """``key ends with "v"`` (also spelt ``endswith``): false when the label is missing."""

    def __str__(self) -> str:
        return f"{self.key} ends with {quote(self.value)}"

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.key)
        return actual is not None and actual.endswith(self.value)


@dataclass(frozen=True, slots=True)
class _KeySet:
    """Base of the set tests; ``values`` is normalised to a sorted tuple without duplicates."""

    key: str
    values: tuple[str, ...]

    def __post_init__(self) -> None:
        _check_key(self.key)
        given: object = self.values
        if isinstance(given, str):
            raise ValueError("set values must be a collection of strings, not one string")
        values = tuple(sorted(set(self.values)))
        for value in values:
            _check_value(value)
        object.__setattr__(self, "values", values)

    def _members(self) -> str:
        return ", ".join(quote(value) for value in self.values)


@dataclass(frozen=True, slots=True)
class In(_KeySet):
    """``key in {"a", "b"}``: false when the label is missing; ``{}`` never matches."""

    def __str__(self) -> str:
        return f"{self.key} in {{{self._members()}}}"

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.key)
        return actual is not None and actual in self.values


@dataclass(frozen=True, slots=True)
class NotIn(_KeySet):
    """``key not in {"a"}`` (also ``notin``): **true** when the label is missing."""

    def __str__(self) -> str:
        return f"{self.key} not in {{{self._members()}}}"

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.key)
        return actual is None or actual not in self.values


# --- operators --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Not:
    """``!operand``. The parser collapses ``!!!x`` to ``Not(x)`` and ``!!x`` to ``x``, but
    ``!(!x)`` is ``Not(Not(x))`` and prints as such (see the module docstring)."""

    operand: Node

    def __str__(self) -> str:
        if isinstance(self.operand, Not):
            return f"!({self.operand})"
        return f"!{self.operand}"

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return not self.operand.evaluate(labels)


@dataclass(frozen=True, slots=True)
class _Group:
    operands: tuple[Node, ...]

    def __post_init__(self) -> None:
        operands = tuple(self.operands)
        if len(operands) < 2:
            raise ValueError(f"{type(self).__name__} needs at least two operands")
        object.__setattr__(self, "operands", operands)


@dataclass(frozen=True, slots=True)
class And(_Group):
    """``(a && b && ...)``: a run of ``&&`` at one nesting level is one node."""

    def __str__(self) -> str:
        return "(" + " && ".join(str(op) for op in self.operands) + ")"

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return all(op.evaluate(labels) for op in self.operands)


@dataclass(frozen=True, slots=True)
class Or(_Group):
    """``(a || b || ...)``: a run of ``||`` at one nesting level is one node."""

    def __str__(self) -> str:
        return "(" + " || ".join(str(op) for op in self.operands) + ")"

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return any(op.evaluate(labels) for op in self.operands)


#: Any selector tree node.
Node: TypeAlias = (
    All | Global | Has | Eq | Ne | Contains | StartsWith | EndsWith | In | NotIn | Not | And | Or
)

#: The nodes that name exactly one label key (everything but all(), global() and operators).
KeyedNode: TypeAlias = Has | Eq | Ne | Contains | StartsWith | EndsWith | In | NotIn

_KEYED = (Has, Eq, Ne, Contains, StartsWith, EndsWith, In, NotIn)


# --- traversal and rewriting ------------------------------------------------------------------


def walk(node: Node) -> Iterator[Node]:
    """Every node of the tree, pre-order (a node before its operands, operands left to right)."""
    stack: list[Node] = [node]
    while stack:
        current = stack.pop()
        yield current
        if isinstance(current, Not):
            stack.append(current.operand)
        elif isinstance(current, And | Or):
            stack.extend(reversed(current.operands))


def transform(node: Node, fn: Callable[[Node], Node]) -> Node:
    """Rebuild the tree bottom-up: ``fn`` sees each node after its operands were rewritten.

    ``fn`` returns the node to use in its place (the node itself to keep it).
    """
    if isinstance(node, Not):
        operand = transform(node.operand, fn)
        return fn(node if operand is node.operand else Not(operand))
    if isinstance(node, And | Or):
        operands = tuple(transform(op, fn) for op in node.operands)
        changed = any(new is not old for new, old in zip(operands, node.operands, strict=True))
        return fn(type(node)(operands) if changed else node)
    return fn(node)


def map_keys(node: Node, fn: Callable[[str], str]) -> Node:
    """Replace every label key ``k`` by ``fn(k)``; raises ``ValueError`` for an invalid result."""

    def rekey(current: Node) -> Node:
        if isinstance(current, _KEYED):
            new_key = fn(current.key)
            return current if new_key == current.key else replace(current, key=new_key)
        return current

    return transform(node, rekey)


def keys(node: Node) -> frozenset[str]:
    """Every label key the tree mentions, whatever the operator."""
    return frozenset(n.key for n in walk(node) if isinstance(n, _KEYED))

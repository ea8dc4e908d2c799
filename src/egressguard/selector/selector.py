"""``Selector``: a parsed, compiled Calico selector, and ``parse``, its cached constructor.

A ``Selector`` is an immutable value around a tree (:mod:`egressguard.selector.nodes`). It
compiles the tree once to a fast matcher, prints in Calico's canonical form, compares and
hashes by that form, and offers the questions other components ask: which keys does it use or
require, is it ``all()`` / ``global()``, what is it with keys rewritten or ANDed with another.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from typing import Any

from egressguard.selector import nodes
from egressguard.selector.analysis import LabelRestriction, label_restrictions
from egressguard.selector.compiler import compile_matcher
from egressguard.selector.nodes import All, And, Global, Node, Not, Or
from egressguard.selector.parser import parse_node

__all__ = ["PARSE_CACHE_SIZE", "Selector", "and_", "parse"]

#: How many distinct selector texts :func:`parse` remembers.
PARSE_CACHE_SIZE = 8192


class Selector:
    """A parsed Calico selector.

    Build one with :func:`parse` (from text) or ``Selector(node)`` (from a tree). Equal
    selectors have equal canonical text and equal trees.
    """

    __slots__ = ("_canonical", "_hash", "_root", "matches")

    #: ``matches(labels) -> bool``: True when the labels satisfy the selector (a missing label
    #: is handled per spec §4.3). It is the compiled function itself, stored on the instance,
    #: so a call costs no extra Python frame: this is the evaluator's hot path.
    matches: Callable[[Mapping[str, str]], bool]
    _root: Node
    _canonical: str
    _hash: int

    def __init__(self, root: Node) -> None:
        canonical = str(root)
        init = object.__setattr__
        init(self, "_root", root)
        init(self, "_canonical", canonical)
        init(self, "_hash", hash(canonical))
        init(self, "matches", compile_matcher(root))

    # -- matching -------------------------------------------------------------------------------

    @property
    def matcher(self) -> Callable[[Mapping[str, str]], bool]:
        """The compiled function behind :attr:`matches` (the same object)."""
        return self.matches

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Selector is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Selector is immutable")

    # -- identity -------------------------------------------------------------------------------

    @property
    def root(self) -> Node:
        """The syntax tree."""
        return self._root

    def __str__(self) -> str:
        return self._canonical

    def __repr__(self) -> str:
        return f"<Selector {self._canonical!r}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Selector):
            return NotImplemented
        return self._canonical == other._canonical

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[Any, ...]:
        return (Selector, (self._root,))

    def unique_id(self) -> str:
        """Calico's ``UniqueID()``: ``"s:"`` + URL-safe base64 SHA-224 of ``"s:" + str(self)``.

        Felix names a selector's IP set after it (``libcalico-go/lib/hash/hash.go``).
        """
        digest = hashlib.sha224(f"s:{self._canonical}".encode()).digest()
        return "s:" + base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")

    # -- questions ------------------------------------------------------------------------------

    def is_all(self) -> bool:
        """True when the whole selector is ``all()`` (also the empty selector)."""
        return isinstance(self._root, All)

    def is_global(self) -> bool:
        """True when the whole selector is ``global()`` (blanks and parentheses allowed)."""
        return isinstance(self._root, Global)

    def contains_global(self) -> bool:
        """True when ``global()`` occurs anywhere in the selector."""
        return any(isinstance(node, Global) for node in nodes.walk(self._root))

    def walk(self) -> Iterator[Node]:
        """Every node, pre-order."""
        return nodes.walk(self._root)

    def keys(self) -> frozenset[str]:
        """Every label key the selector mentions."""
        return nodes.keys(self._root)

    def label_restrictions(self) -> Mapping[str, LabelRestriction]:
        """Per key, what every matched label map satisfies (sound, not complete)."""
        return label_restrictions(self._root)

    def required_keys(self) -> frozenset[str]:
        """Keys present on every label map the selector matches (sound, not complete)."""
        return frozenset(k for k, r in self.label_restrictions().items() if r.must_be_present)

    def never_matches(self) -> bool:
        """True when the label restrictions prove that nothing matches (``a == "x" && a ==
        "y"``, ``has(a) && !has(a)``). False means "not proven", not "matches something"."""
        return any(r.impossible for r in self.label_restrictions().values())

    # -- building new selectors -----------------------------------------------------------------

    def transform(self, fn: Callable[[Node], Node]) -> Selector:
        """A selector whose tree is rebuilt bottom-up by ``fn`` (see ``nodes.transform``)."""
        root = nodes.transform(self._root, fn)
        return self if root is self._root else Selector(root)

    def map_keys(self, fn: Callable[[str], str]) -> Selector:
        """A selector with every label key ``k`` replaced by ``fn(k)``.

        Raises ``ValueError`` when a new key is not a valid label key (too long, bad characters).
        """
        root = nodes.map_keys(self._root, fn)
        return self if root is self._root else Selector(root)

    def prefix_keys(self, prefix: str) -> Selector:
        """Every label key prefixed, like Calico's ``PrefixVisitor`` (``pcns.``, ``pcsa.``)."""
        return self.map_keys(lambda key: prefix + key)

    def __and__(self, other: Selector) -> Selector:
        if not isinstance(other, Selector):
            return NotImplemented
        return and_(self, other)

    def __or__(self, other: Selector) -> Selector:
        if not isinstance(other, Selector):
            return NotImplemented
        return Selector(Or((self._root, other._root)))

    def __invert__(self) -> Selector:
        """The negation. A top-level ``!`` is removed rather than doubled, so ``~parse("!x")``
        is ``parse("x")`` and ``~~s == s`` unless ``s`` itself is a double negation."""
        if isinstance(self._root, Not):
            return Selector(self._root.operand)
        return Selector(Not(self._root))


def and_(first: Selector, second: Selector) -> Selector:
    """Both selectors must match: the tree Calico builds for ``"(first) && (second)"``.

    Operands are kept whole, so ``and_(parse("a == 'x' && b == 'y'"), parse("has(c)"))`` prints
    as ``((a == "x" && b == "y") && has(c))``, the canonical form Felix gives that string.
    """
    if not isinstance(first, Selector) or not isinstance(second, Selector):
        raise TypeError("and_() combines two Selector values")
    return Selector(And((first.root, second.root)))


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def parse(text: str) -> Selector:
    """Parse Calico selector text; the empty or blank selector means ``all()``.

    Raises ``egressguard.errors.SelectorError`` (a ``ValueError``) with the 1-based ``column``
    of the problem, and ``TypeError`` when ``text`` is not a string.
    Results are cached by text, so calling this in a loop is cheap.
    """
    if not isinstance(text, str):
        raise TypeError(f"a selector must be a string, not {type(text).__name__}")
    return Selector(parse_node(text))

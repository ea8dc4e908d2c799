"""What a selector demands of the labels it matches: presence, absence, allowed values.

:func:`label_restrictions` answers questions such as "which label keys must a matching entity
carry" (``lint``, the evaluator's indexes) without enumerating label maps. It follows the idea
of Calico's ``LabelRestrictions`` (``libcalico-go/lib/selector/parser/ast.go``; vectors in
``label_restriction_test.go``) and agrees with every one of Calico's test vectors, but it also
looks through negations: ``!(a != "x")`` requires ``a == "x"`` and ``!(has(a) || b == "y")``
requires ``a`` to be absent, where Calico gives up on any ``!`` other than ``!has(k)``.

The result is sound, never complete: every restriction reported holds for every label map the
selector matches; a selector may demand more than is reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from egressguard.selector.nodes import (
    All,
    And,
    Contains,
    EndsWith,
    Eq,
    Global,
    Has,
    In,
    Ne,
    Node,
    Not,
    NotIn,
    Or,
    StartsWith,
)

__all__ = ["LabelRestriction", "label_restrictions"]


@dataclass(frozen=True, slots=True)
class LabelRestriction:
    """What a selector demands of one label.

    ``one_of`` is ``None`` when the value is not constrained, otherwise the values the label may
    have; an empty ``one_of``, or ``must_be_present`` together with ``must_be_absent``, proves
    the selector can never match.
    """

    must_be_present: bool = False
    must_be_absent: bool = False
    one_of: frozenset[str] | None = None

    @property
    def impossible(self) -> bool:
        """True when no value of this label (nor its absence) satisfies the restriction."""
        return (self.must_be_present and self.must_be_absent) or self.one_of == frozenset()


Restrictions = dict[str, LabelRestriction]


def label_restrictions(node: Node) -> Mapping[str, LabelRestriction]:
    """Per label key, what every label map matched by ``node`` satisfies (see module doc)."""
    return _restrict(node, positive=True)


def _restrict(node: Node, *, positive: bool) -> Restrictions:
    """Restrictions that hold whenever ``node`` evaluates to ``positive``."""
    if isinstance(node, Not):
        return _restrict(node.operand, positive=not positive)
    if isinstance(node, And):
        parts = [_restrict(op, positive=positive) for op in node.operands]
        return _conjunction(parts) if positive else _disjunction(parts)
    if isinstance(node, Or):
        parts = [_restrict(op, positive=positive) for op in node.operands]
        return _disjunction(parts) if positive else _conjunction(parts)
    if isinstance(node, All | Global):
        return {}  # never false; when true it demands nothing
    # Leaves. "present" and "present with one of these values" are what a true Eq/In and a
    # false Ne/NotIn imply; a false has() implies absence.
    if positive:
        if isinstance(node, Eq):
            return {
                node.key: LabelRestriction(must_be_present=True, one_of=frozenset((node.value,)))
            }
        if isinstance(node, In):
            return {node.key: LabelRestriction(must_be_present=True, one_of=frozenset(node.values))}
        if isinstance(node, Has | Contains | StartsWith | EndsWith):
            return {node.key: LabelRestriction(must_be_present=True)}
        return {}  # Ne, NotIn: also true for a missing label
    if isinstance(node, Ne):
        return {node.key: LabelRestriction(must_be_present=True, one_of=frozenset((node.value,)))}
    if isinstance(node, NotIn):
        return {node.key: LabelRestriction(must_be_present=True, one_of=frozenset(node.values))}
    if isinstance(node, Has):
        return {node.key: LabelRestriction(must_be_absent=True)}
    return {}  # a false Eq/In/Contains/StartsWith/EndsWith allows a missing label


def _conjunction(parts: Iterable[Restrictions]) -> Restrictions:
    """All parts hold: demands add up, allowed values intersect."""
    out: Restrictions = {}
    for part in parts:
        for key, new in part.items():
            old = out.get(key)
            if old is None:
                out[key] = new
                continue
            if old.one_of is None:
                one_of = new.one_of
            elif new.one_of is None:
                one_of = old.one_of
            else:
                one_of = old.one_of & new.one_of
            out[key] = LabelRestriction(
                must_be_present=old.must_be_present or new.must_be_present,
                must_be_absent=old.must_be_absent or new.must_be_absent,
                one_of=one_of,
            )
    return out


def _disjunction(parts: list[Restrictions]) -> Restrictions:
    """At least one part holds: keep what every part demands, allowed values unite."""
    out: Restrictions = dict(parts[0])
    for part in parts[1:]:
        for key in list(out):
            old = out[key]
            new = part.get(key, LabelRestriction())
            present = old.must_be_present and new.must_be_present
            absent = old.must_be_absent and new.must_be_absent
            one_of: frozenset[str] | None = None
            if present and old.one_of is not None and new.one_of is not None:
                one_of = old.one_of | new.one_of
            if present or absent:
                out[key] = LabelRestriction(
                    must_be_present=present, must_be_absent=absent, one_of=one_of
                )
            else:
                del out[key]
    return out

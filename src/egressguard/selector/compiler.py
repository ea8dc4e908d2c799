"""Compile a selector tree to one fast Python function.

Selector matching is on the evaluator's hot path (several checks per flow, tens of thousands
of flows per second), so a tree is not walked at run time. It is translated once into the
source of a single expression over the label mapping ``L`` and compiled with the built-in
``compile``. For ``a == "x" && !has(b) && c in {"p", "q"}`` the function is::

    lambda L: (L.get('a') == 'x' and not ('b' in L) and L.get('c') in _s0)

with ``_s0`` a ``frozenset``. Every key and value enters the source through ``repr()``, which
always yields a Python string literal denoting the same string, so no text from a selector is
ever executed as code. The missing-label rules fall out of ``Mapping.get``: ``None`` is unequal
to every string (``==`` false, ``!=`` true) and in no set (``in`` false, ``not in`` true);
substring tests read a missing label as ``""``, except that an empty needle becomes a presence
test (``"" in ""`` would wrongly be true for a missing label).

Trees too deep for Python's compiler (more than ~200 nested parentheses in the generated
source, only reachable by building trees by hand) fall back to the nodes' ``evaluate``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

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

__all__ = ["Matcher", "compile_matcher", "matcher_source"]

#: A compiled selector: label mapping in, verdict out.
Matcher = Callable[[Mapping[str, str]], bool]


def compile_matcher(node: Node) -> Matcher:
    """A function equivalent to ``node.evaluate``, compiled to one Python expression."""
    constants: dict[str, object] = {}
    try:
        source = "lambda L: " + _expression(node, constants)
        code = compile(source, "<selector>", "eval")
    except (RecursionError, SyntaxError, MemoryError):
        return node.evaluate
    namespace: dict[str, object] = {"__builtins__": {}, **constants}
    # The source is built only from repr() literals and fixed operators (see module docstring).
    matcher: Matcher = eval(code, namespace)  # noqa: S307
    return matcher


def matcher_source(node: Node) -> str:
    """The Python expression :func:`compile_matcher` compiles (for debugging and tests)."""
    return _expression(node, {})


def _expression(node: Node, constants: dict[str, object]) -> str:
    if isinstance(node, Eq):
        return f"L.get({node.key!r}) == {node.value!r}"
    if isinstance(node, Ne):
        return f"L.get({node.key!r}) != {node.value!r}"
    if isinstance(node, Has):
        return f"({node.key!r} in L)"
    if isinstance(node, In | NotIn):
        name = f"_s{len(constants)}"
        constants[name] = frozenset(node.values)
        operator = "in" if isinstance(node, In) else "not in"
        return f"L.get({node.key!r}) {operator} {name}"
    if isinstance(node, Contains):
        if not node.value:
            return f"({node.key!r} in L)"
        return f"({node.value!r} in L.get({node.key!r}, ''))"
    if isinstance(node, StartsWith | EndsWith):
        if not node.value:
            return f"({node.key!r} in L)"
        method = "startswith" if isinstance(node, StartsWith) else "endswith"
        return f"L.get({node.key!r}, '').{method}({node.value!r})"
    if isinstance(node, All | Global):
        return "True"
    if isinstance(node, Not):
        return f"not ({_expression(node.operand, constants)})"
    if isinstance(node, And):
        return "(" + " and ".join(_expression(op, constants) for op in node.operands) + ")"
    if isinstance(node, Or):
        return "(" + " or ".join(_expression(op, constants) for op in node.operands) + ")"
    raise TypeError(f"not a selector node: {node!r}")

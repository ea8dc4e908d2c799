"""The public API of egressguard.selector: what other components build on."""

from __future__ import annotations

import dataclasses
import pickle
import types
from collections.abc import Iterator, Mapping

import pytest

from egressguard import selector
from egressguard.errors import SelectorError
from egressguard.selector import (
    All,
    And,
    Contains,
    Eq,
    Global,
    Has,
    In,
    Ne,
    Not,
    NotIn,
    Or,
    Selector,
    parse,
)
from egressguard.selector.compiler import compile_matcher, matcher_source

PUBLIC = {
    "MAX_KEY_LENGTH",
    "MAX_NESTING",
    "NAMESPACE_LABEL",
    "NAMESPACE_PREFIX",
    "SERVICE_ACCOUNT_LABEL",
    "SERVICE_ACCOUNT_PREFIX",
    "All",
    "And",
    "Contains",
    "EndsWith",
    "Eq",
    "Global",
    "Has",
    "In",
    "KeyedNode",
    "LabelRestriction",
    "Matcher",
    "Ne",
    "Node",
    "Not",
    "NotIn",
    "Or",
    "Selector",
    "StartsWith",
    "and_",
    "entity_rule_selector",
    "is_valid_key",
    "map_keys",
    "namespace_scope",
    "parse",
    "policy_selector",
    "transform",
    "walk",
}


def test_exported_members() -> None:
    assert set(selector.__all__) == PUBLIC
    for name in selector.__all__:
        assert hasattr(selector, name), name


# ---- parse --------------------------------------------------------------------------------


def test_parse_is_cached() -> None:
    text = "cache-test == 'x' && has(y)"
    assert parse(text) is parse(text)


def test_parse_rejects_non_strings_with_type_error() -> None:
    with pytest.raises(TypeError):
        parse(b"a == 'x'")  # type: ignore[arg-type]


def test_selector_error_carries_selector_column_reason_and_hint() -> None:
    with pytest.raises(SelectorError) as info:
        parse("policy == 'x'\n")
    err = info.value
    assert err.column == 14
    assert err.selector == "policy == 'x'\n"
    assert "newline" in err.reason
    assert err.hint is not None
    assert "|-" in err.hint
    assert "column 14" in str(err)


def test_matches_accepts_any_mapping() -> None:
    class Labels(Mapping[str, str]):
        def __init__(self, data: dict[str, str]) -> None:
            self._data = data

        def __getitem__(self, key: str) -> str:
            return self._data[key]

        def __iter__(self) -> Iterator[str]:
            return iter(self._data)

        def __len__(self) -> int:
            return len(self._data)

    sel = parse("a == 'x' && b != 'y' && c not in {'z'} && d contains '' && has(a)")
    assert sel.matches(Labels({"a": "x", "d": ""}))
    assert sel.matches(types.MappingProxyType({"a": "x", "d": "q"}))
    assert not sel.matches(Labels({"a": "x"}))
    assert sel.matcher(Labels({"a": "x", "d": ""})) is True


# ---- identity -----------------------------------------------------------------------------


def test_selectors_compare_and_hash_by_canonical_form() -> None:
    a = parse("a == 'x' && b == 'y'")
    b = parse('(a=="x")&&(b=="y")')
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b, parse("a == 'x'")}) == 2
    assert a != parse("b == 'y' && a == 'x'")  # operand order is kept, as in Calico
    assert a != '(a == "x" && b == "y")'
    assert repr(a) == '<Selector \'(a == "x" && b == "y")\'>'


def test_selectors_pickle() -> None:
    sel = parse("a in {'x', 'y'} || !has(b)")
    again = pickle.loads(pickle.dumps(sel))  # noqa: S301 (our own data)
    assert again == sel
    assert again.matches({"a": "y", "b": ""})
    assert not again.matches({"a": "z", "b": ""})


def test_nodes_are_immutable_and_hashable() -> None:
    node = parse("a == 'x' && has(b)").root
    assert isinstance(node, And)
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.operands = ()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.operands[0].key = "z"  # type: ignore[union-attr]
    assert {node, parse("a == 'x' && has(b)").root} == {node}
    assert Eq("a", "x") != Ne("a", "x")
    assert In("k", ("b", "a", "a")) == In("k", ("a", "b"))
    assert In("k", ("b", "a", "a")).values == ("a", "b")
    assert NotIn("k", frozenset({"y", "x"})).values == ("x", "y")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "build",
    [
        lambda: Has(""),
        lambda: Has("a b"),
        lambda: Has("é"),
        lambda: Has("a:b"),
        lambda: Has("k" * 513),
        lambda: Eq("a", "both \" and '"),
        lambda: In("a", ("ok", 'it\'s "x"')),
        lambda: In("a", "xy"),
        lambda: And((Has("a"),)),
        lambda: Or(()),
    ],
)
def test_nodes_reject_what_cannot_be_written(build: object) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (the message varies by case)
        build()  # type: ignore[operator]


def test_unique_id_is_calicos() -> None:
    # Vectors from Calico parser_test.go canonicalisationTests.
    assert parse("").unique_id() == "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"
    assert parse('! (a == "b"&&! c != "d")').unique_id() == (
        "s:lh3haoY1ikTRkd4UZu0nWSaIBknYLPJLX16d-w"
    )


# ---- questions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "is_all", "is_global", "contains_global"),
    [
        ("", True, False, False),
        ("  ", True, False, False),
        ("all()", True, False, False),
        (" ( all( ) ) ", True, False, False),
        ("!all()", False, False, False),
        ("all() && has(a)", False, False, False),
        ("global()", False, True, True),
        (" ( global( ) ) ", False, True, True),
        ("global() && a == 'b'", False, False, True),
        ("!global()", False, False, True),
        ("a == 'global()'", False, False, False),
        ("global == 'x'", False, False, False),
    ],
)
def test_all_and_global_questions(
    text: str, is_all: bool, is_global: bool, contains_global: bool
) -> None:
    sel = parse(text)
    assert sel.is_all() is is_all
    assert sel.is_global() is is_global
    assert sel.contains_global() is contains_global


def test_keys_and_required_keys() -> None:
    sel = parse("a == 'x' && (has(b) || b == 'y') && c != 'z' && !d contains 'q' && e not in {}")
    assert sel.keys() == {"a", "b", "c", "d", "e"}
    assert sel.required_keys() == {"a", "b"}
    assert parse("a == 'x' || b == 'y'").required_keys() == frozenset()
    assert parse("all()").keys() == frozenset()


def test_never_matches() -> None:
    assert parse("a == 'x' && a == 'y'").never_matches()
    assert parse("has(a) && !has(a)").never_matches()
    assert parse("a in {}").never_matches()
    assert not parse("a == 'x' || a == 'y'").never_matches()
    assert not parse("!all()").never_matches()  # not proven: the analysis is sound, not complete


def test_walk_is_preorder() -> None:
    sel = parse("a == 'x' && !(has(b) || all())")
    kinds = [type(node).__name__ for node in sel.walk()]
    assert kinds == ["And", "Eq", "Not", "Or", "Has", "All"]


# ---- building selectors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Calico parser_test.go "Visitor tests" with PrefixVisitor{Prefix: "visited/"}.
        ("k == 'v'", 'visited/k == "v"'),
        ("k != 'v'", 'visited/k != "v"'),
        ("k contains 'v'", 'visited/k contains "v"'),
        ("k starts with 'v'", 'visited/k starts with "v"'),
        ("k ends with 'v'", 'visited/k ends with "v"'),
        ("k == 'v' && x == 'y'", '(visited/k == "v" && visited/x == "y")'),
        ("k == 'v' || has(x)", '(visited/k == "v" || has(visited/x))'),
        ("!(k == 'v')", '!visited/k == "v"'),
        ("k in {'v'}", 'visited/k in {"v"}'),
        ("k not in {'v'}", 'visited/k not in {"v"}'),
        (
            "!(!(k == 'v' && has(t) || all()) && (a in {'b', 'c'}))",
            '!(!((visited/k == "v" && has(visited/t)) || all()) && visited/a in {"b", "c"})',
        ),
    ],
)
def test_prefix_keys_like_calicos_prefix_visitor(text: str, expected: str) -> None:
    assert str(parse(text).prefix_keys("visited/")) == expected


def test_map_keys() -> None:
    sel = parse("app == 'web' && has(tier)")
    assert str(sel.map_keys(str.upper)) == '(APP == "web" && has(TIER))'
    assert sel.map_keys(lambda k: k) is sel
    with pytest.raises(ValueError, match="invalid selector label key"):
        sel.map_keys(lambda k: k + ":x")
    with pytest.raises(ValueError, match="invalid selector label key"):
        parse("k" * 510 + " == 'x'").prefix_keys("pcns.")


def test_transform_rewrites_bottom_up() -> None:
    sel = parse("all() && !global() && has(a)")
    marker = Has("projectcalico.org/namespace")

    def rewrite(node: selector.Node) -> selector.Node:
        if isinstance(node, All):
            return marker
        if isinstance(node, Global):
            return Not(marker)
        return node

    out = sel.transform(rewrite)
    assert str(out) == (
        "(has(projectcalico.org/namespace) && !(!has(projectcalico.org/namespace)) && has(a))"
    )
    assert parse(str(out)) == out
    assert sel.transform(lambda n: n) is sel
    assert selector.map_keys(Has("a"), lambda k: "p." + k) == Has("p.a")


def test_and_or_not_combinators() -> None:
    left = parse("a == 'x' && b == 'y'")
    right = parse("has(c)")
    both = selector.and_(left, right)
    assert str(both) == '((a == "x" && b == "y") && has(c))'
    assert both == parse("(a == 'x' && b == 'y') && (has(c))")  # what Calico's "(A) && (B)" gives
    assert left & right == both
    assert str(left | right) == '((a == "x" && b == "y") || has(c))'
    assert str(~right) == "!has(c)"
    assert ~parse("!has(c)") == right
    with pytest.raises(TypeError):
        selector.and_(left, "has(c)")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        left & "has(c)"  # type: ignore[operator]


# ---- compiled matcher ---------------------------------------------------------------------


def test_matcher_source_uses_only_literals_and_mapping_access() -> None:
    node = parse("a == 'x' && !has(b) && c in {'p', 'q'} && d starts with '' && e ends with 'z'")
    source = matcher_source(node.root)
    assert source == (
        "(L.get('a') == 'x' and not (('b' in L)) and L.get('c') in _s0 and ('d' in L) "
        "and L.get('e', '').endswith('z'))"
    )


def test_hostile_values_stay_data() -> None:
    value = "'); import os; os.system('x'); ('"
    sel = Selector(Eq("a", 'x"' + value.replace("'", "")))
    assert sel.matches({"a": 'x"' + value.replace("'", "")})
    sel = Selector(Contains("a", "__import__('os')"))
    assert sel.matches({"a": "__import__('os')"})


def test_trees_too_deep_for_the_compiler_fall_back_to_the_reference_evaluator() -> None:
    node: selector.Node = Has("a")
    for _ in range(300):  # far beyond what parse() accepts; only reachable by hand
        node = Not(node)
    matcher = compile_matcher(node)
    assert matcher == node.evaluate
    sel = Selector(node)
    assert sel.matches({"a": ""}) is True  # an even number of negations
    assert sel.matches({}) is False


# ---- documentation ------------------------------------------------------------------------


@pytest.mark.parametrize("module_name", ["egressguard.selector", "egressguard.selector.rewrite"])
def test_docstring_examples_run(module_name: str) -> None:
    import doctest
    import importlib

    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def test_selector_is_immutable_and_matches_is_the_compiled_function() -> None:
    sel = parse("a == 'x'")
    with pytest.raises(AttributeError):
        sel.matches = lambda labels: True  # type: ignore[method-assign]
    with pytest.raises(AttributeError):
        del sel.matches
    assert sel.matches is sel.matcher
    assert sel.matches({"a": "x"}) is True

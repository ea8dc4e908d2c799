"""Conformance of the selector language with Calico (table: data/selector_cases.yaml).

Each valid case checks the canonical text, Calico's UniqueID where known, the expected
matches and non-matches, and that the canonical text re-parses to the same selector with the
same verdicts. Each invalid case checks that ``SelectorError`` names the expected column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from egressguard import selector
from egressguard.errors import InputError, SelectorError

DATA = Path(__file__).parent / "data" / "selector_cases.yaml"
TABLE: dict[str, list[dict[str, Any]]] = yaml.safe_load(DATA.read_text(encoding="utf-8"))
VALID = TABLE["valid"]
INVALID = TABLE["invalid"]


def _case_id(case: dict[str, Any]) -> str:
    return repr(case["sel"])[:60]


def test_table_is_large_and_well_formed() -> None:
    assert len(VALID) + len(INVALID) >= 150
    for case in VALID:
        assert isinstance(case["sel"], str)
        assert isinstance(case["canon"], str)
        for labels in case.get("match", []) + case.get("nomatch", []):
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()), (
                f"non-string label in {case['sel']!r}: {labels!r} (quote it in the YAML)"
            )
    for case in INVALID:
        assert isinstance(case["sel"], str)
        assert isinstance(case["col"], int)
        assert 1 <= case["col"] <= len(case["sel"]) + 1


@pytest.mark.parametrize("case", VALID, ids=_case_id)
def test_valid_selector(case: dict[str, Any]) -> None:
    sel = selector.parse(case["sel"])
    assert str(sel) == case["canon"]
    if "uid" in case:
        assert sel.unique_id() == case["uid"]
    for labels in case.get("match", []):
        assert sel.matches(labels), f"{case['sel']!r} should match {labels!r}"
        assert sel.root.evaluate(labels)
    for labels in case.get("nomatch", []):
        assert not sel.matches(labels), f"{case['sel']!r} should not match {labels!r}"
        assert not sel.root.evaluate(labels)


@pytest.mark.parametrize("case", VALID, ids=_case_id)
def test_canonical_form_round_trips(case: dict[str, Any]) -> None:
    sel = selector.parse(case["sel"])
    again = selector.parse(str(sel))
    assert again == sel
    assert again.root == sel.root
    assert str(again) == case["canon"]
    assert again.unique_id() == sel.unique_id()
    for labels in case.get("match", []):
        assert again.matches(labels)
    for labels in case.get("nomatch", []):
        assert not again.matches(labels)


@pytest.mark.parametrize("case", INVALID, ids=_case_id)
def test_invalid_selector(case: dict[str, Any]) -> None:
    with pytest.raises(SelectorError) as info:
        selector.parse(case["sel"])
    err = info.value
    assert err.column == case["col"], f"{case['why']}: {err.reason}"
    assert err.selector == case["sel"]
    assert f"column {case['col']}" in str(err)
    assert isinstance(err, ValueError)
    assert isinstance(err, InputError)
    assert err.reason  # says what went wrong, not just where


# ---- rows that are awkward to write in YAML ---------------------------------------------------

KEY_512 = "k" * 512
KEY_513 = "k" * 513


@pytest.mark.parametrize(
    "text",
    [
        f'{KEY_512} == "x"',
        f"has({KEY_512})",
        f'{KEY_512} in {{"x"}}',
        f"has( {'a.b/c-d_' * 64} )",
    ],
)
def test_label_key_of_512_characters_is_accepted(text: str) -> None:
    sel = selector.parse(text)
    (key,) = sel.keys()
    assert len(key) == 512
    assert selector.parse(str(sel)) == sel


@pytest.mark.parametrize(
    ("text", "column"),
    [
        (f'{KEY_513} == "x"', 1),
        (f"has({KEY_513})", 5),
        (f'a == "x" && {KEY_513} != "y"', 13),
        (f"has( {KEY_512}x )", 6),
    ],
)
def test_label_key_of_513_characters_is_rejected(text: str, column: int) -> None:
    with pytest.raises(SelectorError) as info:
        selector.parse(text)
    assert info.value.column == column
    assert "513" in info.value.reason


def test_nesting_up_to_the_limit_parses_and_matches() -> None:
    depth = selector.MAX_NESTING
    text = "(" * depth + 'a == "x"' + ")" * depth
    sel = selector.parse(text)
    assert str(sel) == 'a == "x"'
    negated = "!(" * depth + "has(a)" + ")" * depth
    sel = selector.parse(negated)
    assert sel.matches({"a": ""}) is (depth % 2 == 0)


def test_nesting_beyond_the_limit_is_an_error_not_a_crash() -> None:
    depth = selector.MAX_NESTING + 1
    text = "(" * depth + 'a == "x"' + ")" * depth
    with pytest.raises(SelectorError) as info:
        selector.parse(text)
    assert info.value.column == depth
    with pytest.raises(SelectorError):
        selector.parse("(" * 10_000)


LEVELS = selector.MAX_NESTING // 3  # each level below adds three tree levels


def _deep(levels: int) -> str:
    # Not -> Or -> And -> Not -> ...: the deepest tree per character of text
    text = "has(c)"
    for _ in range(levels):
        text = f"!(has(a) || has(b) && {text})"
    return text


def _exercise(text: str) -> tuple[bool, bool, str, int]:
    sel = selector.parse(text)
    again = selector.Selector(sel.root)  # bypass the parse cache: print and compile again
    prefixed = sel.prefix_keys("pcns.")
    return (
        again.matches({}),
        again.root.evaluate({"b": ""}),
        str(selector.parse(str(prefixed)))[:6],
        len(sel.label_restrictions()) + hash(sel.root) * 0,
    )


def test_deepest_allowed_tree_works_even_from_a_deep_call_stack() -> None:
    """Printing, compiling, hashing, evaluating and analysing recurse over the tree; at the
    nesting limit they must still fit in Python's stack when the caller is itself deep."""
    text = _deep(LEVELS)

    def nested(levels: int) -> tuple[bool, bool, str, int]:
        return _exercise(text) if levels == 0 else nested(levels - 1)

    matches_empty, evaluates_b, printed, _ = nested(400)
    # Each level is !(has(a) || has(b) && inner). With {} every level is !(false): true.
    assert matches_empty is True
    # With {"b": ""} each level is !inner, and the innermost has(c) is false.
    assert evaluates_b is (LEVELS % 2 == 1)
    assert printed == "!(has("


def test_tree_depth_beyond_the_limit_is_an_error() -> None:
    text = _deep(LEVELS + 1)  # parentheses are only LEVELS + 1 deep, the tree is deeper
    with pytest.raises(SelectorError) as info:
        selector.parse(text)
    assert info.value.column == 3  # the outermost || group is the first to exceed the limit
    assert "nested more than" in info.value.reason


def test_long_flat_expressions_are_not_limited() -> None:
    terms = [f'k{i} == "v{i}"' for i in range(2000)]
    sel = selector.parse(" && ".join(terms))
    labels = {f"k{i}": f"v{i}" for i in range(2000)}
    assert sel.matches(labels)
    del labels["k1999"]
    assert not sel.matches(labels)
    assert selector.parse(" || ".join(terms)).matches({"k1999": "v1999"})

"""Label restrictions agree with Calico's vectors (table: data/selector_restrictions.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from egressguard import selector
from egressguard.selector import LabelRestriction

DATA = Path(__file__).parent / "data" / "selector_restrictions.yaml"
CASES: list[dict[str, Any]] = yaml.safe_load(DATA.read_text(encoding="utf-8"))["cases"]


def _expected(res: dict[str, dict[str, Any]]) -> dict[str, LabelRestriction]:
    out = {}
    for key, spec in res.items():
        one_of = spec.get("one_of")
        out[key] = LabelRestriction(
            must_be_present=spec.get("present", False),
            must_be_absent=spec.get("absent", False),
            one_of=None if one_of is None else frozenset(one_of),
        )
    return out


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["sel"] or "<empty>")
def test_label_restrictions(case: dict[str, Any]) -> None:
    sel = selector.parse(case["sel"])
    expected = _expected(case["res"])
    assert dict(sel.label_restrictions()) == expected
    assert sel.never_matches() is case.get("never", False)
    assert sel.required_keys() == {k for k, r in expected.items() if r.must_be_present}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["sel"] or "<empty>")
def test_all_and_prefix_changes_nothing(case: dict[str, Any]) -> None:
    # label_restriction_test.go: "Adding an extra all() && to the selector should have no effect."
    if not case["sel"]:
        return
    sel = selector.parse(f"all() && ({case['sel']})")
    assert dict(sel.label_restrictions()) == _expected(case["res"])

"""The selectors Felix evaluates after Calico's rewrites (table: data/selector_rewrites.yaml).

The expected strings are what Calico's update processors hand to Felix; the test compares the
parsed result with Felix's parse of that string (same canonical text, same tree).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from egressguard import selector

DATA = Path(__file__).parent / "data" / "selector_rewrites.yaml"
TABLE: dict[str, list[dict[str, Any]]] = yaml.safe_load(DATA.read_text(encoding="utf-8"))


def _id(case: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in case.get("args", {}).items()) or "<none>"


@pytest.mark.parametrize("case", TABLE["entity_rules"], ids=_id)
def test_entity_rule_selector(case: dict[str, Any]) -> None:
    got = selector.entity_rule_selector(**case["args"])
    if case["felix"] is None:
        assert got is None
    else:
        assert got is not None
        assert got == selector.parse(case["felix"])
        assert got.root == selector.parse(case["felix"]).root


@pytest.mark.parametrize("case", TABLE["policies"], ids=_id)
def test_policy_selector(case: dict[str, Any]) -> None:
    got = selector.policy_selector(**case["args"])
    assert got == selector.parse(case["felix"])


@pytest.mark.parametrize("case", TABLE["namespace_scopes"], ids=lambda c: c["ns"] or "<empty>")
def test_namespace_scope(case: dict[str, Any]) -> None:
    assert str(selector.namespace_scope(case["ns"])) == case["felix"]

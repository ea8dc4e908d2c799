"""Table-driven conformance of the validator: data/validation_cases.yaml (see its header)."""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from egressguard.calico import validate
from egressguard.calico.model import API_V1, API_V3, CALICO_API_GROUPS

DATA = Path(__file__).parent / "data" / "validation_cases.yaml"
TABLE: dict[str, Any] = yaml.safe_load(DATA.read_text(encoding="utf-8"))
BASES: dict[str, Any] = TABLE["bases"]
CASES: list[dict[str, Any]] = TABLE["cases"]


def _merge(target: dict[str, Any], changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value


def build(case: dict[str, Any]) -> Any:
    """The document a case describes (see the header of the data file)."""
    if "doc" in case:
        return copy.deepcopy(case["doc"])
    doc = copy.deepcopy(BASES[case.get("base", "gnp")])
    _merge(doc["metadata"], case.get("metadata", {}))
    _merge(doc["spec"], case.get("spec", {}))
    if "rule" in case:
        doc["spec"]["egress"] = [copy.deepcopy(case["rule"])]
    if "ingress" in case:
        doc["spec"]["ingress"] = [copy.deepcopy(case["ingress"])]
    return doc


def _params() -> list[Any]:
    out = []
    for case in CASES:
        doc = build(case)
        groups = [None]
        if isinstance(doc, dict) and doc.get("apiVersion") in CALICO_API_GROUPS:
            groups = [API_V1, API_V3]
        for group in groups:
            suffix = "" if group is None else ("-v1" if group == API_V1 else "-v3")
            out.append(pytest.param(case, group, id=f"{case['id']}{suffix}"))
    return out


@pytest.mark.parametrize(("case", "group"), _params())
def test_case(case: dict[str, Any], group: str | None) -> None:
    doc = build(case)
    if group is not None:
        doc["apiVersion"] = group
    problems = validate(doc)
    expected = [(path, text) for path, text in case["problems"]]
    got = Counter(p.path for p in problems)
    want = Counter(path for path, _ in expected)
    assert got == want, "\n".join(str(p) for p in problems) or "no problems"
    for path, text in expected:
        messages = [p.message for p in problems if p.path == path]
        assert any(text in m for m in messages), f"{path}: {text!r} not in {messages}"


def test_table_is_large_and_balanced() -> None:
    """At least 120 cases, with valid and invalid documents both well represented."""
    valid = sum(1 for c in CASES if not c["problems"])
    invalid = len(CASES) - valid
    assert len(CASES) >= 120
    assert valid >= 50
    assert invalid >= 70
    assert len({c["id"] for c in CASES}) == len(CASES), "case ids must be unique"


def test_lengths_of_boundary_cases() -> None:
    """Boundary cases really sit on the boundary (so a typo in the data cannot hide one)."""
    by_id = {c["id"]: c for c in CASES}
    assert len(by_id["gns-name-253"]["metadata"]["name"]) == 253
    assert len(by_id["gns-name-254"]["metadata"]["name"]) == 254
    assert len(by_id["tier-name-64"]["metadata"]["name"]) == 64
    assert len(by_id["label-value-64"]["metadata"]["labels"]["k"]) == 64
    assert len(by_id["selector-too-long"]["rule"]["destination"]["selector"]) > 1024

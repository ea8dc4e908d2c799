"""List and size limits of the HEAD CRDs (calico-semantics.md §6.10), at and just past each limit.

These documents are generated rather than tabled: they are too large to read in a data file.
"""

from __future__ import annotations

from typing import Any

import pytest

from egressguard.calico import validate


def gnp(*, egress: list[Any] | None = None, ingress: list[Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"types": ["Ingress", "Egress"]}
    if egress is not None:
        spec["egress"] = egress
    if ingress is not None:
        spec["ingress"] = ingress
    return {
        "apiVersion": "projectcalico.org/v3",
        "kind": "GlobalNetworkPolicy",
        "metadata": {"name": "limits"},
        "spec": spec,
    }


def paths(doc: dict[str, Any]) -> list[str]:
    return [p.path for p in validate(doc)]


@pytest.mark.parametrize(("count", "expected"), [(1024, []), (1025, ["spec.egress"])])
def test_rules_per_direction(count: int, expected: list[str]) -> None:
    assert paths(gnp(egress=[{"action": "Pass"}] * count)) == expected


@pytest.mark.parametrize(("count", "expected"), [(1024, []), (1025, ["spec.ingress"])])
def test_ingress_rules(count: int, expected: list[str]) -> None:
    assert paths(gnp(ingress=[{"action": "Allow"}] * count)) == expected


def _nets(count: int) -> list[str]:
    return [f"10.{i // 256}.{i % 256}.0/24" for i in range(count)]


@pytest.mark.parametrize(
    ("count", "expected"),
    [(256, []), (257, ["spec.egress[0].destination.nets"])],
)
def test_nets_per_field(count: int, expected: list[str]) -> None:
    rule = {"action": "Deny", "destination": {"nets": _nets(count)}}
    assert paths(gnp(egress=[rule])) == expected


@pytest.mark.parametrize(
    ("count", "expected"),
    [(256, []), (257, ["spec.egress[0].source.notNets"])],
)
def test_not_nets_per_field(count: int, expected: list[str]) -> None:
    rule = {"action": "Deny", "source": {"notNets": _nets(count)}}
    assert paths(gnp(egress=[rule])) == expected


@pytest.mark.parametrize(
    ("count", "expected"),
    [(50, []), (51, ["spec.egress[0].destination.ports"])],
)
def test_ports_per_field(count: int, expected: list[str]) -> None:
    rule = {
        "action": "Allow",
        "protocol": "TCP",
        "destination": {"ports": list(range(1, count + 1))},
    }
    assert paths(gnp(egress=[rule])) == expected


@pytest.mark.parametrize(
    ("count", "expected"),
    [(20, []), (21, ["spec.ingress[0].http.methods"])],
)
def test_http_methods(count: int, expected: list[str]) -> None:
    rule = {"action": "Allow", "http": {"methods": [f"M{i}" for i in range(count)]}}
    assert paths(gnp(ingress=[rule])) == expected


@pytest.mark.parametrize(
    ("count", "expected"),
    [(20, []), (21, ["spec.ingress[0].http.paths"])],
)
def test_http_paths(count: int, expected: list[str]) -> None:
    rule = {"action": "Allow", "http": {"paths": [{"prefix": f"/p{i}"} for i in range(count)]}}
    assert paths(gnp(ingress=[rule])) == expected


def test_http_path_length() -> None:
    ok = {"action": "Allow", "http": {"paths": [{"exact": "/" + "a" * 1023}]}}
    long = {"action": "Allow", "http": {"paths": [{"exact": "/" + "a" * 1024}]}}
    assert paths(gnp(ingress=[ok])) == []
    assert paths(gnp(ingress=[long])) == ["spec.ingress[0].http.paths[0]"]


def test_selector_of_exactly_1024_characters_is_accepted() -> None:
    text = "a == '" + "x" * (1024 - 7) + "'"
    assert len(text) == 1024
    rule = {"action": "Deny", "destination": {"selector": text}}
    assert paths(gnp(egress=[rule])) == []
    rule["destination"]["selector"] = text[:-1] + "x'"
    assert paths(gnp(egress=[rule])) == ["spec.egress[0].destination.selector"]


def test_annotations_total_size() -> None:
    doc = gnp()
    doc["metadata"]["annotations"] = {"note": "x" * (256 * 1024 - 4)}
    assert paths(doc) == []
    doc["metadata"]["annotations"] = {"note": "x" * (256 * 1024 - 3)}
    assert paths(doc) == ["metadata.annotations"]


def test_every_problem_of_a_large_document_is_reported() -> None:
    """All problems at once: 300 bad rules give 300 problems, not one."""
    rules = [{"action": "deny"} for _ in range(300)]
    found = paths(gnp(egress=rules))
    assert found == [f"spec.egress[{i}].action" for i in range(300)]

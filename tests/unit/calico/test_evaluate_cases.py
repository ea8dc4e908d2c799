"""Table-driven conformance of the evaluator: tests/conformance/data/evaluation_cases.yaml.

Each case builds manifests (the examples/blog files, minus some resources, plus documents),
an endpoint and a flow, and checks the verdict, whether it was logged, what decided, the steps
that matched (in order) and, where given, the network sets and CIDRs of the deciding rule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from egressguard import calico, yamlio
from egressguard.calico import evaluate as ev
from egressguard.calico.load import Manifests, load_documents
from egressguard.calico.model import ContainerPort, PolicyType

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "tests" / "conformance" / "data" / "evaluation_cases.yaml"
CASES: list[dict[str, Any]] = yaml.safe_load(DATA.read_text(encoding="utf-8"))["cases"]


def _key(resource: Any) -> str:
    ns = f"{resource.namespace}/" if resource.namespace else ""
    return f"{resource.kind}/{ns}{resource.name}"


def build_manifests(case: dict[str, Any]) -> Manifests:
    spec = case.get("manifests", {"from": "none"})
    resources: list[Any] = []
    if spec.get("from") == "blog":
        loaded = calico.load_paths([REPO / "examples" / "blog"])
        assert loaded.ok, loaded.problems
        resources = list(loaded.resources)
    remove = set(spec.get("remove", []))
    unknown = remove - {_key(r) for r in resources}
    assert not unknown, f"the case removes resources that do not exist: {unknown}"
    resources = [r for r in resources if _key(r) not in remove]
    if case.get("docs"):
        text = yamlio.dump_documents(case["docs"])
        added = load_documents(yamlio.load_text(text, f"<{case['id']}>"))
        assert added.ok, [str(p) for p in added.problems]
        resources.extend(added.resources)
    return Manifests.of(resources)


def build_endpoint(spec: dict[str, Any], manifests: Manifests) -> ev.Endpoint:
    if "pod" in spec:
        ns, _, name = spec["pod"].partition("/")
        pod = next(p for p in manifests.pods if p.namespace == ns and p.name == name)
        return ev.Endpoint.from_pod(pod, manifests.namespace(ns))
    if spec.get("host"):
        return ev.Endpoint.host(
            spec.get("labels", {}),
            ips=spec.get("ips", ()),
            default_allow=spec.get("default_allow", False),
        )
    namespace = spec.get("namespace", "default")
    ports = [
        ContainerPort(port=p["port"], protocol=p.get("protocol", "TCP"), name=p["name"])
        for p in spec.get("ports", [])
    ]
    return ev.Endpoint.pod(
        spec.get("labels", {}),
        namespace,
        ips=spec.get("ips", ()),
        ports=ports,
        service_account=spec.get("service_account", "default"),
        namespace_resource=manifests.namespace(namespace),
    )


def _steps(verdict: ev.Verdict) -> list[str]:
    return [str(step) for step in verdict.trace if step.matched]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case(case: dict[str, Any]) -> None:
    manifests = build_manifests(case)
    endpoint = build_endpoint(case["endpoint"], manifests)
    flow = ev.Flow(**case["flow"])
    direction = PolicyType(case.get("direction", "egress").capitalize())
    plan = ev.compile_plan(manifests)
    verdict = plan.evaluate(endpoint, flow, direction)
    expect = case["expect"]
    assert str(verdict.action) == expect["verdict"]
    assert verdict.logged is expect.get("logged", False)
    assert verdict.reason == expect["reason"]
    assert _steps(verdict) == expect["steps"]
    if "matches" in expect:
        decided = verdict.decided_by
        assert decided is not None
        got = [f"{m.entity} {m.cidr}" for m in decided.matches]
        assert got == expect["matches"]
    # Every step can explain itself, and the fast path agrees with the traced one.
    assert all(step.why for step in verdict.trace)
    fast = plan.evaluate(endpoint, flow, direction, trace=False)
    assert (fast.action, fast.logged, fast.reason) == (
        verdict.action,
        verdict.logged,
        verdict.reason,
    )
    assert fast.trace == ()


def test_every_spec_area_is_covered() -> None:
    """The table covers what the issue lists (a guard against deleting whole areas)."""
    ids = " ".join(c["id"] for c in CASES)
    for needle in (
        "blog-blocked",
        "deny-before-log",
        "without-allow",
        "bypasses-kubernetes",
        "tier-order",
        "missing-order",
        "equal-order",
        "pass",
        "end-of-tier",
        "profile",
        "staged",
        "ipv6",
        "not-nets",
        "not-selector",
        "global",
        "named-port",
        "port-range",
        "not-protocol",
        "icmp",
        "ingress",
    ):
        assert needle in ids, needle

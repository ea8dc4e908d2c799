"""The evaluator's Python API: inputs, validation of flows, traces, JSON, plan bookkeeping."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

from egressguard import calico
from egressguard.calico import evaluate as ev
from egressguard.calico.load import Manifests, load_text
from egressguard.calico.model import Action, PolicyType
from egressguard.errors import InputError

REPO = Path(__file__).resolve().parents[3]
BLOG = REPO / "examples" / "blog"


@pytest.fixture(scope="module")
def blog() -> ev.Plan:
    return ev.compile_plan(calico.load_paths([BLOG]))


def _load(text: str) -> Manifests:
    loaded = load_text(text)
    assert loaded.ok, [str(p) for p in loaded.problems]
    return loaded


def test_public_names_exist() -> None:
    for name in ("egressguard.calico.evaluate", "egressguard.calico.explain",
                 "egressguard.calico.lint"):  # fmt: skip
        module = importlib.import_module(name)
        for attr in module.__all__:
            assert hasattr(module, attr), f"{name}.{attr}"


def test_module_docstring_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    failures, tried = doctest.testmod(ev, optionflags=doctest.ELLIPSIS)
    assert tried > 0
    assert failures == 0


# --------------------------------------------------------------------------------------------
# Flow and endpoint inputs


@pytest.mark.parametrize(
    ("value", "number"),
    [("TCP", 6), ("tcp", 6), ("UDP", 17), ("icmpv6", 58), (6, 6), ("132", 132)],
)
def test_protocol_number(value: str | int, number: int) -> None:
    assert ev.protocol_number(value) == number


@pytest.mark.parametrize("value", ["tcpx", 0, 256, "0", True])
def test_protocol_number_rejects(value: object) -> None:
    with pytest.raises(InputError):
        ev.protocol_number(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dst": "192.0.2.300"},
        {"dst": "192.0.2.1", "src": "2001:db8::1"},
        {"dst": "192.0.2.1", "dst_port": 70000},
        {"dst": "192.0.2.1", "src_port": -1},
        {"dst": "192.0.2.1", "icmp_type": 300},
        {"dst": "192.0.2.1", "protocol": "carrier-pigeon"},
        {"dst": "192.0.2.1", "state": "half-open"},
        {"dst": "192.0.2.1", "protocol": True},
        {"dst": "192.0.2.1", "dst_port": True},
    ],
)
def test_flow_rejects_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises((InputError, ValueError)):
        ev.Flow(**kwargs)  # type: ignore[arg-type]


def test_flow_needs_the_peer_address(blog: ev.Plan) -> None:
    web = ev.Endpoint.pod({"app": "web"})
    with pytest.raises(InputError, match="egress flow needs a destination"):
        blog.evaluate(web, ev.Flow(src="192.0.2.1"))
    with pytest.raises(InputError, match="ingress flow needs a source"):
        blog.evaluate(web, ev.Flow(dst="192.0.2.1"), PolicyType.INGRESS)


def test_pod_endpoint_has_calico_labels() -> None:
    ns = calico.Namespace(metadata=calico.Metadata("shop", labels=calico.FrozenMap({"env": "p"})))
    web = ev.Endpoint.pod({"app": "web"}, "shop", service_account="api", namespace_resource=ns)
    assert web.labels["app"] == "web"
    assert web.labels["projectcalico.org/namespace"] == "shop"
    assert web.labels["projectcalico.org/orchestrator"] == "k8s"
    assert web.labels["pcns.env"] == "p"
    assert web.labels["pcsa.projectcalico.org/name"] == "api"
    assert web.profile == "kns.shop"
    assert dict(web.own_labels) == {"app": "web"}
    assert web.name is None
    assert web.describe() == "pod shop/* (app=web)"
    named = ev.Endpoint.pod(
        {"app": "web"}, "shop", name="web-0", service_account="api", namespace_resource=ns
    )
    assert (named.name, named.labels) == ("web-0", web.labels)


def test_host_endpoint_has_own_labels_only() -> None:
    node = ev.Endpoint.host({"role": "node"}, ips=["192.0.2.10"])
    assert dict(node.labels) == {"role": "node"}
    assert node.profile is None
    assert ev.Endpoint.host({}, default_allow=True).profile == "projectcalico-default-allow"


def test_endpoint_rejects_bad_address() -> None:
    with pytest.raises(InputError):
        ev.Endpoint.pod({}, ips=["10.0.0.256"])


def test_endpoints_are_values() -> None:
    one = ev.Endpoint.pod({"app": "web"}, ips=["10.0.0.1"])
    two = ev.Endpoint.pod({"app": "web"}, ips=["10.0.0.1"])
    assert one == two
    assert hash(one) == hash(two)
    assert one != ev.Endpoint.pod({"app": "db"}, ips=["10.0.0.1"])


# --------------------------------------------------------------------------------------------
# Traces and JSON


def test_blocked_trace_names_the_set_and_cidr(blog: ev.Plan) -> None:
    web = ev.Endpoint.pod({"app": "web"})
    verdict = blog.evaluate(web, ev.Flow(dst="217.160.0.111", dst_port=443))
    assert verdict.action is Action.DENY
    assert verdict.logged
    log, deny = verdict.trace
    assert log.outcome == "log"
    assert deny.outcome == "deny"
    assert verdict.log_steps == (log,)
    assert [(m.entity.name, str(m.cidr)) for m in deny.matches] == [
        ("egress-traffic-blocking", "217.160.0.111/32")
    ]
    assert "217.160.0.111" in deny.why
    assert "egress-traffic-blocking" in deny.why
    assert deny.rule_path == "spec.egress[1]"
    assert deny.location is not None
    assert deny.location.startswith(str(BLOG / "globalnetworkpolicies.yaml"))


def test_no_match_step_says_why(blog: ev.Plan) -> None:
    verdict = blog.evaluate(ev.Endpoint.pod({}), ev.Flow(dst="198.51.100.7", dst_port=443))
    first = verdict.trace[0]
    assert first.outcome == "no-match"
    assert not first.matched
    assert first.matches == ()
    assert "198.51.100.7" in first.why
    assert "none of what destination.selector" in first.why


def test_json_document(blog: ev.Plan) -> None:
    verdict = blog.evaluate(ev.Endpoint.pod({"app": "web"}), ev.Flow(dst="217.160.0.92"))
    doc = verdict.to_json()
    assert doc["verdict"] == "Deny"
    assert doc["logged"] is True
    assert doc["reason"] == "rule"
    assert doc["direction"] == "egress"
    assert len(doc["trace"]) == 2
    step = doc["trace"][1]
    assert step["tier"] == "default"
    assert step["policy"] == {
        "kind": "GlobalNetworkPolicy",
        "namespace": None,
        "name": "egress-traffic-blocking",
    }
    assert step["rule"] == 1
    assert step["action"] == "Deny"
    assert step["network_set"] == "egress-traffic-blocking"
    assert step["cidr"] == "217.160.0.92/32"
    assert step["matches"][0]["kind"] == "GlobalNetworkSet"
    assert step["line"] == 28
    assert step["file"] == str(BLOG / "globalnetworkpolicies.yaml")
    assert verdict.trace[1].location == f"{step['file']}:28"
    assert doc["decided_by"] == step
    assert [s["rule"] for s in doc["log_rules"]] == [0]


def test_profile_and_end_of_tier_steps_in_json() -> None:
    plan = ev.compile_plan(Manifests())
    doc = plan.evaluate(ev.Endpoint.pod({}, "shop"), ev.Flow(dst="192.0.2.1")).to_json()
    assert doc["trace"][0]["step"] == "profile"
    assert doc["trace"][0]["profile"] == "kns.shop"
    assert doc["trace"][0]["policy"] is None


def test_skipped_rule_explains_the_family() -> None:
    plan = ev.compile_plan(
        _load(
            """
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkPolicy
metadata: {name: v4-only}
spec:
  types: [Egress]
  egress:
    - {action: Deny, destination: {nets: [192.0.2.0/24]}}
"""
        )
    )
    verdict = plan.evaluate(ev.Endpoint.pod({}), ev.Flow(dst="2001:db8::1"))
    step = verdict.trace[0]
    assert step.outcome == "skipped"
    assert "IPv6" in step.why


def test_unknown_source_address_is_explained() -> None:
    plan = ev.compile_plan(
        _load(
            """
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkPolicy
metadata: {name: from-subnet}
spec:
  types: [Egress]
  egress:
    - {action: Deny, source: {nets: [10.0.0.0/8]}}
    - {action: Allow}
"""
        )
    )
    verdict = plan.evaluate(ev.Endpoint.pod({}), ev.Flow(dst="192.0.2.1"))
    assert verdict.trace[0].outcome == "no-match"
    assert "unknown" in verdict.trace[0].why


def test_ignored_policies_are_listed_and_noted() -> None:
    plan = ev.compile_plan(
        _load(
            """
apiVersion: crd.projectcalico.org/v1
kind: StagedGlobalNetworkPolicy
metadata: {name: trial}
spec: {types: [Egress], egress: [{action: Deny}]}
---
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkPolicy
metadata: {name: orphan}
spec: {tier: nowhere, types: [Egress], egress: [{action: Deny}]}
"""
        )
    )
    reasons = {ref.name: why for ref, why in plan.ignored}
    assert "staged" in reasons["trial"]
    assert "does not exist" in reasons["orphan"]
    verdict = plan.evaluate(ev.Endpoint.pod({}), ev.Flow(dst="192.0.2.1"))
    assert any("orphan" in note for note in verdict.notes)


def test_for_endpoint_is_cached_and_ordered(blog: ev.Plan) -> None:
    web = ev.Endpoint.pod({"app": "web"})
    first = blog.for_endpoint(web)
    assert blog.for_endpoint(ev.Endpoint.pod({"app": "web"})) is first
    assert [p.name for p in first.policies] == ["egress-traffic-blocking", "egress-traffic-allow"]
    assert blog.for_endpoint(web, PolicyType.INGRESS).policies == ()


def test_tiers_in_evaluation_order(blog: ev.Plan) -> None:
    assert [t.name for t in blog.tiers] == ["kube-admin", "default", "kube-baseline"]


def test_evaluate_accepts_resources() -> None:
    loaded = calico.load_paths([BLOG])
    verdict = ev.evaluate(loaded.resources, ev.Endpoint.pod({}), ev.Flow(dst="217.160.0.92"))
    assert verdict.action is Action.DENY


def test_effective_rule_selectors_fold_not_selector() -> None:
    policy = calico.load_text(
        """
apiVersion: crd.projectcalico.org/v1
kind: NetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  types: [Egress]
  egress:
    - action: Deny
      destination: {selector: "feed == 'x'", notSelector: has(exempt)}
    - action: Deny
      destination: {notSelector: has(exempt)}
"""
    ).policies[0]
    positive, negative = ev.effective_rule_selectors(policy, policy.egress[0].destination)
    assert negative is None
    assert positive is not None
    assert positive.matches({"feed": "x", "projectcalico.org/namespace": "shop"})
    assert not positive.matches({"feed": "x", "exempt": "1", "projectcalico.org/namespace": "shop"})
    assert not positive.matches({"feed": "x", "projectcalico.org/namespace": "other"})
    positive, negative = ev.effective_rule_selectors(policy, policy.egress[1].destination)
    # the namespace restriction becomes the positive selector, notSelector is folded into it
    assert positive is not None
    assert negative is None
    assert positive.matches({"projectcalico.org/namespace": "shop"})


def test_rule_nets_match_in_json_and_text() -> None:
    plan = ev.compile_plan(
        _load(
            """
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkPolicy
metadata: {name: by-nets}
spec:
  types: [Egress]
  egress:
    - {action: Deny, destination: {nets: [192.0.2.0/24, 203.0.113.0/25]}}
"""
        )
    )
    verdict = plan.evaluate(ev.Endpoint.pod({}), ev.Flow(dst="203.0.113.100"))
    step = verdict.trace[0]
    (match,) = step.matches
    assert (match.entity.kind, match.entity.name) == (ev.RULE_NETS, "destination.nets")
    assert match.describe() == "destination.nets (203.0.113.0/25)"
    doc = step.to_json()
    assert doc["network_set"] is None  # not a network set
    assert doc["cidr"] == "203.0.113.0/25"
    assert doc["matches"][0]["kind"] == "RuleNets"


def test_source_selector_match_without_address_has_no_cidr() -> None:
    plan = ev.compile_plan(
        _load(
            """
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkPolicy
metadata: {name: from-web}
spec:
  types: [Egress]
  egress:
    - {action: Deny, source: {selector: app == 'web'}}
"""
        )
    )
    verdict = plan.evaluate(ev.Endpoint.pod({"app": "web"}), ev.Flow(dst="192.0.2.1"))
    (match,) = verdict.trace[0].matches
    assert match.cidr is None
    assert match.entity.kind == "Endpoint"
    assert "its own address" in verdict.trace[0].why
    assert verdict.trace[0].to_json()["cidr"] is None
    with_ip = plan.evaluate(
        ev.Endpoint.pod({"app": "web"}, ips=["10.244.0.9"]), ev.Flow(dst="192.0.2.1")
    )
    (match,) = with_ip.trace[0].matches
    assert str(match.cidr) == "10.244.0.9/32"


def test_rules_of_a_converted_kubernetes_policy_point_at_its_rule_list() -> None:
    text = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
    - to: [{ipBlock: {cidr: 192.0.2.0/24}}]
"""
    plan = ev.compile_plan(calico.load_text(text, "knp.yaml"))
    verdict = plan.evaluate(ev.Endpoint.pod({}, "shop"), ev.Flow(dst="192.0.2.1"))
    step = verdict.trace[0]
    assert (step.policy.name if step.policy else None, step.outcome) == ("knp.default.db", "allow")
    assert step.location == "knp.yaml:7"
    assert (step.to_json()["file"], step.to_json()["line"]) == ("knp.yaml", 7)


def test_steps_of_resources_without_origin_have_no_location() -> None:
    policy = calico.GlobalNetworkPolicy(
        metadata=calico.Metadata("p"),
        types=(PolicyType.EGRESS,),
        egress=(calico.Rule(Action.DENY),),
    )
    (step,) = (
        ev.compile_plan([policy]).evaluate(ev.Endpoint.pod({}), ev.Flow(dst="192.0.2.1")).trace
    )
    assert step.location is None
    assert (step.to_json()["file"], step.to_json()["line"]) == (None, None)

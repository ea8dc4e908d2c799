"""Laws of the evaluator, checked with Hypothesis on generated policy sets.

* The compiled plan agrees with a naive reference evaluator written here from §5 of
  calico-semantics.md (tiers, order, name tie-break, Log/Allow/Deny/Pass, end-of-tier drop,
  profile), with ``ipaddress`` for containment and family filtering (§7.5).
* A verdict decided by an Allow or Deny in an earlier tier never changes when policies are
  added to a later tier.
* The order of the input documents does not matter (equal orders are resolved by name).
* Log rules never change the action, only ``logged``.
"""

from __future__ import annotations

import ipaddress
import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from egressguard import calico, selector
from egressguard.calico import evaluate as ev
from egressguard.calico.load import Manifests, from_dict

NETS_V4 = ["192.0.2.0/24", "192.0.2.0/25", "198.51.100.0/24", "198.51.100.7/32", "203.0.113.0/24"]
NETS_V6 = ["2001:db8::/32", "2001:db8:1::/48"]
ADDRESSES = [
    "192.0.2.1",
    "192.0.2.200",
    "198.51.100.7",
    "198.51.100.8",
    "203.0.113.9",
    "2001:db8::5",
    "2001:db8:1::5",
    "2001:db9::1",
]
PORTS = [53, 443, 8080, 9000]
ACTIONS = ["Allow", "Deny", "Log", "Pass"]
FEEDS = ["a", "b"]
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def rules(draw: st.DrawFn) -> dict[str, Any]:
    rule: dict[str, Any] = {"action": draw(st.sampled_from(ACTIONS))}
    proto = draw(st.sampled_from([None, "TCP", "UDP"]))
    dest: dict[str, Any] = {}
    if proto is not None:
        rule["protocol"] = proto
        if draw(st.booleans()):
            dest["ports"] = draw(
                st.lists(st.sampled_from([53, 443, "8000:8080"]), min_size=1, max_size=2)
            )
    family_pool = draw(st.sampled_from([NETS_V4, NETS_V6]))
    if draw(st.booleans()):
        dest["nets"] = draw(st.lists(st.sampled_from(family_pool), min_size=1, max_size=2))
    if draw(st.booleans()):
        dest["notNets"] = draw(st.lists(st.sampled_from(family_pool), min_size=1, max_size=1))
    if draw(st.booleans()):
        dest["selector"] = f"feed == '{draw(st.sampled_from(FEEDS))}'"
        dest["namespaceSelector"] = "global()"
    if dest:
        rule["destination"] = dest
    return rule


@st.composite
def policy_sets(draw: st.DrawFn) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for i in range(draw(st.integers(0, 3))):
        nets = draw(st.lists(st.sampled_from(NETS_V4 + NETS_V6), min_size=1, max_size=3))
        docs.append(
            {
                "apiVersion": "crd.projectcalico.org/v1",
                "kind": "GlobalNetworkSet",
                "metadata": {"name": f"set-{i}", "labels": {"feed": draw(st.sampled_from(FEEDS))}},
                "spec": {"nets": nets},
            }
        )
    tiers = ["default"]
    for name in draw(st.lists(st.sampled_from(["t1", "t2"]), unique=True, max_size=2)):
        spec: dict[str, Any] = {}
        order = draw(st.sampled_from([None, 10, 100, 2_000_000]))
        if order is not None:
            spec["order"] = order
        if draw(st.booleans()):
            spec["defaultAction"] = draw(st.sampled_from(["Deny", "Pass"]))
        docs.append(
            {
                "apiVersion": "crd.projectcalico.org/v1",
                "kind": "Tier",
                "metadata": {"name": name},
                "spec": spec,
            }
        )
        tiers.append(name)
    names = draw(
        st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), min_size=1, max_size=4, unique=True)
    )
    for name in names:
        spec = {"tier": draw(st.sampled_from(tiers)), "types": ["Egress"]}
        order = draw(st.sampled_from([None, 0, 1, 10]))
        if order is not None:
            spec["order"] = order
        chooser = draw(st.sampled_from([None, "app == 'web'", "app == 'db'"]))
        if chooser is not None:
            spec["selector"] = chooser
        spec["egress"] = draw(st.lists(rules(), max_size=3))
        docs.append(
            {
                "apiVersion": "crd.projectcalico.org/v1",
                "kind": "GlobalNetworkPolicy",
                "metadata": {"name": name},
                "spec": spec,
            }
        )
    return docs


def manifests_of(docs: list[dict[str, Any]]) -> Manifests:
    for doc in docs:
        assert calico.validate(doc) == [], doc  # the generator makes valid documents only
    return Manifests.of(from_dict(d) for d in docs)


flows = st.builds(
    ev.Flow,
    dst=st.sampled_from(ADDRESSES),
    protocol=st.sampled_from(["TCP", "UDP"]),
    dst_port=st.sampled_from(PORTS),
)
endpoints = st.sampled_from(["web", "db"]).map(lambda app: ev.Endpoint.pod({"app": app}))


# --------------------------------------------------------------------------------------------
# The reference evaluator: straight from the pseudo-code, no plan, no index.

BUILTIN = {"default": (1_000_000.0, "Deny"), "kube-admin": (1000.0, "Pass"),
           "kube-baseline": (10_000_000.0, "Pass")}  # fmt: skip


def _family_nets(nets: list[str], version: int) -> list[Any]:
    return [n for n in map(ipaddress.ip_network, nets) if n.version == version]


def _rule_matches(rule: dict[str, Any], flow: ev.Flow, sets: list[dict[str, Any]]) -> bool:
    addr = ipaddress.ip_address(flow.dst or "")
    dest = rule.get("destination", {})
    for key in ("nets", "notNets"):
        if key in dest and not _family_nets(dest[key], addr.version):
            return False  # §7.5: the rule does not exist for this family
    if "protocol" in rule and rule["protocol"] != flow.protocol:
        return False
    if "ports" in dest:
        ok = False
        for port in dest["ports"]:
            lo, _, hi = str(port).partition(":")
            if int(lo) <= (flow.dst_port or -1) <= int(hi or lo):
                ok = True
        if not ok:
            return False
    if "nets" in dest and not any(addr in n for n in _family_nets(dest["nets"], addr.version)):
        return False
    if "notNets" in dest and any(addr in n for n in _family_nets(dest["notNets"], addr.version)):
        return False
    if "selector" in dest:
        chosen = selector.parse(dest["selector"])
        held = any(
            chosen.matches(s["metadata"]["labels"])
            and any(addr in n for n in _family_nets(s["spec"]["nets"], addr.version))
            for s in sets
        )
        if not held:
            return False
    return True


def reference(docs: list[dict[str, Any]], app: str, flow: ev.Flow) -> tuple[str, bool, str]:
    tiers = dict(BUILTIN)
    for doc in docs:
        if doc["kind"] == "Tier":
            spec = doc["spec"]
            tiers[doc["metadata"]["name"]] = (spec.get("order"), spec.get("defaultAction", "Deny"))
    ordered = sorted(tiers, key=lambda t: (tiers[t][0] is None, tiers[t][0] or 0.0, t))
    sets = [d for d in docs if d["kind"] == "GlobalNetworkSet"]
    policies = [d for d in docs if d["kind"] == "GlobalNetworkPolicy"]
    logged = False
    for tier in ordered:
        chosen = [
            p
            for p in policies
            if p["spec"]["tier"] == tier
            and selector.parse(p["spec"].get("selector", "")).matches({"app": app})
        ]
        if not chosen:
            continue
        chosen.sort(key=lambda p: (p["spec"].get("order", float("inf")), p["metadata"]["name"]))
        passed = False
        for pol in chosen:
            for i, rule in enumerate(pol["spec"]["egress"]):
                if not _rule_matches(rule, flow, sets):
                    continue
                action = rule["action"]
                if action == "Log":
                    logged = True
                    continue
                if action == "Pass":
                    passed = True
                    break
                return action, logged, f"{pol['metadata']['name']}[{i}]"
            if passed:
                break
        if passed:
            continue
        if tiers[tier][1] == "Pass":
            continue
        return "Deny", logged, f"end-of-tier {tier}"
    return "Allow", logged, "profile"


def _decided(verdict: ev.Verdict) -> str:
    step = verdict.decided_by
    assert step is not None
    if step.kind is ev.StepKind.RULE:
        assert step.policy is not None
        return f"{step.policy.name}[{step.rule}]"
    if step.kind is ev.StepKind.END_OF_TIER:
        return f"end-of-tier {step.tier}"
    return "profile"


@SETTINGS
@given(policy_sets(), st.sampled_from(["web", "db"]), flows)
def test_plan_agrees_with_reference(docs: list[dict[str, Any]], app: str, flow: ev.Flow) -> None:
    verdict = ev.compile_plan(manifests_of(docs)).evaluate(ev.Endpoint.pod({"app": app}), flow)
    assert (str(verdict.action), verdict.logged, _decided(verdict)) == reference(docs, app, flow)


@SETTINGS
@given(policy_sets(), policy_sets(), endpoints, flows)
def test_later_tier_never_changes_an_earlier_allow_or_deny(
    first: list[dict[str, Any]],
    extra: list[dict[str, Any]],
    endpoint: ev.Endpoint,
    flow: ev.Flow,
) -> None:
    verdict = ev.compile_plan(manifests_of(first)).evaluate(endpoint, flow)
    step = verdict.decided_by
    if step is None or step.kind is not ev.StepKind.RULE:
        return
    # Put every extra policy in a new tier that sorts after every tier in use: no order (after
    # every tier with one) and a name after the generated ones (tiers without order sort by name).
    later = [
        {"apiVersion": "crd.projectcalico.org/v1", "kind": "Tier",
         "metadata": {"name": "zz-later"}, "spec": {}},
    ]  # fmt: skip
    for doc in extra:
        if doc["kind"] == "GlobalNetworkPolicy":
            moved = {**doc, "metadata": {"name": "later-" + doc["metadata"]["name"]}}
            moved["spec"] = {**doc["spec"], "tier": "zz-later"}
            later.append(moved)
    again = ev.compile_plan(manifests_of(first + later)).evaluate(endpoint, flow)
    assert (again.action, again.logged, again.reason) == (
        verdict.action,
        verdict.logged,
        verdict.reason,
    )
    assert [str(s) for s in again.trace] == [str(s) for s in verdict.trace]


@SETTINGS
@given(policy_sets(), endpoints, flows, st.randoms(use_true_random=False))
def test_input_order_does_not_matter(
    docs: list[dict[str, Any]], endpoint: ev.Endpoint, flow: ev.Flow, rnd: Any
) -> None:
    shuffled = list(docs)
    rnd.shuffle(shuffled)
    one = ev.compile_plan(manifests_of(docs)).evaluate(endpoint, flow)
    two = ev.compile_plan(manifests_of(shuffled)).evaluate(endpoint, flow)
    assert (one.action, one.logged, one.reason) == (two.action, two.logged, two.reason)
    assert [(str(s), s.outcome) for s in one.trace] == [(str(s), s.outcome) for s in two.trace]


@SETTINGS
@given(policy_sets(), endpoints, flows)
def test_log_rules_change_only_logged(
    docs: list[dict[str, Any]], endpoint: ev.Endpoint, flow: ev.Flow
) -> None:
    without_log = []
    for doc in docs:
        if doc["kind"] == "GlobalNetworkPolicy":
            spec = dict(doc["spec"])
            spec["egress"] = [r for r in spec["egress"] if r["action"] != "Log"]
            without_log.append({**doc, "spec": spec})
        else:
            without_log.append(doc)
    with_log = ev.compile_plan(manifests_of(docs)).evaluate(endpoint, flow)
    plain = ev.compile_plan(manifests_of(without_log)).evaluate(endpoint, flow)
    assert with_log.action == plain.action
    assert with_log.reason == plain.reason
    assert plain.logged is False
    assert with_log.logged == any(s.outcome == "log" for s in with_log.trace)


def test_equal_orders_are_resolved_by_name_in_every_permutation() -> None:
    """Three policies of equal order: every input order gives the same, name-sorted trace."""
    docs = [
        {"apiVersion": "crd.projectcalico.org/v1", "kind": "GlobalNetworkPolicy",
         "metadata": {"name": name},
         "spec": {"order": 5, "types": ["Egress"], "egress": [{"action": "Log"}]}}
        for name in ("charlie", "alpha", "bravo")
    ]  # fmt: skip
    seen = set()
    for perm in itertools.permutations(docs):
        verdict = ev.compile_plan(manifests_of(list(perm))).evaluate(
            ev.Endpoint.pod({}), ev.Flow(dst="192.0.2.1")
        )
        seen.add(tuple(str(s) for s in verdict.trace))
    assert seen == {
        (
            "default gnp/alpha egress[0] Log",
            "default gnp/bravo egress[0] Log",
            "default gnp/charlie egress[0] Log",
            "default end-of-tier Deny",
        )
    }

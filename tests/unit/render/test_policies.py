"""Policies: exact YAML of both modes, who is subject, and the default-deny safety net."""

from __future__ import annotations

import re

import pytest

from egressguard import selector
from egressguard.calico import (
    API_V1,
    API_V3,
    BUILTIN_TIERS,
    Action,
    EntityRule,
    GlobalNetworkPolicy,
    Metadata,
    Namespace,
    Pod,
    Rule,
    Tier,
    from_dict,
    validate,
)
from egressguard.calico.model import PolicyType
from egressguard.render import manifest_text, policies
from egressguard.render.policies import PolicySettings, check_policies, policy_resources

HASH = re.compile(r"sha256:[0-9a-f]{64}")


def text_of(settings: PolicySettings, api: str = API_V1) -> str:
    return HASH.sub(
        "HASH", "".join(manifest_text(m) for m in policies.render_policies(settings, api))
    )


# The policy design of DESIGN §4 written out by hand: a tier before the default tier, Log then
# Deny for the blocklist's sets (global() so pods never match), then Pass.
TIER_GOLDEN = """\
---
apiVersion: crd.projectcalico.org/v1
kind: Tier
metadata:
  name: egressguard
  labels:
    app.kubernetes.io/managed-by: egressguard
    egressguard.io/blocklist: egress-blocklist
  annotations:
    egressguard.io/content-hash: HASH
spec:
  order: 100
---
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkPolicy
metadata:
  name: egressguard.egress-blocklist
  labels:
    app.kubernetes.io/managed-by: egressguard
    egressguard.io/blocklist: egress-blocklist
  annotations:
    egressguard.io/content-hash: HASH
spec:
  tier: egressguard
  order: 0
  selector: all()
  namespaceSelector: all()
  types:
  - Egress
  egress:
  - action: Log
    destination:
      selector: egressguard.io/blocklist == 'egress-blocklist'
      namespaceSelector: global()
  - action: Deny
    destination:
      selector: egressguard.io/blocklist == 'egress-blocklist'
      namespaceSelector: global()
  - action: Pass
"""

# The reference scenario (examples/blog) with the label the user chose, plus global().
BLOG_GOLDEN = """\
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: egress-traffic-blocking
  labels:
    app.kubernetes.io/managed-by: egressguard
    egressguard.io/blocklist: egress-traffic-blocking
  annotations:
    egressguard.io/content-hash: HASH
spec:
  order: 0
  selector: all()
  namespaceSelector: all()
  types:
  - Egress
  egress:
  - action: Log
    destination:
      selector: policy == 'egress-traffic-blocking'
      namespaceSelector: global()
  - action: Deny
    destination:
      selector: policy == 'egress-traffic-blocking'
      namespaceSelector: global()
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: egress-traffic-blocking-allow
  labels:
    app.kubernetes.io/managed-by: egressguard
    egressguard.io/blocklist: egress-traffic-blocking
  annotations:
    egressguard.io/content-hash: HASH
spec:
  order: 1000
  selector: all()
  namespaceSelector: all()
  types:
  - Egress
  egress:
  - action: Allow
"""


def test_tier_mode_golden() -> None:
    assert text_of(PolicySettings("egress-blocklist")) == TIER_GOLDEN


def test_blog_mode_golden() -> None:
    settings = PolicySettings("egress-traffic-blocking", mode="blog", set_label="policy")
    assert text_of(settings, API_V3) == BLOG_GOLDEN


def test_log_off_keeps_deny_then_pass() -> None:
    (_, gnp) = policy_resources(PolicySettings("bl", log=False))
    assert isinstance(gnp, GlobalNetworkPolicy)
    assert [r.action for r in gnp.egress] == [Action.DENY, Action.PASS]


def test_tier_is_ordered_before_kube_admin_and_default() -> None:
    tier, gnp = policy_resources(PolicySettings("bl", tier="blocking", tier_order=50))
    assert isinstance(tier, Tier)
    assert tier.name == "blocking"
    assert tier.order is not None
    builtin = {name: t.order for name, t in BUILTIN_TIERS.items()}
    assert tier.order < builtin["kube-admin"] < builtin["default"]
    assert isinstance(gnp, GlobalNetworkPolicy)
    assert gnp.tier == "blocking"
    assert gnp.name == "blocking.bl"


def test_sources_annotation_goes_on_the_blocking_policy_only() -> None:
    settings = PolicySettings("bl", annotations={"egressguard.io/sources": "[]"})
    tier, gnp = policies.render_policies(settings)
    assert "egressguard.io/sources" in gnp["metadata"]["annotations"]
    assert "egressguard.io/sources" not in tier["metadata"]["annotations"]


@pytest.mark.parametrize("mode", ["tier", "blog"])
@pytest.mark.parametrize("api", [API_V1, API_V3])
def test_rendered_policies_pass_calicos_validation(mode: str, api: str) -> None:
    settings = PolicySettings(
        "egress-blocklist",
        mode=mode,  # type: ignore[arg-type]
        exempt_namespaces=("kube-system", "monitoring"),
        exempt_selector="egressguard.io/exempt == 'true'",
    )
    for manifest in policies.render_policies(settings, api):
        assert validate(manifest) == []


# --------------------------------------------------------------------------------------------
# who is subject: evaluated the way Felix rewrites the selectors


def pod(ns: str, **labels: str) -> dict[str, str]:
    return Pod(metadata=Metadata("p", namespace=ns, labels=labels)).calico_labels(
        Namespace.implicit(ns)
    )


HOST_ENDPOINT = {"kubernetes-host": "", "node": "aks-1"}


def subject(settings: PolicySettings, labels: dict[str, str]) -> bool:
    sel, ns_sel = policies.endpoint_scope(settings)
    return selector.policy_selector(sel, namespace_selector=ns_sel or "").matches(labels)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            PolicySettings("bl"),
            {"default": True, "kube-system": True, "exempt": True, "hep": False},
        ),
        (
            PolicySettings("bl", exempt_namespaces=("kube-system",)),
            {"default": True, "kube-system": False, "exempt": True, "hep": False},
        ),
        (
            PolicySettings(
                "bl", exempt_namespaces=("kube-system",), exempt_selector="egress == 'open'"
            ),
            {"default": True, "kube-system": False, "exempt": False, "hep": False},
        ),
        (
            PolicySettings("bl", host_endpoints=True, exempt_namespaces=("kube-system",)),
            {"default": True, "kube-system": False, "exempt": True, "hep": True},
        ),
        (
            PolicySettings("bl", host_endpoints=True),
            {"default": True, "kube-system": True, "exempt": True, "hep": True},
        ),
    ],
)
def test_endpoint_scope(settings: PolicySettings, expected: dict[str, bool]) -> None:
    endpoints = {
        "default": pod("default", app="web"),
        "kube-system": pod("kube-system", k8s_app="coredns"),
        "exempt": pod("default", egress="open"),
        "hep": HOST_ENDPOINT,
    }
    assert {k: subject(settings, v) for k, v in endpoints.items()} == expected


def test_destination_reaches_network_sets_but_never_pods() -> None:
    settings = PolicySettings("bl", set_label="policy")
    (_, gnp) = policy_resources(settings)
    assert isinstance(gnp, GlobalNetworkPolicy)
    dest = gnp.egress[0].destination
    effective = selector.entity_rule_selector(
        selector=dest.selector or "", namespace_selector=dest.namespace_selector or ""
    )
    assert effective is not None
    assert effective.matches({"policy": "bl"})  # a GlobalNetworkSet shard
    assert not effective.matches(pod("default", policy="bl"))  # a pod with the same label
    assert not effective.matches({"policy": "other"})


# --------------------------------------------------------------------------------------------
# the safety net


@pytest.mark.parametrize("mode", ["tier", "blog"])
def test_rendered_sets_are_safe(mode: str) -> None:
    for settings in (
        PolicySettings("bl", mode=mode),  # type: ignore[arg-type]
        PolicySettings("bl", mode=mode, exempt_namespaces=("a",), host_endpoints=True),  # type: ignore[arg-type]
        PolicySettings("bl", mode=mode, log=False, exempt_selector="x == 'y'"),  # type: ignore[arg-type]
    ):
        assert check_policies(policy_resources(settings)) == []


BLOCK = EntityRule(selector="policy == 'bl'", namespace_selector="global()")


def gnp(name: str, rules: tuple[Rule, ...], **kw: object) -> GlobalNetworkPolicy:
    return GlobalNetworkPolicy(
        metadata=Metadata(name),
        types=(PolicyType.EGRESS,),
        egress=rules,
        **kw,  # type: ignore[arg-type]
    )


def test_log_deny_without_pass_in_own_tier_is_reported() -> None:
    tier = Tier(metadata=Metadata("blocking"), order=100)
    policy = gnp(
        "blocking.bl",
        (Rule(Action.LOG, destination=BLOCK), Rule(Action.DENY, destination=BLOCK)),
        tier="blocking",
    )
    (finding,) = check_policies([tier, policy])
    assert "end of tier 'blocking'" in finding
    assert "lose all other egress" in finding


def test_tier_with_pass_default_action_needs_no_pass_rule() -> None:
    tier = Tier(metadata=Metadata("blocking"), order=100, default_action=Action.PASS)
    policy = gnp("blocking.bl", (Rule(Action.DENY, destination=BLOCK),), tier="blocking")
    assert check_policies([tier, policy]) == []


def test_blog_blocking_policy_without_allow_policy_is_reported() -> None:
    block = gnp(
        "bl", (Rule(Action.LOG, destination=BLOCK), Rule(Action.DENY, destination=BLOCK)), order=0
    )
    (finding,) = check_policies([block])
    assert "end of tier 'default'" in finding
    allow = gnp("bl-allow", (Rule(Action.ALLOW),), order=1000)
    assert check_policies([block, allow]) == []


def test_allow_policy_that_misses_some_endpoints_is_reported() -> None:
    block = gnp("bl", (Rule(Action.DENY, destination=BLOCK),), order=0, selector="all()")
    narrow = gnp("bl-allow", (Rule(Action.ALLOW),), order=1000, selector="app == 'web'")
    assert len(check_policies([block, narrow])) == 1


def test_unconditional_deny_is_reported() -> None:
    tier = Tier(metadata=Metadata("blocking"), order=100)
    policy = gnp("blocking.bl", (Rule(Action.DENY), Rule(Action.PASS)), tier="blocking")
    findings = check_policies([tier, policy])
    assert any("egress rule 0 denies all egress" in f for f in findings)
    # the Pass after it is never reached, so the tier check fails as well
    assert any("end of tier" in f for f in findings)


def test_ingress_only_policies_are_not_egress_findings() -> None:
    policy = from_dict(
        {
            "apiVersion": API_V3,
            "kind": "GlobalNetworkPolicy",
            "metadata": {"name": "in"},
            "spec": {"types": ["Ingress"], "ingress": [{"action": "Deny"}]},
        }
    )
    assert check_policies([policy]) == []  # type: ignore[list-item]

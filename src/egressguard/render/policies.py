"""The policies that enforce a blocklist: tier mode (the default) and blog mode.

Tier mode (DESIGN §4, needs tiers: open-source Calico ≥ 3.29)::

    Tier egressguard                order 100: before kube-admin (1000) and default (1,000,000)
    GlobalNetworkPolicy egressguard.<blocklist>   in that tier, types [Egress]
      egress:
      - Log   destination {selector: <label> == '<blocklist>', namespaceSelector: global()}
      - Deny  (same destination)
      - Pass                        everything else goes on to the next tier

``global()`` restricts the destination selector to GlobalNetworkSets (and host endpoints), so a
pod that happens to carry the label is never treated as a blocked destination. The final
``Pass`` hands all other traffic to the next tier: Kubernetes NetworkPolicies and the user's
Calico policies in the default tier keep deciding everything else, and the tier's end-of-tier
drop is never reached. The policy is named ``<tier>.<blocklist>`` because Calico up to 3.29
requires the tier prefix on the names of tiered policies (and later releases accept it).

Blog mode renders the two policies of the reference scenario (``examples/blog``), for clusters
without tiers: ``<blocklist>`` (order 0: Log, Deny) and ``<blocklist>-allow`` (order 1000: one
``Allow``), both in the default tier. Its cost: the order-1000 Allow decides *before* most
Kubernetes NetworkPolicies of the default tier are consulted for egress, so their egress
isolation is bypassed for the selected pods; ``lint`` reports it. Unlike the blog, the
destination carries ``namespaceSelector: global()`` for the reason above.

Which endpoints are subject (both modes, both policies alike): pods only by default
(``namespaceSelector: all()``); ``exempt_namespaces`` become
``has(projectcalico.org/name) && projectcalico.org/name not in {...}`` (the ``has`` keeps host
endpoints out, which carry no namespace labels); ``exempt_selector`` is negated into the
policy's ``selector``; ``host_endpoints`` moves the namespace test into ``selector`` so host
endpoints are included.

``check_policies`` is the safety net run on every rendered policy set: it reports a set that
would deny all egress of the endpoints it selects (an unconditional Deny, or a policy whose
unmatched traffic reaches a Deny end-of-tier with nothing to pass or allow it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from egressguard import selector
from egressguard.calico.dump import to_dict
from egressguard.calico.model import (
    API_V1,
    BUILTIN_TIERS,
    DEFAULT_TIER,
    Action,
    EntityRule,
    FrozenMap,
    GlobalNetworkPolicy,
    Metadata,
    NetworkPolicy,
    Policy,
    PolicyType,
    Resource,
    Rule,
    Tier,
)
from egressguard.render.ownership import BLOCKLIST_LABEL, ownership_labels, stamp

__all__ = [
    "DEFAULT_TIER_NAME",
    "DEFAULT_TIER_ORDER",
    "PolicySettings",
    "check_policies",
    "endpoint_scope",
    "policy_resources",
    "render_policies",
    "set_selector",
]

DEFAULT_TIER_NAME: Final = "egressguard"
DEFAULT_TIER_ORDER: Final = 100.0
Mode = Literal["tier", "blog"]


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """How to render the policies of one blocklist (``spec.policy`` of the config)."""

    blocklist: str
    mode: Mode = "tier"
    set_label: str = BLOCKLIST_LABEL
    tier: str = DEFAULT_TIER_NAME
    tier_order: float = DEFAULT_TIER_ORDER
    order: float = 0.0
    allow_order: float = 1000.0
    log: bool = True
    exempt_namespaces: tuple[str, ...] = ()
    exempt_selector: str | None = None
    host_endpoints: bool = False
    #: Extra annotations of the blocking policy (the build puts the source versions here).
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def blocking_name(self) -> str:
        return f"{self.tier}.{self.blocklist}" if self.mode == "tier" else self.blocklist

    @property
    def allow_name(self) -> str:
        return f"{self.blocklist}-allow"


def _quote(value: str) -> str:
    # label values and namespace names never contain quotes (both are validated upstream)
    return f"'{value}'"


def set_selector(settings: PolicySettings) -> str:
    """``<label> == '<blocklist>'``: what every shard carries and the rules select."""
    return f"{settings.set_label} == {_quote(settings.blocklist)}"


def endpoint_scope(settings: PolicySettings) -> tuple[str, str | None]:
    """``(selector, namespaceSelector)`` of the policies: which endpoints are subject."""
    names = sorted(set(settings.exempt_namespaces))
    parts: list[str] = []
    namespace_selector: str | None
    listed = ", ".join(_quote(n) for n in names)
    if settings.host_endpoints:
        namespace_selector = None
        if names:
            parts.append(f"projectcalico.org/namespace not in {{{listed}}}")
    elif names:
        namespace_selector = (
            f"has(projectcalico.org/name) && projectcalico.org/name not in {{{listed}}}"
        )
    else:
        namespace_selector = "all()"
    if settings.exempt_selector:
        parts.append(f"!({settings.exempt_selector})")
    return (" && ".join(parts) or "all()"), namespace_selector


def _blocked_destination(settings: PolicySettings) -> EntityRule:
    return EntityRule(selector=set_selector(settings), namespace_selector="global()")


def _labels(settings: PolicySettings) -> FrozenMap:
    return FrozenMap(sorted(ownership_labels(settings.blocklist).items()))


def policy_resources(settings: PolicySettings, api_version: str = API_V1) -> list[Resource]:
    """The model objects of the policy set, in apply order (a Tier before its policies)."""
    sel, ns_sel = endpoint_scope(settings)
    destination = _blocked_destination(settings)
    rules: list[Rule] = []
    if settings.log:
        rules.append(Rule(Action.LOG, destination=destination))
    rules.append(Rule(Action.DENY, destination=destination))
    labels = _labels(settings)
    tiered = settings.mode == "tier"
    if tiered:
        rules.append(Rule(Action.PASS))
    blocking = GlobalNetworkPolicy(
        metadata=Metadata(
            settings.blocking_name,
            labels=labels,
            annotations=FrozenMap(sorted(settings.annotations.items())),
        ),
        api_version=api_version,
        tier=settings.tier if tiered else DEFAULT_TIER,
        order=settings.order,
        selector=sel,
        namespace_selector=ns_sel,
        types=(PolicyType.EGRESS,),
        egress=tuple(rules),
    )
    if tiered:
        tier = Tier(
            metadata=Metadata(settings.tier, labels=labels),
            api_version=api_version,
            order=settings.tier_order,
        )
        return [tier, blocking]
    allow = GlobalNetworkPolicy(
        metadata=Metadata(settings.allow_name, labels=labels),
        api_version=api_version,
        order=settings.allow_order,
        selector=sel,
        namespace_selector=ns_sel,
        types=(PolicyType.EGRESS,),
        egress=(Rule(Action.ALLOW),),
    )
    return [blocking, allow]


def render_policies(settings: PolicySettings, api_version: str = API_V1) -> list[dict[str, Any]]:
    """The stamped manifests of ``policy_resources``."""
    return [stamp(to_dict(r, api_version)) for r in policy_resources(settings, api_version)]


# --------------------------------------------------------------------------------------------
# safety net


def _norm(text: str | None) -> str:
    if text is None or not text.strip():
        return str(selector.parse("all()"))
    return str(selector.parse(text))


def _scope(policy: Policy) -> tuple[str, str | None]:
    ns = getattr(policy, "namespace_selector", None)
    return _norm(policy.selector), (_norm(ns) if ns else None)


def _covers(wide: Policy, narrow: Policy) -> bool:
    """Whether ``wide`` certainly applies to every endpoint ``narrow`` applies to."""
    if isinstance(wide, NetworkPolicy) != isinstance(narrow, NetworkPolicy):
        return False
    if isinstance(wide, NetworkPolicy) and wide.namespace != narrow.namespace:
        return False
    scope = _scope(wide)
    return scope == _scope(narrow) or scope == (_norm(None), None)


def _ends_open(policy: Policy) -> bool:
    """The policy ends egress evaluation for all traffic with Allow or Pass, not with Deny."""
    for rule in policy.egress:
        if rule.is_catch_all:
            return rule.action in (Action.ALLOW, Action.PASS)
    return False


def check_policies(resources: Iterable[Resource]) -> list[str]:
    """Findings for a policy set that would cut endpoints off: an unconditional egress Deny, or
    egress traffic its rules do not match falling through to a Deny end-of-tier.

    Staged policies are ignored (they are never enforced). An empty list means the set is safe
    in this respect.
    """
    items = list(resources)
    tiers: dict[str, Tier] = dict(BUILTIN_TIERS)
    tiers.update({r.name: r for r in items if isinstance(r, Tier)})
    policies = [
        r
        for r in items
        if isinstance(r, GlobalNetworkPolicy | NetworkPolicy) and r.governs(PolicyType.EGRESS)
    ]
    findings: list[str] = []
    for policy in policies:
        for index, rule in enumerate(policy.egress):
            if rule.action is Action.DENY and rule.matches_whole_family:
                family = f" IPv{rule.ip_version}" if rule.ip_version else ""
                findings.append(
                    f"{policy.describe()}: egress rule {index} denies all{family} egress of "
                    "every endpoint it selects"
                )
        tier = tiers.get(policy.tier)
        if tier is None or tier.effective_default_action is Action.PASS:
            continue  # a policy in a missing tier is not enforced at all
        peers = [q for q in policies if q.tier == policy.tier and _covers(q, policy)]
        if not any(_ends_open(q) for q in peers):
            tier_name = policy.tier or DEFAULT_TIER
            findings.append(
                f"{policy.describe()}: egress its rules do not match reaches the end of tier "
                f"{tier_name!r}, whose default action is Deny; every endpoint it selects would "
                "lose all other egress (end the policy with Pass, or add an Allow policy)"
            )
    return findings

"""``lint``: the pitfalls of a Calico policy set, as located findings with a fix hint.

Every check has a stable id (``RULES``, documented with an example in ``docs/lint.md``), a
severity (``error``: the policy set does not do what it plainly means to, or breaks the cluster;
``warning``: it probably does something unintended; ``info``: worth knowing) and reports where
(file, line, YAML path). ``lint(manifests, options)`` returns the findings sorted by place;
nothing here raises on bad input: documents that fail validation are findings too.

The facts behind the checks are in ``shared/reference/calico-semantics.md``: §5 (Log does not
end evaluation, end-of-tier drop, Allow is final, profiles), §1.3 (what a rule selector
reaches), §2.1 (Felix reads an empty ``types`` as both directions), §2.2 (tiers). Fields
Calico's validator refuses (``allowedEgressDomains`` among them) are ``invalid-document``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from egressguard import selector as sel
from egressguard.calico.evaluate import (
    NETWORK_SET_KINDS,
    Plan,
    compile_plan,
    effective_rule_selectors,
    policy_endpoint_selector,
)
from egressguard.calico.load import Manifests
from egressguard.calico.model import (
    API_V1,
    DEFAULT_TIER,
    Action,
    EntityRule,
    NetworkPolicy,
    Policy,
    PolicyType,
    Port,
    Resource,
    Rule,
    StagedGlobalNetworkPolicy,
    StagedNetworkPolicy,
    Tier,
)
from egressguard.cidr.addresses import Cidr, CidrError, parse_cidr
from egressguard.cidr.lookup import ProvenanceIndex
from egressguard.cidr.sets import AddressSet
from egressguard.errors import InputError, SelectorError
from egressguard.problems import Path, format_path

__all__ = [
    "ALWAYS_CRITICAL",
    "RULES",
    "Finding",
    "LintOptions",
    "LintRule",
    "Severity",
    "has_errors",
    "lint",
]


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class LintRule(NamedTuple):
    """A check: its stable id, severity and one-line title."""

    id: str
    severity: Severity
    title: str


_RULE_LIST: Final = (
    LintRule(
        "invalid-document",
        Severity.ERROR,
        "a document fails Calico's validation",
    ),
    LintRule(
        "log-never-fires",
        Severity.ERROR,
        "a Log rule comes after a rule that ends evaluation for everything it would log",
    ),
    LintRule(
        "shadowed-rule",
        Severity.WARNING,
        (
            "a rule can never match: an earlier Allow/Deny/Pass rule of the policy takes "
            "every packet it would"
        ),
    ),
    LintRule(
        "egress-default-deny",
        Severity.ERROR,
        (
            "an egress block-list policy ends its tier without a verdict for the traffic it "
            "does not block: all other egress is denied"
        ),
    ),
    LintRule(
        "log-only-policy",
        Severity.ERROR,
        ("a policy made only of Log rules denies everything it selects at the end of its tier"),
    ),
    LintRule(
        "implicit-types",
        Severity.ERROR,
        (
            "a crd.projectcalico.org/v1 policy without types governs both directions in Felix"
            " and denies the one it has no rules for"
        ),
    ),
    LintRule(
        "allow-all-bypasses-k8s-isolation",
        Severity.WARNING,
        (
            "an allow-all egress rule at or before the default tier overrides Kubernetes "
            "NetworkPolicy egress isolation"
        ),
    ),
    LintRule(
        "selector-reaches-pods",
        Severity.WARNING,
        (
            "a rule selector that targets network sets can also match pods: it lacks "
            "namespaceSelector: global()"
        ),
    ),
    LintRule(
        "selector-matches-no-set",
        Severity.WARNING,
        "a rule selector reaches no network set (and no pod) among the inputs",
    ),
    LintRule(
        "unused-network-set",
        Severity.WARNING,
        "no policy rule selector reaches this network set",
    ),
    LintRule(
        "blocks-critical-address",
        Severity.ERROR,
        (
            "a Deny rule blocks a cluster-critical address (Azure wireserver, instance "
            "metadata, DNS, API server, pod or service network)"
        ),
    ),
    LintRule(
        "missing-tier",
        Severity.ERROR,
        "a policy names a tier that does not exist; Felix skips it",
    ),
    LintRule(
        "selects-no-pods",
        Severity.WARNING,
        "a policy's selector matches none of the pods among the inputs",
    ),
    LintRule(
        "pass-in-last-tier",
        Severity.INFO,
        ("a Pass in the last tier with policies hands the flow to the profiles, which allow pods"),
    ),
    LintRule(
        "deny-not-logged",
        Severity.INFO,
        (
            "a Deny rule has no Log rule with the same match before it: blocked packets leave"
            " no log line"
        ),
    ),
    LintRule(
        "staged-policy",
        Severity.INFO,
        "a staged policy is never enforced",
    ),
)

#: Every check by id.
RULES: Final[dict[str, LintRule]] = {r.id: r for r in _RULE_LIST}

#: Addresses no blocklist should ever hold, whatever the cluster (with what they are). The one
#: table: ``build`` always subtracts them and the nft agent refuses to drop them too.
ALWAYS_CRITICAL: Final[dict[str, str]] = {
    "168.63.129.16": "the Azure wireserver (DHCP, DNS, health probes, VM agent)",
    "169.254.169.254": "the cloud instance metadata service (IMDS)",
    "fd00:ec2::254": "the AWS instance metadata service over IPv6",
    "fd00:ec2::253": "the AWS Route 53 resolver over IPv6",
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One finding: stable ``id``, ``severity``, ``message`` (what and why), ``hint`` (how to
    fix it), and where: ``file``, ``line`` (1-based), ``path`` (YAML path in the document)."""

    id: str
    severity: Severity
    message: str
    hint: str
    file: str | None = None
    line: int | None = None
    path: str = ""

    def where(self) -> str:
        if self.file is None:
            return ""
        return f"{self.file}:{self.line}" if self.line is not None else self.file

    def __str__(self) -> str:
        head = " ".join(p for p in (self.where(), self.path) if p)
        return f"{head + ': ' if head else ''}{self.severity} {self.id}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": str(self.severity),
            "message": self.message,
            "hint": self.hint,
            "file": self.file,
            "line": self.line,
            "path": self.path,
        }


@dataclass(frozen=True, slots=True)
class LintOptions:
    """What lint knows about the cluster. Addresses and CIDRs are text.

    ``dns_ips`` and ``apiserver_ips`` are critical addresses; ``service_cidrs`` adds the API
    server's service IP (the first address) and the conventional DNS service IP (the tenth:
    ``10.0.0.10`` in ``10.0.0.0/16``) unless given explicitly, and flags any block of the
    service network; ``cluster_cidrs`` (pod networks) flags any block of pod addresses.
    ``disabled`` ids are not reported.
    """

    dns_ips: tuple[str, ...] = ()
    apiserver_ips: tuple[str, ...] = ()
    service_cidrs: tuple[str, ...] = ()
    cluster_cidrs: tuple[str, ...] = ()
    critical: tuple[str, ...] = ()
    disabled: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.disabled) - set(RULES))
        if unknown:
            raise InputError(
                f"unknown lint id(s): {', '.join(unknown)}",
                hint="egressguard lint --list-rules shows every id",
            )
        for label, values in (
            ("DNS address", self.dns_ips),
            ("API server address", self.apiserver_ips),
            ("service CIDR", self.service_cidrs),
            ("cluster CIDR", self.cluster_cidrs),
            ("critical address", self.critical),
        ):
            for value in values:
                try:
                    parse_cidr(value)
                except CidrError as exc:
                    raise InputError(f"{label} {value!r}: {exc.message}") from exc

    def critical_addresses(self) -> dict[str, tuple[Cidr, str]]:
        """Critical networks by text: (parsed, what it is)."""
        out: dict[str, tuple[Cidr, str]] = {}

        def add(text: str, what: str) -> None:
            out.setdefault(text, (parse_cidr(text), what))

        for text, what in ALWAYS_CRITICAL.items():
            add(text, what)
        for text in self.dns_ips:
            add(text, "the cluster DNS service")
        for text in self.apiserver_ips:
            add(text, "the Kubernetes API server")
        for text in self.service_cidrs:
            net = parse_cidr(text)
            if not self.apiserver_ips:
                first = Cidr(net.family, net.network + 1, 32 if net.family == 4 else 128)
                add(_host(first), f"the API server's service IP (first address of {net})")
            if not self.dns_ips:
                tenth = Cidr(net.family, net.network + 10, 32 if net.family == 4 else 128)
                add(_host(tenth), f"the DNS service IP by convention (.10 of {net})")
        for text in self.critical:
            add(text, "a critical address given with --critical")
        return out

    def critical_networks(self) -> list[tuple[Cidr, str]]:
        """Networks whose any part must not be blocked: pod and service networks."""
        nets = [(parse_cidr(t), "the pod network (--cluster-cidr)") for t in self.cluster_cidrs]
        nets += [
            (parse_cidr(t), "the service network (--service-cidr)") for t in self.service_cidrs
        ]
        return nets


def _host(cidr: Cidr) -> str:
    return str(cidr).rsplit("/", 1)[0]


def has_errors(findings: Iterable[Finding]) -> bool:
    """True when any finding has severity error (the CLI then exits 1)."""
    return any(f.severity is Severity.ERROR for f in findings)


# --------------------------------------------------------------------------------------------
# Helpers


def _finding(
    rule_id: str, resource: Resource | Policy | None, path: Path, message: str, hint: str
) -> Finding:
    file = line = None
    if resource is not None and resource.origin is not None:
        file = resource.origin.file
        line = resource.origin.line_of(path)
    return Finding(rule_id, RULES[rule_id].severity, message, hint, file, line, format_path(path))


def _converted(policy: Policy) -> bool:
    return isinstance(policy, NetworkPolicy) and policy.from_kubernetes


def _rule_path(policy: Policy, direction: str, index: int) -> Path:
    if _converted(policy):
        return ("spec", direction)
    return ("spec", direction, index)


def _direction_name(direction: PolicyType) -> str:
    return "egress" if direction is PolicyType.EGRESS else "ingress"


def _selector_text(text: str | None) -> str:
    if not text:
        return ""
    try:
        return str(sel.parse(text))
    except SelectorError:
        return text


def _cidrs_or_empty(texts: Iterable[str]) -> list[Cidr]:
    out = []
    for text in texts:
        try:
            out.append(parse_cidr(text))
        except CidrError:
            continue
    return out


def _overlaps(a: Cidr, b: Cidr) -> bool:
    return a.family == b.family and a.first <= b.last and b.first <= a.last


def _inside(inner: Cidr, outer: Cidr) -> bool:
    return inner.family == outer.family and outer.first <= inner.first and inner.last <= outer.last


def _nets_cover(outer: tuple[str, ...], inner: tuple[str, ...]) -> bool:
    if outer == inner:
        return True
    if not inner:
        return False
    try:
        return AddressSet.from_cidrs(inner).issubset(AddressSet.from_cidrs(outer))
    except CidrError:
        return False


def _ports_cover(outer: tuple[Port, ...], inner: tuple[Port, ...]) -> bool:
    if outer == inner:
        return True
    if not inner:
        return False
    named_outer = {p.name for p in outer if p.name}
    for port in inner:
        if port.name is not None:
            if port.name not in named_outer:
                return False
        elif not any(o.name is None and o.min <= port.min and port.max <= o.max for o in outer):
            return False
    return True


def _entity_covers(outer: EntityRule, inner: EntityRule) -> bool:
    """``outer`` matches every address/port ``inner`` matches (sound, not complete)."""
    if outer.nets and not _nets_cover(outer.nets, inner.nets):
        return False
    if outer.not_nets and not _nets_cover(inner.not_nets, outer.not_nets):
        return False
    for name in ("selector", "not_selector", "namespace_selector"):
        mine = getattr(outer, name)
        if mine and _selector_text(mine) != _selector_text(getattr(inner, name)):
            return False
    if (outer.selector or outer.not_selector or outer.namespace_selector) and (
        _selector_text(outer.namespace_selector) != _selector_text(inner.namespace_selector)
    ):
        return False
    if outer.ports and not _ports_cover(outer.ports, inner.ports):
        return False
    if outer.not_ports and not _ports_cover(inner.not_ports, outer.not_ports):
        return False
    if outer.service_accounts is not None and outer.service_accounts != inner.service_accounts:
        return False
    return outer.services is None or outer.services == inner.services


def _rule_covers(outer: Rule, inner: Rule) -> bool:
    """Every packet ``inner`` matches, ``outer`` matches too (sound, not complete)."""
    if outer.ip_version is not None and outer.ip_version != inner.ip_version:
        return False
    if outer.protocol is not None and (
        inner.protocol is None or outer.protocol.number != inner.protocol.number
    ):
        return False
    if (
        outer.not_protocol is not None
        and (inner.not_protocol is None or outer.not_protocol.number != inner.not_protocol.number)
        and (inner.protocol is None or inner.protocol.number == outer.not_protocol.number)
    ):
        return False
    if outer.icmp is not None and outer.icmp != inner.icmp:
        return False
    if outer.not_icmp is not None and outer.not_icmp != inner.not_icmp:
        return False
    if outer.http is not None and outer.http != inner.http:
        return False
    return _entity_covers(outer.source, inner.source) and _entity_covers(
        outer.destination, inner.destination
    )


def _same_match(a: Rule, b: Rule) -> bool:
    return _rule_covers(a, b) and _rule_covers(b, a)


_TERMINAL: Final = (Action.ALLOW, Action.DENY, Action.PASS)


# --------------------------------------------------------------------------------------------
# The linter


class _Linter:
    def __init__(self, manifests: Manifests, options: LintOptions) -> None:
        self.m = manifests
        self.options = options
        self.plan: Plan = compile_plan(manifests)
        self.tiers: dict[str, Tier] = manifests.effective_tiers()
        self.findings: list[Finding] = []
        self._tier_rank = {t.name: i for i, t in enumerate(self.plan.tiers)}
        # computed once per run, used for every policy
        self._critical = options.critical_addresses()
        self._critical_networks = options.critical_networks()
        self._set_keys = {k for s in manifests.network_sets for k in s.labels}
        #: every pod among the inputs with the labels Calico gives it
        self._pod_labels = [
            (pod, pod.calico_labels(manifests.namespace(pod.namespace or "default")))
            for pod in manifests.pods
        ]

    def add(self, finding: Finding) -> None:
        if finding.id not in self.options.disabled:
            self.findings.append(finding)

    def run(self) -> list[Finding]:
        self.invalid_documents()
        for policy in self.m.all_policies:
            self.tier_exists(policy)
            self.implicit_types(policy)
            if policy.staged:
                self.staged(policy)
            if not _converted(policy):
                for direction in policy.effective_types():
                    self.rule_order(policy, direction)
                    self.rule_selectors(policy, direction)
            self.critical(policy)
        self.default_deny()
        self.allow_all()
        self.unused_sets()
        self.selects_no_pods()
        self.pass_in_last_tier()
        self.findings.sort(key=lambda f: (f.file or "", f.line or 0, f.path, f.id))
        return self.findings

    # -- documents ---------------------------------------------------------------------

    def invalid_documents(self) -> None:
        for problem in self.m.problems:
            self.add(
                Finding(
                    "invalid-document",
                    Severity.ERROR,
                    problem.message,
                    "fix the document: Calico refuses it (egressguard validate shows every "
                    "problem), and until then nothing in it is enforced",
                    problem.file,
                    problem.line,
                    problem.path,
                )
            )

    def tier_exists(self, policy: Policy) -> None:
        if policy.tier in self.tiers:
            return
        self.add(
            _finding(
                "missing-tier",
                policy,
                ("spec", "tier"),
                f"{policy.describe()} is in tier {policy.tier!r}, which does not exist: "
                "Felix skips the policy, nothing of it is enforced",
                f"add a Tier named {policy.tier!r} (with an order before the default tier, "
                "1000000) or move the policy to an existing tier",
            )
        )

    def implicit_types(self, policy: Policy) -> None:
        if policy.api_version != API_V1 or policy.types or _converted(policy):
            return
        for direction in (PolicyType.INGRESS, PolicyType.EGRESS):
            if policy.rules(direction):
                continue
            name = _direction_name(direction)
            other = "egress" if name == "ingress" else "ingress"
            self.add(
                _finding(
                    "implicit-types",
                    policy,
                    ("spec",),
                    f"{policy.describe()} has no types and no {name} rules: stored as "
                    f"crd.projectcalico.org/v1 it reaches Felix as is, and Felix reads an empty "
                    f"types as both directions, so it denies all {name} of the endpoints it "
                    "selects",
                    f"add 'types: [{other.capitalize()}]' (only the direction it has rules "
                    "for), or apply it through projectcalico.org/v3 which fills types in",
                )
            )

    def staged(self, policy: Policy) -> None:
        assert isinstance(policy, StagedGlobalNetworkPolicy | StagedNetworkPolicy)  # noqa: S101
        self.add(
            _finding(
                "staged-policy",
                policy,
                ("kind",),
                f"{policy.describe()} is staged: Calico reports what it would do but never "
                "enforces it",
                "when it does what you want, apply it as a GlobalNetworkPolicy/NetworkPolicy",
            )
        )

    # -- rules within one policy ---------------------------------------------------------

    def rule_order(self, policy: Policy, direction: PolicyType) -> None:
        rules = policy.rules(direction)
        name = _direction_name(direction)
        for j, rule in enumerate(rules):
            for i in range(j):
                earlier = rules[i]
                if earlier.action not in _TERMINAL or not _rule_covers(earlier, rule):
                    continue
                same = "the same match" if _same_match(earlier, rule) else "a wider match"
                if rule.action is Action.LOG:
                    self.add(
                        _finding(
                            "log-never-fires",
                            policy,
                            ("spec", name, j),
                            f"{name}[{j}] Log never logs: {name}[{i}] {earlier.action} has "
                            f"{same} and ends evaluation first (rules run in order; Log is the "
                            "only action that continues)",
                            f"move the Log rule before {name}[{i}]",
                        )
                    )
                else:
                    self.add(
                        _finding(
                            "shadowed-rule",
                            policy,
                            ("spec", name, j),
                            f"{name}[{j}] {rule.action} can never match: {name}[{i}] "
                            f"{earlier.action} has {same} and takes every packet first",
                            f"remove {name}[{j}] or move it before {name}[{i}]",
                        )
                    )
                break
            blocks = rule.destination.selector or rule.destination.nets
            if rule.action is Action.DENY and blocks and not self._logged_before(rules, j):
                self.add(
                    _finding(
                        "deny-not-logged",
                        policy,
                        ("spec", name, j),
                        f"{name}[{j}] Deny has no Log rule with the same match before it: "
                        "packets it blocks leave no calico-packet line in the kernel log",
                        f"insert a rule identical to {name}[{j}] but with 'action: Log' "
                        "right before it",
                    )
                )

    @staticmethod
    def _logged_before(rules: Sequence[Rule], j: int) -> bool:
        return any(r.action is Action.LOG and _rule_covers(r, rules[j]) for r in rules[:j])

    def rule_selectors(self, policy: Policy, direction: PolicyType) -> None:
        name = _direction_name(direction)
        pods_given = bool(self._pod_labels)
        for i, rule in enumerate(policy.rules(direction)):
            for side, entity in (("source", rule.source), ("destination", rule.destination)):
                if not entity.selector:
                    continue
                try:
                    positive, _ = effective_rule_selectors(policy, entity)
                    written = sel.parse(entity.selector)
                except SelectorError:
                    continue  # reported by validation
                if positive is None:
                    continue
                reach = self.plan.reach(positive)
                sets = [e for e in reach.entities if e.ref.kind in NETWORK_SET_KINDS]
                pods = [e for e in reach.entities if e.ref.kind == "Pod"]
                path = ("spec", name, i, side, "selector")
                scoped = bool(entity.namespace_selector) or policy.NAMESPACED
                if sets and not scoped:
                    pod_text = ""
                    if pods:
                        shown = ", ".join(f"{e.ref.namespace}/{e.ref.name}" for e in pods[:5])
                        more = f" and {len(pods) - 5} more" if len(pods) > 5 else ""
                        pod_text = f"; among the inputs it matches pods {shown}{more}"
                    self.add(
                        _finding(
                            "selector-reaches-pods",
                            policy,
                            path,
                            f"{name}[{i}] {side}.selector {entity.selector!r} reaches "
                            f"{sets[0].ref}, but without a namespaceSelector it also matches "
                            "every pod, host endpoint and namespaced NetworkSet carrying the "
                            f"same labels, in any namespace{pod_text}",
                            "add 'namespaceSelector: global()' to the same "
                            f"{side} so the selector reaches only GlobalNetworkSets (and host "
                            "endpoints)",
                        )
                    )
                if sets or pods:
                    continue
                targeted = entity.is_global_only or bool(written.keys() & self._set_keys)
                if not (targeted or pods_given):
                    continue
                hint = (
                    "check the selector against the labels of your network sets, or add the "
                    "set (or the pods) it targets to the inputs"
                )
                message = (
                    f"{name}[{i}] {side}.selector {entity.selector!r} reaches nothing among "
                    "the inputs (no network set, no pod): the rule matches no address"
                )
                if policy.NAMESPACED and not entity.namespace_selector:
                    gns = [
                        s for s in self.m.global_network_sets if written.matches(s.calico_labels())
                    ]
                    if gns:
                        message = (
                            f"{name}[{i}] {side}.selector {entity.selector!r} would match "
                            f"{gns[0].describe()}, but a NetworkPolicy rule selector reaches "
                            f"only its own namespace {policy.namespace!r}"
                        )
                        hint = "add 'namespaceSelector: global()' to reach GlobalNetworkSets"
                self.add(_finding("selector-matches-no-set", policy, path, message, hint))

    # -- critical addresses --------------------------------------------------------------

    def critical(self, policy: Policy) -> None:
        if PolicyType.EGRESS not in policy.effective_types():
            return
        rules = policy.egress
        for i, rule in enumerate(rules):
            if rule.action is not Action.DENY:
                continue
            dest = rule.destination
            if not (dest.nets or dest.selector):
                continue
            index = self._blocked_index(policy, rule)
            if index is None:
                continue
            path = _rule_path(policy, "egress", i)
            excluded = _cidrs_or_empty(dest.not_nets)
            for text, (cidr, what) in self._critical.items():
                look = index.lookup_v4 if cidr.family == 4 else index.lookup_v6
                found = look(cidr.network)
                if not found or any(_inside(cidr, n) for n in excluded):
                    continue
                if self._exempted(policy, rules[:i], cidr):
                    continue
                via = ", ".join(f"{m.tag} ({m.cidr})" for m in found)
                self.add(
                    _finding(
                        "blocks-critical-address",
                        policy,
                        path,
                        f"egress[{i}] Deny blocks {text}, {what}: it is in {via}",
                        f"remove {text} from the set, or subtract an allowlist before "
                        "rendering (egressguard never renders it unless forced)",
                    )
                )
            for net, what in self._critical_networks:
                overlap = self._overlap(policy, rule, net)
                if overlap:
                    self.add(
                        _finding(
                            "blocks-critical-address",
                            policy,
                            path,
                            f"egress[{i}] Deny blocks part of {what} {net}: {overlap}",
                            "subtract the pod and service networks from the blocklist",
                        )
                    )

    def _blocked_entries(self, policy: Policy, rule: Rule) -> list[tuple[Any, list[Cidr]]]:
        """Tagged CIDR lists a Deny rule's destination blocks (nets ∩ reached sets)."""
        dest = rule.destination
        tagged: list[tuple[Any, list[Cidr]]] = []
        if dest.selector:
            try:
                positive, _ = effective_rule_selectors(policy, dest)
            except SelectorError:
                return []
            if positive is None:
                return []
            for entity in self.plan.reach(positive).entities:
                if entity.nets:
                    tagged.append((entity.ref, list(entity.nets)))
        if dest.nets:
            try:
                nets = [parse_cidr(n) for n in dest.nets]
            except CidrError:
                return []
            if dest.selector:
                # both must hold: keep the set entries that overlap the rule's nets
                narrowed = []
                for tag, cidrs in tagged:
                    keep = [c for c in cidrs if any(_overlaps(c, n) for n in nets)]
                    if keep:
                        narrowed.append((tag, keep))
                tagged = narrowed
            else:
                tagged.append(("destination.nets", nets))
        return tagged

    def _blocked_index(self, policy: Policy, rule: Rule) -> ProvenanceIndex | None:
        tagged = self._blocked_entries(policy, rule)
        if not tagged:
            return None
        not_nets: list[Cidr] = []
        for text in rule.destination.not_nets:
            try:
                not_nets.append(parse_cidr(text))
            except CidrError:
                return None
        if not_nets:
            # entries wholly inside notNets block nothing (partial overlaps are kept: sound
            # for "is this address blocked" only after the lookup below checks notNets too)
            tagged = [
                (tag, [c for c in cidrs if not any(_inside(c, n) for n in not_nets)])
                for tag, cidrs in tagged
            ]
            tagged = [(t, c) for t, c in tagged if c]
        return ProvenanceIndex(tagged) if tagged else None

    def _exempted(self, policy: Policy, earlier: Sequence[Rule], cidr: Cidr) -> bool:
        """An earlier Allow/Pass rule of the policy whose destination holds the address."""
        for rule in earlier:
            if rule.action not in (Action.ALLOW, Action.PASS):
                continue
            dest = rule.destination
            if not (dest.nets or dest.selector):
                return True
            index = self._blocked_index(policy, Rule(action=Action.DENY, destination=dest))
            if index is None:
                continue
            look = index.lookup_v4 if cidr.family == 4 else index.lookup_v6
            if look(cidr.network):
                return True
        return False

    def _overlap(self, policy: Policy, rule: Rule, net: Cidr) -> str:
        parts = []
        for tag, cidrs in self._blocked_entries(policy, rule):
            hit = [c for c in cidrs if _overlaps(c, net)]
            if hit:
                shown = ", ".join(str(c) for c in hit[:3])
                more = f" and {len(hit) - 3} more" if len(hit) > 3 else ""
                parts.append(f"{shown}{more} in {tag}")
        return "; ".join(parts)

    # -- policy sets ---------------------------------------------------------------------

    def _enforced_by_tier(self) -> dict[str, list[Policy]]:
        out: dict[str, list[Policy]] = {}
        for policy in self.m.policies:
            if policy.tier in self.tiers:
                out.setdefault(policy.tier, []).append(policy)
        for pols in out.values():
            pols.sort(key=lambda p: p.sort_key)
        return out

    @staticmethod
    def _endpoint_selector(policy: Policy) -> str:
        try:
            return str(policy_endpoint_selector(policy))
        except SelectorError:
            return "?"

    def _covered_later(self, policy: Policy, later: Sequence[Policy]) -> bool:
        """A later egress policy of the tier with a catch-all Allow/Pass reaches at least the
        endpoints ``policy`` selects (all() or the same selector)."""
        mine = self._endpoint_selector(policy)
        for other in later:
            if PolicyType.EGRESS not in other.effective_types():
                continue
            theirs = self._endpoint_selector(other)
            if theirs not in ("all()", mine):
                continue
            if any(
                r.action in (Action.ALLOW, Action.PASS) and r.is_catch_all for r in other.egress
            ):
                return True
        return False

    def default_deny(self) -> None:
        for tier_name, pols in self._enforced_by_tier().items():
            tier = self.tiers[tier_name]
            if tier.effective_default_action is Action.PASS:
                continue
            for k, policy in enumerate(pols):
                if _converted(policy):
                    continue
                for direction in policy.effective_types():
                    rules = policy.rules(direction)
                    if rules and all(r.action is Action.LOG for r in rules):
                        if direction is PolicyType.EGRESS and self._covered_later(
                            policy, pols[k + 1 :]
                        ):
                            continue
                        name = _direction_name(direction)
                        self.add(
                            _finding(
                                "log-only-policy",
                                policy,
                                ("spec", name),
                                f"{policy.describe()} has only Log rules for {name}: Log does "
                                "not end evaluation, so every flow it selects reaches the end "
                                f"of tier {tier_name} and is denied",
                                "add the rule that decides after the Log (Deny with the same "
                                "match, then a final Pass or Allow)",
                            )
                        )
                        continue
                    if direction is not PolicyType.EGRESS:
                        continue
                    if any(r.action in _TERMINAL and r.is_catch_all for r in rules):
                        continue
                    if not any(r.action is Action.DENY for r in rules):
                        continue
                    if self._covered_later(policy, pols[k + 1 :]):
                        continue
                    self.add(
                        _finding(
                            "egress-default-deny",
                            policy,
                            ("spec", "egress"),
                            f"{policy.describe()} blocks some egress but gives no verdict for "
                            f"the rest, and no later policy of tier {tier_name} does: every "
                            "other egress of the endpoints it selects reaches the end of the "
                            "tier and is denied (default-deny of all egress)",
                            "end its egress rules with '- action: Pass' (its own tier) or "
                            "'- action: Allow', or give the tier 'defaultAction: Pass'",
                        )
                    )

    def allow_all(self) -> None:
        default_rank = self._tier_rank.get(DEFAULT_TIER)
        if default_rank is None:
            return
        k8s = [
            p
            for p in self.m.network_policies
            if p.from_kubernetes and PolicyType.EGRESS in p.effective_types()
        ]
        for policy in self.m.policies:
            rank = self._tier_rank.get(policy.tier)
            if rank is None or rank > default_rank or _converted(policy):
                continue
            if PolicyType.EGRESS not in policy.effective_types():
                continue
            index = next(
                (
                    i
                    for i, r in enumerate(policy.egress)
                    if r.action is Action.ALLOW and r.is_catch_all
                ),
                None,
            )
            if index is None:
                continue
            if any(r.action in _TERMINAL and r.is_catch_all for r in policy.egress[:index]):
                continue
            bypassed = self._bypassed(policy, k8s)
            extra = ""
            if bypassed:
                names = ", ".join(
                    f"{p.namespace}/{p.name.removeprefix('knp.default.')}" for p in bypassed[:5]
                )
                extra = f"; among the inputs this defeats the egress rules of {names}"
            where = (
                "in the default tier"
                if policy.tier == DEFAULT_TIER
                else f"in tier {policy.tier}, before the default tier"
            )
            self.add(
                _finding(
                    "allow-all-bypasses-k8s-isolation",
                    policy,
                    ("spec", "egress", index),
                    f"egress[{index}] of {policy.describe()} allows all egress {where}: "
                    "Kubernetes NetworkPolicies live in the default tier, so for every pod it "
                    "selects the Allow either wins outright or catches what they do not allow "
                    f"before the end-of-tier drop; Kubernetes egress isolation is lost{extra}",
                    "put the blocklist in its own tier that ends with Pass and drop the "
                    "allow-all policy (egressguard's default design), or narrow its selector",
                )
            )

    def _bypassed(self, policy: Policy, k8s: Sequence[NetworkPolicy]) -> list[NetworkPolicy]:
        """Kubernetes egress policies whose pods the allow-all policy also selects."""
        if not k8s:
            return []
        try:
            mine = policy_endpoint_selector(policy)
        except SelectorError:
            return []
        if not self._pod_labels:
            return list(k8s)
        out = []
        for knp in k8s:
            theirs = policy_endpoint_selector(knp)
            if any(theirs.matches(lab) and mine.matches(lab) for _, lab in self._pod_labels):
                out.append(knp)
        return out

    def unused_sets(self) -> None:
        used: set[Any] = set()
        for policy in self.m.all_policies:
            for direction in (PolicyType.INGRESS, PolicyType.EGRESS):
                for rule in policy.rules(direction):
                    for entity in (rule.source, rule.destination):
                        try:
                            positive, negative = effective_rule_selectors(policy, entity)
                        except SelectorError:
                            continue
                        for s in (positive, negative):
                            if s is not None:
                                used.update(e.ref for e in self.plan.reach(s).entities)
        for ns_set in self.m.network_sets:
            if (ns_set.kind, ns_set.namespace, ns_set.name) in used:
                continue
            labels = ", ".join(f"{k}={v}" for k, v in ns_set.labels.items()) or "none"
            self.add(
                _finding(
                    "unused-network-set",
                    ns_set,
                    ("metadata", "labels") if ns_set.labels else ("metadata",),
                    f"{ns_set.describe()} (labels: {labels}) is reached by no rule selector of "
                    "any policy among the inputs: it blocks or allows nothing",
                    "check its labels against the policies' rule selectors, or delete it",
                )
            )

    def selects_no_pods(self) -> None:
        labels = [lab for pod, lab in self._pod_labels if not pod.host_network]
        if not labels:
            return
        for policy in self.m.all_policies:
            try:
                chosen = policy_endpoint_selector(policy)
            except SelectorError:
                continue
            if any(chosen.matches(lab) for lab in labels):
                continue
            self.add(
                _finding(
                    "selects-no-pods",
                    policy,
                    ("spec", "selector"),
                    f"{policy.describe()} selects none of the {len(labels)} pods among the inputs "
                    f"(it selects {chosen}); it applies to no workload here (a GlobalNetwork"
                    "Policy may still apply to host endpoints)",
                    "check the selector against the pods' labels (and namespace labels for "
                    "namespaceSelector)",
                )
            )

    def pass_in_last_tier(self) -> None:
        by_tier = self._enforced_by_tier()
        for direction in (PolicyType.EGRESS, PolicyType.INGRESS):
            last = None
            for info in self.plan.tiers:
                if any(direction in p.effective_types() for p in by_tier.get(info.name, ())):
                    last = info.name
            if last is None:
                continue
            # A tier before the default tier passes to it, and the cluster's own policies
            # (not necessarily among the inputs) live there: only a Pass at or after the
            # default tier surely reaches the profiles.
            if self._tier_rank.get(last, 0) < self._tier_rank.get(DEFAULT_TIER, 0):
                continue
            name = _direction_name(direction)
            for policy in by_tier[last]:
                if direction not in policy.effective_types():
                    continue
                for i, rule in enumerate(policy.rules(direction)):
                    if rule.action is not Action.PASS:
                        continue
                    self.add(
                        _finding(
                            "pass-in-last-tier",
                            policy,
                            ("spec", name, i),
                            f"{name}[{i}] Pass in {last}, the last tier with {name} policies: "
                            "there is no next tier, so passed flows go to the endpoint's "
                            "profiles, which allow every pod (and deny host endpoints without "
                            "one)",
                            "if passing is meant to allow, say Allow; if later policies should "
                            "decide, make sure their tier exists among the inputs",
                        )
                    )


def lint(manifests: Manifests, options: LintOptions | None = None) -> list[Finding]:
    """Every finding for ``manifests`` (see ``RULES``), sorted by file, line and path."""
    return _Linter(manifests, options or LintOptions()).run()

"""The policy evaluator: which verdict Calico gives a flow, and the trace of how it got there.

Compile the resources once into a ``Plan``, then evaluate flows against it::

    >>> from egressguard import calico
    >>> from egressguard.calico import evaluate as ev
    >>> plan = ev.compile_plan(calico.load_paths(["examples/blog"]))
    >>> web = ev.Endpoint.pod({"app": "web"}, namespace="default")
    >>> verdict = plan.evaluate(web, ev.Flow(dst="217.160.0.92", protocol="TCP", dst_port=443))
    >>> verdict.action, verdict.logged
    (<Action.DENY: 'Deny'>, True)
    >>> for step in verdict.trace:
    ...     print(step, step.outcome)
    default gnp/egress-traffic-blocking egress[0] Log log
    default gnp/egress-traffic-blocking egress[1] Deny deny

Semantics follow ``shared/reference/calico-semantics.md`` §5 (assembled from Felix's
``calc/policy_sorter.go``, ``rules/endpoints.go`` and ``rules/policy.go``):

* conntrack first: a flow in state ``established``/``related`` is accepted, ``invalid`` dropped;
* tiers in order (missing order last, then name); policies of a tier sorted by order (missing
  last) then by Felix's tie-break ``"<name>/<namespace>/<kind>"``; only policies whose
  endpoint selector matches the endpoint and whose types include the direction apply; a tier
  with no applicable policy is skipped;
* rules in order: Log records a log line and continues, Allow and Deny end evaluation, Pass
  jumps to the next tier; falling off a policy moves to the next policy of the tier; falling
  off the tier gives the tier's default action (Deny: the "end-of-tier drop"; Pass);
* nothing decided: the endpoint's profiles. A Kubernetes pod has ``kns.<namespace>``, which
  allows everything; a host endpoint without profiles is denied;
* staged policies are never enforced; policies in a tier that does not exist are skipped (as
  Felix does); ``doNotTrack``/``preDNAT`` policies run in other chains for host endpoints only
  and are not evaluated here (they are listed in ``Plan.ignored``);
* rules are filtered per IP family (§7.5): a rule whose ``ipVersion`` names the other family is
  skipped; CIDRs of the other family are dropped from each net field, and a net field left
  empty that was not empty skips the rule for that family;
* a rule selector reaches entities (§1.3): pods among the inputs and the evaluated endpoint
  (with the labels Calico gives them), GlobalNetworkSets and NetworkSets; the selector is first
  rewritten like Calico's update processor (``namespaceSelector`` with ``pcns.`` keys,
  ``global()``, the namespace of a NetworkPolicy) and, like Felix's rule scanner, a
  ``notSelector`` is folded into a positive selector when there is one. An address matches when
  any reached entity's IP or net contains it: plain containment, no "most specific set wins";
* named ports match the (address, port) of reached pods that declare a port of that name with
  the rule's protocol (TCP when the rule has none, UDP or SCTP when it says so:
  ``felix/calc/rule_scanner.go``), numeric ports and ranges match the packet's port.

Unknown inputs never guess a match: a criterion on an address, port or ICMP type the flow does
not carry fails, and the trace says so (``Step.why``). An egress flow without a source address
uses the endpoint's address of the flow's family; a source selector is then still decided by
the endpoint's labels (the sender *is* the endpoint).

Speed: the plan resolves every rule selector to the entities it reaches once and indexes their
CIDRs in a ``cidr.ProvenanceIndex`` (one bisect per lookup, answering which set and which CIDR);
rule criteria are closures; the applicable policies per endpoint and direction are cached.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, NamedTuple, TypeAlias

from egressguard import selector as sel
from egressguard.calico.load import Manifests
from egressguard.calico.model import (
    PROTOCOL_NUMBERS,
    Action,
    ContainerPort,
    EntityRule,
    FrozenMap,
    GlobalNetworkPolicy,
    Metadata,
    Namespace,
    NetworkPolicy,
    Pod,
    Policy,
    PolicyType,
    Port,
    Protocol,
    Rule,
)
from egressguard.cidr.addresses import Cidr, CidrError, format_address, parse_address, parse_cidr
from egressguard.cidr.lookup import Match, ProvenanceIndex
from egressguard.errors import InputError, SelectorError
from egressguard.problems import format_path

__all__ = [
    "EGRESS",
    "INGRESS",
    "NETWORK_SET_KINDS",
    "RULE_NETS",
    "Endpoint",
    "EndpointPlan",
    "EntityMatch",
    "EntityRef",
    "Flow",
    "FlowState",
    "Plan",
    "PolicyRef",
    "Reach",
    "Step",
    "StepKind",
    "TierInfo",
    "Verdict",
    "compile_plan",
    "effective_rule_selectors",
    "evaluate",
    "policy_endpoint_selector",
    "protocol_number",
]

EGRESS: Final = PolicyType.EGRESS
INGRESS: Final = PolicyType.INGRESS

_OCTET: Final[dict[str, int]] = {str(i): i for i in range(256)}
_ICMP_OF_FAMILY: Final = {4: 1, 6: 58}
#: Protocol numbers by lower-case name, for flows (``tcp`` and ``TCP`` alike).
_PROTOCOLS_LOWER: Final = {name.lower(): number for name, number in PROTOCOL_NUMBERS.items()}
_PROTOCOL_NAMES: Final = {number: name for name, number in PROTOCOL_NUMBERS.items()}
#: Container-port protocols by number, for named ports.
_NAMED_PORT_PROTOCOLS: Final = {6: "TCP", 17: "UDP", 132: "SCTP"}


def _parse_ip(text: str) -> tuple[int, int]:
    """``(family, value)``; a fast path for dotted IPv4, the full grammar otherwise."""
    try:
        a, b, c, d = text.split(".")
        return 4, (_OCTET[a] << 24) | (_OCTET[b] << 16) | (_OCTET[c] << 8) | _OCTET[d]
    except (ValueError, KeyError):
        return parse_address(text)


def protocol_number(value: str | int | Protocol) -> int:
    """``"TCP"``/``"tcp"``/``6``/``"6"``/``Protocol("TCP")`` → 6. Raises ``InputError``."""
    if isinstance(value, Protocol):
        return value.number
    if isinstance(value, bool):
        raise InputError(f"not a protocol: {value!r}")
    if isinstance(value, int):
        number = value
    elif value.isdigit():
        number = int(value)
    else:
        found = _PROTOCOLS_LOWER.get(value.lower())
        if found is None:
            names = ", ".join(PROTOCOL_NUMBERS)
            raise InputError(f"unknown protocol {value!r}", hint=f"use {names} or a number 1-255")
        return found
    if not 1 <= number <= 255:
        raise InputError(f"protocol number {number} out of range 1-255")
    return number


#: Protocol values seen most, resolved once (``protocol_number`` for the rest).
def _protocol_cache() -> dict[object, int]:
    cache: dict[object, int] = {}
    for name, number in PROTOCOL_NUMBERS.items():
        cache[name] = cache[name.lower()] = cache[number] = number
    return cache


_PROTOCOL_CACHE: Final = _protocol_cache()


def _flow_address(label: str, text: str) -> tuple[int, int]:
    try:
        return _parse_ip(text)
    except CidrError as exc:
        raise InputError(f"{label} address: {exc.message}", hint=exc.hint) from exc


def _protocol_text(number: int) -> str:
    name = _PROTOCOL_NAMES.get(number)
    return f"{name} ({number})" if name else str(number)


# --------------------------------------------------------------------------------------------
# Inputs: endpoint and flow


class FlowState(enum.StrEnum):
    """Conntrack state of the packet: only ``new`` packets reach policy."""

    NEW = "new"
    ESTABLISHED = "established"
    RELATED = "related"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """The endpoint whose policy is evaluated: a pod (workload endpoint) or a host endpoint.

    ``labels`` are the labels *as Calico sees them* (for a pod: its own labels plus
    ``projectcalico.org/*`` and the inherited ``pcns.*``/``pcsa.*`` ones): build pods with
    ``Endpoint.pod`` or ``Endpoint.from_pod``, host endpoints with ``Endpoint.host``.
    ``default_allow`` says what happens when no policy decides: pods have the ``kns.<ns>``
    profile, which allows; a host endpoint without profiles denies (an automatic host endpoint
    with ``projectcalico-default-allow`` allows).
    """

    labels: FrozenMap
    ips: tuple[str, ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    namespace: str | None = None
    name: str | None = None
    is_host: bool = False
    default_allow: bool = True
    own_labels: FrozenMap = field(default_factory=FrozenMap)
    _addresses: tuple[frozenset[int], frozenset[int]] = field(init=False, repr=False, compare=False)
    _first: tuple[int | None, int | None] = field(init=False, repr=False, compare=False)
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        found: tuple[list[int], list[int]] = ([], [])
        for ip in self.ips:
            try:
                family, value = _parse_ip(ip.split("/")[0])
            except CidrError as exc:
                raise InputError(f"endpoint address {ip!r}: {exc.message}") from exc
            found[0 if family == 4 else 1].append(value)
        object.__setattr__(self, "_addresses", (frozenset(found[0]), frozenset(found[1])))
        firsts = (found[0][0] if found[0] else None, found[1][0] if found[1] else None)
        object.__setattr__(self, "_first", firsts)
        object.__setattr__(
            self,
            "_hash",
            hash((self.labels, self.ips, self.ports, self.namespace, self.name, self.is_host)),
        )

    def __hash__(self) -> int:
        return self._hash

    @classmethod
    def pod(
        cls,
        labels: Mapping[str, str],
        namespace: str = "default",
        *,
        ips: Sequence[str] = (),
        ports: Sequence[ContainerPort] = (),
        name: str | None = None,
        service_account: str = "default",
        namespace_resource: Namespace | None = None,
    ) -> Endpoint:
        """A Kubernetes pod with these own labels in ``namespace`` (whose labels come from
        ``namespace_resource`` when given, else only the automatic name label)."""
        pod = Pod(
            metadata=Metadata(name=name or "pod", namespace=namespace, labels=FrozenMap(labels)),
            api_version="v1",
            ips=tuple(ips),
            ports=tuple(ports),
            service_account=service_account,
        )
        endpoint = cls.from_pod(pod, namespace_resource)
        return endpoint if name else replace(endpoint, name=None)

    @classmethod
    def from_pod(cls, pod: Pod, namespace: Namespace | None = None) -> Endpoint:
        """The workload endpoint Calico makes of ``pod`` (``namespace``: its Namespace, for
        the inherited ``pcns.*`` labels)."""
        return cls(
            labels=FrozenMap(pod.calico_labels(namespace)),
            ips=pod.ips,
            ports=pod.ports,
            namespace=pod.namespace or "default",
            name=pod.name,
            own_labels=pod.labels,
        )

    @classmethod
    def host(
        cls,
        labels: Mapping[str, str],
        *,
        ips: Sequence[str] = (),
        ports: Sequence[ContainerPort] = (),
        name: str | None = None,
        default_allow: bool = False,
    ) -> Endpoint:
        """A host endpoint: only its own labels; denied when nothing decides unless
        ``default_allow`` (the ``projectcalico-default-allow`` profile)."""
        own = FrozenMap(labels)
        return cls(
            labels=own,
            ips=tuple(ips),
            ports=tuple(ports),
            name=name,
            is_host=True,
            default_allow=default_allow,
            own_labels=own,
        )

    def addresses(self, family: int) -> frozenset[int]:
        """The endpoint's addresses of one family, as ints."""
        return self._addresses[0 if family == 4 else 1]

    def first_address(self, family: int) -> int | None:
        """The first address of ``family`` in ``ips`` order (used when a flow omits it)."""
        return self._first[0 if family == 4 else 1]

    @property
    def profile(self) -> str | None:
        """The profile that decides when no policy does, or ``None`` (deny)."""
        if self.is_host:
            return "projectcalico-default-allow" if self.default_allow else None
        return f"kns.{self.namespace or 'default'}" if self.default_allow else None

    def describe(self) -> str:
        """``pod default/web (app=web)`` / ``host endpoint (role=node)``."""
        labels = ",".join(f"{k}={v}" for k, v in self.own_labels.items())
        what = "host endpoint" if self.is_host else "pod"
        name = self.name or ""
        if not self.is_host:
            name = f"{self.namespace}/{self.name}" if self.name else f"{self.namespace}/*"
        parts = [what, name] if name else [what]
        if labels:
            parts.append(f"({labels})")
        if self.ips:
            parts.append("[" + ", ".join(self.ips) + "]")
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "host" if self.is_host else "pod",
            "namespace": self.namespace,
            "name": self.name,
            "labels": self.own_labels.to_dict(),
            "ips": list(self.ips),
            "profile": self.profile,
        }


@dataclass(frozen=True, slots=True)
class Flow:
    """The first packet of a connection. Addresses are text (IPv4 or IPv6, one family).

    For egress, ``dst`` is required and ``src`` defaults to the endpoint's address; for
    ingress, ``src`` is required and ``dst`` defaults to the endpoint's address. ``protocol``
    is a name (any case) or a number; ports and ICMP type/code are optional, and a rule that
    tests one the flow lacks does not match.
    """

    dst: str | None = None
    src: str | None = None
    protocol: str | int = "TCP"
    dst_port: int | None = None
    src_port: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    state: FlowState = FlowState.NEW
    _parsed: tuple[int | None, int | None, int | None, int] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # Written for speed (a flow is built per evaluation in bulk runs): straight-line
        # checks, the common cases first.
        src = dst = family = None
        if self.dst is not None:
            family, dst = _flow_address("destination", self.dst)
        if self.src is not None:
            src_family, src = _flow_address("source", self.src)
            if family is not None and src_family != family:
                raise InputError(
                    f"source {self.src} and destination {self.dst} are of different IP families"
                )
            family = src_family
        for label, port in (("destination port", self.dst_port), ("source port", self.src_port)):
            if port is not None and (port.__class__ is not int or not 0 <= port <= 65535):
                raise InputError(f"{label} {port!r} is not a port number 0-65535")
        if self.icmp_type is not None or self.icmp_code is not None:
            for label, num in (("ICMP type", self.icmp_type), ("ICMP code", self.icmp_code)):
                if num is not None and (num.__class__ is not int or not 0 <= num <= 255):
                    raise InputError(f"{label} {num!r} is not a number 0-255")
        if self.state.__class__ is not FlowState:
            object.__setattr__(self, "state", FlowState(self.state))
        # (a bool would hit the int keys: True == 1)
        proto = _PROTOCOL_CACHE.get(self.protocol) if self.protocol.__class__ is not bool else None
        if proto is None:
            proto = protocol_number(self.protocol)
        object.__setattr__(self, "_parsed", (family, src, dst, proto))

    @property
    def protocol_number(self) -> int:
        return self._parsed[3]

    @property
    def family(self) -> int | None:
        """4 or 6, from whichever address is given (``None`` when neither is)."""
        return self._parsed[0]

    def describe(self) -> str:
        """``TCP 10.0.0.1 -> 217.160.0.92:443``."""
        proto = _PROTOCOL_NAMES.get(self.protocol_number, str(self.protocol_number))
        src = self.src or "(endpoint)"
        dst = self.dst or "(endpoint)"
        sport = f":{self.src_port}" if self.src_port is not None else ""
        dport = f":{self.dst_port}" if self.dst_port is not None else ""
        icmp = ""
        if self.icmp_type is not None:
            icmp = f" type {self.icmp_type}"
            if self.icmp_code is not None:
                icmp += f" code {self.icmp_code}"
        state = f" ({self.state})" if self.state is not FlowState.NEW else ""
        return f"{proto} {src}{sport} -> {dst}{dport}{icmp}{state}"

    def to_json(self) -> dict[str, Any]:
        return {
            "src": self.src,
            "dst": self.dst,
            "protocol": _PROTOCOL_NAMES.get(self.protocol_number, self.protocol_number),
            "src_port": self.src_port,
            "dst_port": self.dst_port,
            "icmp_type": self.icmp_type,
            "icmp_code": self.icmp_code,
            "state": str(self.state),
        }


class _Packet:
    """A flow resolved against an endpoint: ints only, what the criteria read."""

    __slots__ = ("dport", "dst", "family", "icode", "itype", "local", "proto", "sport", "src")

    def __init__(  # noqa: PLR0917 (hot path: positional arguments are cheapest)
        self,
        family: int,
        src: int | None,
        dst: int | None,
        proto: int,
        sport: int | None,
        dport: int | None,
        itype: int | None,
        icode: int | None,
        local: str,
    ) -> None:
        self.family = family
        self.src = src
        self.dst = dst
        self.proto = proto
        self.sport = sport
        self.dport = dport
        self.itype = itype
        self.icode = icode
        self.local = local  # "source" (egress) or "destination" (ingress)


# --------------------------------------------------------------------------------------------
# Results: steps and verdicts


class PolicyRef(NamedTuple):
    """A policy by kind, namespace and name (``short`` is Felix's ``%k``: gnp, np, knp)."""

    kind: str
    namespace: str | None
    name: str
    short: str

    def __str__(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.short}/{ns}{self.name}"

    @classmethod
    def of(cls, policy: Policy) -> PolicyRef:
        return cls(policy.kind, policy.namespace, policy.name, policy.short_kind)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name}


#: ``EntityRef.kind`` of a rule's own ``nets``/``notNets`` (name: ``destination.nets``).
RULE_NETS: Final = "RuleNets"
#: Kinds of network sets (what ``network_set`` in the JSON names).
NETWORK_SET_KINDS: Final = frozenset({"GlobalNetworkSet", "NetworkSet"})


class EntityRef(NamedTuple):
    """Where a matched address was found: a network set, a pod, the evaluated endpoint
    (``Endpoint``/``HostEndpoint``), or the rule's own nets (kind ``RuleNets``)."""

    kind: str
    namespace: str | None
    name: str

    def __str__(self) -> str:
        if self.kind == RULE_NETS:
            return self.name
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {ns}{self.name}"


class EntityMatch(NamedTuple):
    """An address criterion of the rule's ``side`` matched because ``entity`` holds the
    address, through ``cidr`` (an entry of its ``nets``, or the pod's address; ``None`` when
    the entity is the evaluated endpoint and the flow did not give its address)."""

    side: str
    entity: EntityRef
    cidr: Cidr | None

    def to_json(self) -> dict[str, Any]:
        return {
            "side": self.side,
            "kind": self.entity.kind,
            "namespace": self.entity.namespace,
            "name": self.entity.name,
            "cidr": str(self.cidr) if self.cidr is not None else None,
        }

    def describe(self) -> str:
        """``GlobalNetworkSet x (192.0.2.0/24)``."""
        if self.cidr is None:
            return f"{self.entity} (its own address)"
        return f"{self.entity} ({self.cidr})"


class StepKind(enum.StrEnum):
    RULE = "rule"
    END_OF_TIER = "end-of-tier"
    PROFILE = "profile"
    NO_PROFILE = "no-profile"
    CONNTRACK = "conntrack"


class Step:
    """One step of a trace: a rule looked at, the end of a tier, the profile, conntrack.

    ``outcome`` is ``log`` (a Log rule matched: logged, evaluation continues), ``allow``,
    ``deny``, ``pass`` (the rest of the tier is skipped), ``no-match`` or ``skipped`` (the
    rule does not exist for the flow's IP family). ``why`` explains it in words (computed on
    demand); ``matches`` lists the network sets (or pods) and CIDRs through which address
    criteria matched.
    """

    __slots__ = (
        "_detail",
        "_ep",
        "_pkt",
        "_rule",
        "action",
        "kind",
        "outcome",
        "policy",
        "rule",
        "tier",
    )

    def __init__(  # noqa: PLR0917 (hot path: positional arguments are cheapest)
        self,
        kind: StepKind,
        tier: str | None,
        policy: PolicyRef | None,
        rule: int | None,
        action: Action | None,
        outcome: str,
        rule_plan: _RulePlan | None = None,
        detail: Any = None,
        pkt: _Packet | None = None,
        ep: Endpoint | None = None,
    ) -> None:
        self.kind = kind
        self.tier = tier
        self.policy = policy
        self.rule = rule
        self.action = action
        self.outcome = outcome
        self._rule = rule_plan
        self._detail = detail
        self._pkt = pkt
        self._ep = ep

    @property
    def matched(self) -> bool:
        """True for a rule that matched (and for every non-rule step)."""
        return self.outcome not in ("no-match", "skipped")

    @property
    def rule_path(self) -> str | None:
        """``spec.egress[1]`` (YAML path of the rule) for rule steps."""
        if self._rule is None:
            return None
        return format_path(self._rule.path)

    @property
    def location(self) -> str | None:
        """``file:line`` of the rule (or the policy) when known."""
        rule = self._rule
        return f"{rule.file}:{rule.line}" if rule is not None and rule.file is not None else None

    def address(self, side: str) -> str | None:
        """The flow's ``source`` or ``destination`` address as evaluated (``None`` unknown)."""
        pkt = self._pkt
        if pkt is None:
            return None
        value = _addr_of(pkt, side)
        return format_address(pkt.family, value) if value is not None else None

    @property
    def matches(self) -> tuple[EntityMatch, ...]:
        if self.outcome in ("no-match", "skipped") or not self._detail:
            return ()
        if not isinstance(self._detail, tuple):
            return ()
        out: list[EntityMatch] = []
        for side, found in self._detail:
            out.extend(EntityMatch(side, m.tag, m.cidr) for m in found)
        return tuple(out)

    @property
    def why(self) -> str:
        """Why the step happened, in words."""
        if self._rule is not None and self._pkt is not None and self._ep is not None:
            return self._rule.explain(self._pkt, self._ep, self._detail, self.outcome)
        return str(self._detail or "")

    def _label(self) -> str:
        if self._rule is not None:
            return f"{self._rule.direction}[{self.rule}]"
        return str(self.kind)

    def __str__(self) -> str:
        """``default gnp/egress-traffic-blocking egress[1] Deny``; ``default end-of-tier Deny``;
        ``profile kns.default Allow``; ``no-profile Deny``; ``conntrack Allow``."""
        if self.kind is StepKind.RULE:
            return f"{self.tier} {self.policy} {self._label()} {self.action}"
        if self.kind is StepKind.END_OF_TIER:
            return f"{self.tier} end-of-tier {self.action}"
        if self.kind is StepKind.PROFILE and self.policy is not None:
            return f"profile {self.policy.name} {self.action}"
        return f"{self.kind} {self.action}"

    def __repr__(self) -> str:
        return f"<Step {self} {self.outcome}>"

    def to_json(self) -> dict[str, Any]:
        matches = self.matches
        rule = self._rule
        in_set = next((m for m in matches if m.entity.kind in NETWORK_SET_KINDS), None)
        first = in_set or (matches[0] if matches else None)
        return {
            "step": str(self.kind),
            "tier": self.tier,
            "policy": self.policy.to_json()
            if self.policy is not None and self.kind is StepKind.RULE
            else None,
            "profile": self.policy.name
            if self.policy is not None and self.kind is not StepKind.RULE
            else None,
            "rule": self.rule,
            "rule_path": self.rule_path,
            "action": str(self.action) if self.action is not None else None,
            "matched": self.matched,
            "outcome": self.outcome,
            "why": self.why,
            "network_set": in_set.entity.name if in_set is not None else None,
            "cidr": str(first.cidr) if first is not None and first.cidr is not None else None,
            "matches": [m.to_json() for m in matches],
            "file": rule.file if rule is not None else None,
            "line": rule.line if rule is not None else None,
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer for one flow: ``action`` (Allow or Deny), whether a Log rule fired before it,
    and the ordered trace. ``reason`` is what decided: ``rule``, ``end-of-tier``, ``profile``,
    ``no-profile`` or ``conntrack``."""

    action: Action
    logged: bool
    reason: str
    trace: tuple[Step, ...] = ()
    direction: PolicyType = PolicyType.EGRESS
    notes: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.action is Action.ALLOW

    @property
    def decided_by(self) -> Step | None:
        """The step that decided (the last one), when a trace was kept."""
        return self.trace[-1] if self.trace else None

    @property
    def log_steps(self) -> tuple[Step, ...]:
        """The Log rules that fired, in order."""
        return tuple(s for s in self.trace if s.outcome == "log")

    def to_json(self) -> dict[str, Any]:
        decided = self.decided_by
        return {
            "verdict": str(self.action),
            "logged": self.logged,
            "reason": self.reason,
            "direction": self.direction.value.lower(),
            "decided_by": decided.to_json() if decided is not None else None,
            "log_rules": [s.to_json() for s in self.log_steps],
            "trace": [s.to_json() for s in self.trace],
            "notes": list(self.notes),
        }


# --------------------------------------------------------------------------------------------
# Entities and what rule selectors reach


@dataclass(frozen=True, slots=True)
class _Entity:
    ref: EntityRef
    labels: Mapping[str, str]
    nets: tuple[Cidr, ...]
    ports: tuple[ContainerPort, ...] = ()


def _entities(manifests: Manifests, notes: list[str]) -> tuple[_Entity, ...]:
    out: list[_Entity] = []
    for gns in manifests.global_network_sets:
        out.append(
            _Entity(
                EntityRef(gns.kind, None, gns.name),
                gns.calico_labels(),
                _cidrs(gns.nets, str(gns.describe()), notes),
            )
        )
    for ns_set in manifests.namespaced_network_sets:
        ns = ns_set.namespace or "default"
        out.append(
            _Entity(
                EntityRef(ns_set.kind, ns, ns_set.name),
                ns_set.calico_labels(manifests.namespace(ns)),
                _cidrs(ns_set.nets, ns_set.describe(), notes),
            )
        )
    for pod in manifests.pods:
        if pod.host_network:
            continue  # no workload endpoint: the pod uses the host's addresses
        ns = pod.namespace or "default"
        out.append(
            _Entity(
                EntityRef("Pod", ns, pod.name),
                pod.calico_labels(manifests.namespace(ns)),
                _cidrs(pod.ips, pod.describe(), notes),
                pod.ports,
            )
        )
    return tuple(out)


def _cidrs(texts: Iterable[str], owner: str, notes: list[str]) -> tuple[Cidr, ...]:
    out = []
    for text in texts:
        try:
            out.append(parse_cidr(text.strip()))
        except CidrError:
            notes.append(f"{owner}: {text!r} is not an address or CIDR; ignored")
    return tuple(out)


class Reach:
    """What one (effective) rule selector reaches among the inputs: the entities and an index
    of their CIDRs. ``lookup(family, value)`` gives the ``cidr.Match`` values (tag: the
    ``EntityRef``) of the entities holding the address."""

    __slots__ = ("_v4", "_v6", "entities")

    def __init__(self, entities: Sequence[_Entity]) -> None:
        self.entities = tuple(entities)
        tagged = [(e.ref, list(e.nets)) for e in self.entities if e.nets]
        index = ProvenanceIndex(tagged)
        self._v4 = index.lookup_v4
        self._v6 = index.lookup_v6

    def lookup_fn(self, family: int) -> Callable[[int], tuple[Match, ...]]:
        return self._v4 if family == 4 else self._v6

    def summary(self) -> str:
        """``1 GlobalNetworkSet, 2 pods`` (what it reaches, for explanations)."""
        kinds: dict[str, int] = {}
        for e in self.entities:
            kinds[e.ref.kind] = kinds.get(e.ref.kind, 0) + 1
        if not kinds:
            return "nothing among the inputs"
        parts = []
        for kind, n in kinds.items():
            name = {"Pod": "pod"}.get(kind, kind)
            parts.append(f"{n} {name}{'s' if n != 1 else ''}")
        return ", ".join(parts)


def effective_rule_selectors(
    policy: Policy, entity: EntityRule
) -> tuple[sel.Selector | None, sel.Selector | None]:
    """``(positive, negative)``: the selectors Felix evaluates for one EntityRule.

    The positive one is Calico's rewrite (``selector.entity_rule_selector``: namespace
    selector, ``global()``, service accounts, the namespace of a NetworkPolicy) with the
    ``notSelector`` folded in as ``(S) && (!(N))`` (``rule_scanner.go:combineMatchesIfPossible``);
    the negative one is the ``notSelector`` on its own, only when there is no positive one.
    Raises ``SelectorError`` for selectors that do not parse.
    """
    namespace = policy.namespace if policy.NAMESPACED else ""
    sa = entity.service_accounts
    positive = sel.entity_rule_selector(
        selector=entity.selector or "",
        namespace_selector=entity.namespace_selector or "",
        not_selector=entity.not_selector or "",
        service_account_names=sa.names if sa is not None else (),
        service_account_selector=(sa.selector or "") if sa is not None else "",
        namespace=namespace or "",
    )
    negative = sel.parse(entity.not_selector) if entity.not_selector else None
    if positive is not None and negative is not None:
        return sel.and_(positive, sel.Selector(sel.Not(negative.root))), None
    return positive, negative


# --------------------------------------------------------------------------------------------
# Compiled rules

#: A compiled criterion: ``(packet, endpoint) -> truthy``; set criteria return
#: ``((side, matches),)`` so the trace can name the sets and CIDRs.
_CheckFn: TypeAlias = Callable[[_Packet, Endpoint], Any]
_Explain: TypeAlias = Callable[[_Packet, Endpoint], str]


class _Check(NamedTuple):
    fn: _CheckFn
    text: str  # the criterion as written, e.g. "destination.ports [443]"
    fail: _Explain  # why it did not match


def _match_text(m: Match) -> str:
    """``GlobalNetworkSet x (192.0.2.0/24)``; the endpoint without a known address."""
    cidr: Cidr | None = m.cidr
    return f"{m.tag} ({cidr})" if cidr is not None else f"{m.tag} (its own address)"


def _addr_of(pkt: _Packet, side: str) -> int | None:
    return pkt.src if side == "source" else pkt.dst


def _port_of(pkt: _Packet, side: str) -> int | None:
    return pkt.sport if side == "source" else pkt.dport


def _addr_text(pkt: _Packet, side: str) -> str:
    value = _addr_of(pkt, side)
    if value is None:
        return f"{side} address unknown"
    return f"{side} {format_address(pkt.family, value)}"


def _ports_text(ports: Sequence[Port]) -> str:
    return "[" + ", ".join(str(p) for p in ports) + "]"


class _Compiler:
    """Builds rule matchers, sharing what rules have in common (reaches, net indexes)."""

    def __init__(self, manifests: Manifests, notes: list[str]) -> None:
        self.entities = _entities(manifests, notes)
        self._reach_by_selector: dict[str, Reach] = {}
        self._reach_by_members: dict[tuple[EntityRef, ...], Reach] = {}
        self._nets: dict[tuple[str, ...], ProvenanceIndex] = {}

    def reach(self, selector: sel.Selector) -> Reach:
        key = str(selector)
        found = self._reach_by_selector.get(key)
        if found is not None:
            return found
        members = tuple(e for e in self.entities if selector.matches(e.labels))
        refs = tuple(e.ref for e in members)
        reach = self._reach_by_members.get(refs)
        if reach is None:
            reach = Reach(members)
            self._reach_by_members[refs] = reach
        self._reach_by_selector[key] = reach
        return reach

    def nets_index(self, side: str, field_name: str, nets: tuple[str, ...]) -> ProvenanceIndex:
        key = (side, field_name, *nets)
        found = self._nets.get(key)
        if found is None:
            tag = EntityRef(RULE_NETS, None, f"{side}.{field_name}")
            found = ProvenanceIndex([(tag, list(nets))])
            self._nets[key] = found
        return found

    # -- criteria ------------------------------------------------------------------------

    def protocol(self, rule: Rule) -> list[_Check]:
        out: list[_Check] = []
        if rule.protocol is not None:
            want = rule.protocol.number

            def proto_ok(pkt: _Packet, ep: Endpoint) -> bool:
                return pkt.proto == want

            def proto_fail(pkt: _Packet, ep: Endpoint) -> str:
                return (
                    f"protocol is {_protocol_text(want)}, the flow is {_protocol_text(pkt.proto)}"
                )

            out.append(_Check(proto_ok, f"protocol {rule.protocol}", proto_fail))
        if rule.not_protocol is not None:
            avoid = rule.not_protocol.number

            def not_proto_ok(pkt: _Packet, ep: Endpoint) -> bool:
                return pkt.proto != avoid

            def not_proto_fail(pkt: _Packet, ep: Endpoint) -> str:
                return f"notProtocol {_protocol_text(avoid)} excludes the flow's protocol"

            out.append(_Check(not_proto_ok, f"notProtocol {rule.not_protocol}", not_proto_fail))
        return out

    def icmp(self, rule: Rule, family: int) -> list[_Check]:
        out: list[_Check] = []
        icmp_proto = _ICMP_OF_FAMILY[family]
        for negated, match in ((False, rule.icmp), (True, rule.not_icmp)):
            if match is None or match.type is None:
                continue
            itype, icode = match.type, match.code
            text = f"{'notICMP' if negated else 'icmp'} type {itype}" + (
                f" code {icode}" if icode is not None else ""
            )

            def hit(pkt: _Packet, itype: int = itype, icode: int | None = icode) -> bool:
                return (
                    pkt.proto == icmp_proto
                    and pkt.itype == itype
                    and (icode is None or pkt.icode == icode)
                )

            if negated:

                def not_icmp_ok(pkt: _Packet, ep: Endpoint, hit: Any = hit) -> bool:
                    if pkt.proto == icmp_proto and pkt.itype is None:
                        return False
                    return not hit(pkt)

                def not_icmp_fail(pkt: _Packet, ep: Endpoint, text: str = text) -> str:
                    if pkt.proto == icmp_proto and pkt.itype is None:
                        return f"{text}: the flow's ICMP type is unknown (give --icmp-type)"
                    return f"{text} excludes the flow's ICMP type {pkt.itype}"

                out.append(_Check(not_icmp_ok, text, not_icmp_fail))
            else:

                def icmp_ok(pkt: _Packet, ep: Endpoint, hit: Any = hit) -> bool:
                    return bool(hit(pkt))

                def icmp_fail(pkt: _Packet, ep: Endpoint, text: str = text) -> str:
                    if pkt.proto != icmp_proto:
                        return f"{text}: the flow is not {_protocol_text(icmp_proto)}"
                    if pkt.itype is None:
                        return f"{text}: the flow's ICMP type is unknown (give --icmp-type)"
                    code = f" code {pkt.icode}" if pkt.icode is not None else ""
                    return f"{text}: the flow is ICMP type {pkt.itype}{code}"

                out.append(_Check(icmp_ok, text, icmp_fail))
        return out

    def nets(self, side: str, field_name: str, nets: tuple[str, ...], family: int) -> _Check:
        index = self.nets_index(side, field_name, nets)
        look = index.lookup_v4 if family == 4 else index.lookup_v6
        negated = field_name == "notNets"
        text = f"{side}.{field_name} [{', '.join(nets)}]"
        if side == "source":

            def get(pkt: _Packet) -> int | None:
                return pkt.src
        else:

            def get(pkt: _Packet) -> int | None:
                return pkt.dst

        if negated:

            def not_nets_ok(pkt: _Packet, ep: Endpoint) -> bool:
                value = get(pkt)
                return value is not None and not look(value)

            def not_nets_fail(pkt: _Packet, ep: Endpoint) -> str:
                value = get(pkt)
                if value is None:
                    return f"{text}: {side} address unknown"
                found = look(value)
                return f"{_addr_text(pkt, side)} is in {side}.notNets entry {found[0].cidr}"

            return _Check(not_nets_ok, text, not_nets_fail)

        def nets_ok(pkt: _Packet, ep: Endpoint) -> Any:
            value = get(pkt)
            if value is None:
                return False
            found = look(value)
            return ((side, found),) if found else False

        def nets_fail(pkt: _Packet, ep: Endpoint) -> str:
            if get(pkt) is None:
                return f"{text}: {side} address unknown"
            return f"{_addr_text(pkt, side)} is not in {text}"

        return _Check(nets_ok, text, nets_fail)

    def selector(
        self,
        side: str,
        written: str,
        effective: sel.Selector,
        family: int,
        *,
        negated: bool,
        rewritten: bool = False,
        scope: str = "",
    ) -> _Check:
        reach = self.reach(effective)
        look = reach.lookup_fn(family)
        matches_labels = effective.matches
        fam_ix = 0 if family == 4 else 1
        width = 32 if family == 4 else 128
        field_name = "notSelector" if negated else "selector"
        text = f"{side}.{field_name} {written}{scope}"
        if rewritten:
            text += f" (as Felix evaluates it: {effective})"

        def endpoint_match(pkt: _Packet, ep: Endpoint) -> tuple[Match, ...]:
            """The evaluated endpoint itself, as a member of the selector's IP set."""
            value = _addr_of(pkt, side)
            if value is None:
                # The address is the endpoint's own but the flow did not say which one:
                # decide by the endpoint's labels.
                if pkt.local == side and matches_labels(ep.labels):
                    # its own address, which the flow does not give: no CIDR to show
                    return (Match(_endpoint_ref(ep), None),)  # type: ignore[arg-type]
                return ()
            if value in ep._addresses[fam_ix] and matches_labels(ep.labels):
                return (Match(_endpoint_ref(ep), Cidr(family, value, width)),)  # type: ignore[arg-type]
            return ()

        if negated:

            def not_sel_ok(pkt: _Packet, ep: Endpoint) -> bool:
                value = _addr_of(pkt, side)
                if value is None and pkt.local != side:
                    return False
                if value is not None and look(value):
                    return False
                return not endpoint_match(pkt, ep)

            def not_sel_fail(pkt: _Packet, ep: Endpoint) -> str:
                value = _addr_of(pkt, side)
                if value is None and pkt.local != side:
                    return f"{text}: {side} address unknown"
                found = look(value) if value is not None else ()
                found = found or endpoint_match(pkt, ep)
                where = ", ".join(_match_text(m) for m in found)
                return f"{_addr_text(pkt, side)} is in {where}, which {side}.notSelector excludes"

            return _Check(not_sel_ok, text, not_sel_fail)

        def sel_ok(pkt: _Packet, ep: Endpoint) -> Any:
            value = _addr_of(pkt, side)
            if value is not None:
                found = look(value)
                if found:
                    return ((side, found),)
            mine = endpoint_match(pkt, ep)
            return ((side, mine),) if mine else False

        def sel_fail(pkt: _Packet, ep: Endpoint) -> str:
            value = _addr_of(pkt, side)
            if value is None and pkt.local != side:
                return f"{text}: {side} address unknown"
            return (
                f"{_addr_text(pkt, side)} is in none of what {side}.selector {written!r}{scope} "
                f"reaches ({reach.summary()})"
            )

        return _Check(sel_ok, text, sel_fail)

    def ports(
        self,
        side: str,
        ports: tuple[Port, ...],
        positive: sel.Selector | None,
        rule: Rule,
        *,
        negated: bool,
    ) -> _Check:
        ranges = tuple((p.min, p.max) for p in ports if not p.is_named)
        named = tuple(p.name for p in ports if p.name is not None)
        # Felix: named ports use the rule's protocol, TCP when it has none (rule_scanner.go).
        np_proto = 6
        if rule.protocol is not None and rule.protocol.number in (17, 132):
            np_proto = rule.protocol.number
        np_proto_name = _NAMED_PORT_PROTOCOLS[np_proto]
        # (family, address, port) of input pods that the positive selector reaches and that
        # declare the named port with that protocol
        members: frozenset[tuple[int, int, int]] = frozenset()
        if named:
            reached = self.reach(positive) if positive is not None else None
            pool = reached.entities if reached is not None else self.entities
            items = set()
            for ent in pool:
                for cport in ent.ports:
                    if cport.name in named and cport.protocol.upper() == np_proto_name:
                        for c in ent.nets:
                            items.add((c.family, c.network, cport.port))
            members = frozenset(items)
        sel_match = positive.matches if positive is not None else None
        field_name = "notPorts" if negated else "ports"
        text = f"{side}.{field_name} {_ports_text(ports)}"

        def in_named(pkt: _Packet, ep: Endpoint, port: int) -> bool:
            if not named or pkt.proto != np_proto:
                return False
            value = _addr_of(pkt, side)
            if value is None:
                if pkt.local != side:
                    return False
            elif (pkt.family, value, port) in members:
                return True
            elif value not in ep.addresses(pkt.family):
                return False
            if sel_match is not None and not sel_match(ep.labels):
                return False
            return any(
                cp.name in named and cp.port == port and cp.protocol.upper() == np_proto_name
                for cp in ep.ports
            )

        def in_ports(pkt: _Packet, ep: Endpoint, port: int) -> bool:
            for lo, hi in ranges:
                if lo <= port <= hi:
                    return True
            return in_named(pkt, ep, port)

        if negated:

            def not_ports_ok(pkt: _Packet, ep: Endpoint) -> bool:
                port = _port_of(pkt, side)
                return port is not None and not in_ports(pkt, ep, port)

            def not_ports_fail(pkt: _Packet, ep: Endpoint) -> str:
                port = _port_of(pkt, side)
                if port is None:
                    return f"{text}: the flow has no {side} port"
                return f"{side} port {port} is in {text}"

            return _Check(not_ports_ok, text, not_ports_fail)

        def ports_ok(pkt: _Packet, ep: Endpoint) -> bool:
            port = _port_of(pkt, side)
            return port is not None and in_ports(pkt, ep, port)

        def ports_fail(pkt: _Packet, ep: Endpoint) -> str:
            port = _port_of(pkt, side)
            if port is None:
                return f"{text}: the flow has no {side} port"
            extra = ""
            if named and pkt.proto != np_proto:
                extra = f" (named ports are matched as {np_proto_name})"
            return f"{side} port {port} is not in {text}{extra}"

        return _Check(ports_ok, text, ports_fail)

    def entity(
        self, policy: Policy, side: str, entity: EntityRule, rule: Rule, family: int
    ) -> tuple[list[_Check], list[str]]:
        """Criteria of one EntityRule for one family; notes for what is not evaluated."""
        checks: list[_Check] = []
        notes: list[str] = []
        for field_name, nets in (("nets", entity.nets), ("notNets", entity.not_nets)):
            mine = tuple(n for n in nets if (":" in n) == (family == 6))
            if mine:
                checks.append(self.nets(side, field_name, mine, family))
        positive, negative = effective_rule_selectors(policy, entity)
        if positive is not None:
            written = entity.selector or ""
            if entity.not_selector:
                written = (
                    f"{written} && !({entity.not_selector})"
                    if written
                    else f"!({entity.not_selector})"
                )
            if not written:
                written = "all()"
            scope = ""
            if entity.namespace_selector:
                scope = f" with namespaceSelector {entity.namespace_selector}"
            rewritten = str(positive) != str(sel.parse(entity.selector or ""))
            checks.append(
                self.selector(
                    side, written, positive, family, negated=False, rewritten=rewritten, scope=scope
                )
            )
        if negative is not None:
            checks.append(
                self.selector(side, entity.not_selector or "", negative, family, negated=True)
            )
        if entity.ports:
            checks.append(self.ports(side, entity.ports, positive, rule, negated=False))
        if entity.not_ports:
            checks.append(self.ports(side, entity.not_ports, positive, rule, negated=True))
        if entity.services is not None:
            svc = entity.services
            text = f"{side}.services {svc.namespace or policy.namespace}/{svc.name}"

            def never(pkt: _Packet, ep: Endpoint) -> bool:
                return False

            def never_fail(pkt: _Packet, ep: Endpoint, text: str = text) -> str:
                return f"{text}: Service endpoints are not among the inputs; never matches here"

            checks.append(_Check(never, text, never_fail))
            notes.append(f"{text} is not evaluated (Service endpoints are not among the inputs)")
        return checks, notes

    def rule(
        self, policy: Policy, rule: Rule, family: int
    ) -> tuple[tuple[_Check, ...] | None, str, list[str]]:
        """The criteria of ``rule`` for one family, or ``None`` with the reason it is skipped."""
        if rule.ip_version is not None and rule.ip_version != family:
            return None, f"ipVersion {rule.ip_version}: the rule is skipped for IPv{family}", []
        for side, entity in (("source", rule.source), ("destination", rule.destination)):
            for field_name, nets in (("nets", entity.nets), ("notNets", entity.not_nets)):
                if nets and not any((":" in n) == (family == 6) for n in nets):
                    return (
                        None,
                        f"{side}.{field_name} has no IPv{family} CIDR: "
                        f"the rule is skipped for IPv{family}",
                        [],
                    )
                if field_name == "notNets" and any(
                    n.replace(" ", "") in ("0.0.0.0/0", "::/0") for n in nets
                ):
                    return (
                        None,
                        f"{side}.notNets holds a catch-all CIDR: Felix never programs the rule",
                        [],
                    )
        checks: list[_Check] = [*self.protocol(rule), *self.icmp(rule, family)]
        notes: list[str] = []
        for side, entity in (("source", rule.source), ("destination", rule.destination)):
            got, more = self.entity(policy, side, entity, rule, family)
            checks.extend(got)
            notes.extend(more)
        if rule.http is not None:
            notes.append("http criteria are application-layer and not evaluated")
        return tuple(checks), "", notes


def _endpoint_ref(ep: Endpoint) -> EntityRef:
    kind = "HostEndpoint" if ep.is_host else "Endpoint"
    return EntityRef(kind, ep.namespace, ep.name or "(evaluated endpoint)")


def _make_matcher(checks: tuple[_Check, ...]) -> Callable[[_Packet, Endpoint], Any]:
    """One function per rule and family: returns the index of the first failing criterion
    (an int), or the tuple of set matches when every criterion holds."""
    fns = tuple(c.fn for c in checks)
    if not fns:

        def match_all(pkt: _Packet, ep: Endpoint) -> Any:
            return ()

        return match_all
    if len(fns) == 1:
        (only,) = fns

        def match_one(pkt: _Packet, ep: Endpoint) -> Any:
            r = only(pkt, ep)
            if not r:
                return 0
            return r if r is not True else ()

        return match_one

    def match(pkt: _Packet, ep: Endpoint) -> Any:
        found: tuple[Any, ...] = ()
        for i, fn in enumerate(fns):
            r = fn(pkt, ep)
            if not r:
                return i
            if r is not True:
                found += r
        return found

    return match


class _RulePlan:
    """A rule compiled for both families."""

    __slots__ = (
        "action",
        "checks",
        "direction",
        "file",
        "index",
        "line",
        "matchers",
        "notes",
        "path",
        "skip",
    )

    def __init__(
        self,
        compiler: _Compiler,
        policy: Policy,
        rule: Rule,
        index: int,
        direction: PolicyType,
    ) -> None:
        self.action = rule.action
        self.index = index
        self.direction = "egress" if direction is PolicyType.EGRESS else "ingress"
        self.path: tuple[str | int, ...] = ("spec", self.direction, index)
        converted = isinstance(policy, NetworkPolicy) and policy.from_kubernetes
        origin = policy.origin
        self.file: str | None = None
        self.line: int | None = None
        if origin is not None:
            self.file = origin.file
            # Converted Kubernetes rules do not map one to one to the YAML: point at the list.
            self.line = origin.line_of(("spec", self.direction) if converted else self.path)
        self.checks: list[tuple[_Check, ...] | None] = []
        self.matchers: list[Callable[[_Packet, Endpoint], Any] | None] = []
        self.skip: list[str] = []
        self.notes: list[str] = []
        for family in (4, 6):
            checks, reason, notes = compiler.rule(policy, rule, family)
            self.checks.append(checks)
            self.matchers.append(_make_matcher(checks) if checks is not None else None)
            self.skip.append(reason)
            for note in notes:
                if note not in self.notes:
                    self.notes.append(note)

    def explain(self, pkt: _Packet, ep: Endpoint, detail: Any, outcome: str) -> str:
        fam_ix = 0 if pkt.family == 4 else 1
        checks = self.checks[fam_ix]
        if outcome == "skipped" or checks is None:
            return self.skip[fam_ix]
        if outcome == "no-match":
            return str(checks[int(detail)].fail(pkt, ep))
        if not checks:
            return "no criteria: matches every packet"
        parts = []
        found: dict[str, list[Match]] = {}
        for side, matches in detail or ():
            found.setdefault(side, []).extend(matches)
        for check in checks:
            parts.append(check.text)
        text = "matched " + "; ".join(parts)
        for side, matches in found.items():
            where = ", ".join(_match_text(m) for m in matches)
            text += f"; {_addr_text(pkt, side)} is in {where}"
        return text


# --------------------------------------------------------------------------------------------
# Policies, tiers, plan


class _PolicyPlan:
    __slots__ = ("applies", "order", "policy", "ref", "rules", "tier", "types")

    def __init__(self, compiler: _Compiler, policy: Policy, applies: sel.Selector) -> None:
        self.policy = policy
        self.ref = PolicyRef.of(policy)
        self.tier = policy.tier
        self.order = policy.order
        self.applies = applies.matches
        self.types = frozenset(policy.effective_types())
        self.rules: dict[PolicyType, tuple[_RulePlan, ...]] = {
            direction: tuple(
                _RulePlan(compiler, policy, rule, i, direction)
                for i, rule in enumerate(policy.rules(direction))
            )
            for direction in (PolicyType.EGRESS, PolicyType.INGRESS)
            if direction in self.types
        }


class TierInfo(NamedTuple):
    """A valid tier in evaluation order."""

    name: str
    order: float | None
    default_action: Action


def policy_endpoint_selector(policy: Policy) -> sel.Selector:
    """The selector Felix evaluates to decide which endpoints ``policy`` applies to:
    ``selector`` with ``namespaceSelector``/``serviceAccountSelector`` rewritten, restricted
    to the namespace of a namespaced policy (``selector.policy_selector``)."""
    namespace = policy.namespace if policy.NAMESPACED else ""
    return sel.policy_selector(
        policy.selector or "",
        namespace_selector=getattr(policy, "namespace_selector", None) or "",
        service_account_selector=policy.service_account_selector or "",
        namespace=namespace or "",
    )


class EndpointPlan:
    """The applicable policies of one endpoint and direction, grouped by tier in order.

    ``evaluate(flow)`` is the fast way to push many flows through one endpoint.
    """

    __slots__ = ("_default_action", "_local", "_profile", "direction", "endpoint", "tiers")

    def __init__(
        self,
        endpoint: Endpoint,
        direction: PolicyType,
        tiers: tuple[tuple[TierInfo, tuple[_PolicyPlan, ...]], ...],
    ) -> None:
        self.endpoint = endpoint
        self.direction = direction
        self.tiers = tiers
        self._local = "source" if direction is PolicyType.EGRESS else "destination"
        self._profile = endpoint.profile
        self._default_action = Action.ALLOW if self._profile is not None else Action.DENY

    @property
    def policies(self) -> tuple[PolicyRef, ...]:
        """The applicable policies in evaluation order."""
        return tuple(p.ref for _, pols in self.tiers for p in pols)

    def packet(self, flow: Flow) -> _Packet:
        family, src, dst, proto = flow._parsed
        ep = self.endpoint
        if self.direction is PolicyType.EGRESS:
            if dst is None or family is None:
                raise InputError("an egress flow needs a destination address")
            if src is None:
                src = ep.first_address(family)
        else:
            if src is None or family is None:
                raise InputError("an ingress flow needs a source address")
            if dst is None:
                dst = ep.first_address(family)
        return _Packet(
            family,
            src,
            dst,
            proto,
            flow.src_port,
            flow.dst_port,
            flow.icmp_type,
            flow.icmp_code,
            self._local,
        )

    def evaluate(self, flow: Flow, *, trace: bool = True) -> Verdict:
        """The verdict for ``flow``; ``trace=False`` skips building the steps (faster)."""
        direction = self.direction
        if flow.state is not FlowState.NEW:
            return self._conntrack(flow, trace)
        pkt = self.packet(flow)
        ep = self.endpoint
        fam_ix = 0 if pkt.family == 4 else 1
        out: list[Step] | None = [] if trace else None
        logged = False
        for tier, policies in self.tiers:
            passed = False
            for pol in policies:
                for rp in pol.rules[direction]:
                    matcher = rp.matchers[fam_ix]
                    if matcher is None:
                        if out is not None:
                            out.append(_rule_step(tier, pol, rp, "skipped", None, pkt, ep))
                        continue
                    res = matcher(pkt, ep)
                    if res.__class__ is int:
                        if out is not None:
                            out.append(_rule_step(tier, pol, rp, "no-match", res, pkt, ep))
                        continue
                    action = rp.action
                    if out is not None:
                        out.append(_rule_step(tier, pol, rp, _OUTCOME[action], res, pkt, ep))
                    if action is Action.LOG:
                        logged = True
                        continue
                    if action is Action.PASS:
                        passed = True
                        break
                    return Verdict(action, logged, "rule", _steps(out), direction)
                if passed:
                    break
            if passed:
                continue
            if tier.default_action is Action.PASS:
                if out is not None:
                    why = f"no rule decided; tier {tier.name} ends with Pass"
                    out.append(_end_step(tier, Action.PASS, why))
                continue
            if out is not None:
                why = (
                    f"a policy of tier {tier.name} applied but no rule allowed, denied or "
                    "passed: end-of-tier drop"
                )
                out.append(_end_step(tier, Action.DENY, why))
            return Verdict(Action.DENY, logged, "end-of-tier", _steps(out), direction)
        return self._profile_verdict(out, logged)

    def _conntrack(self, flow: Flow, trace: bool) -> Verdict:
        action = Action.DENY if flow.state is FlowState.INVALID else Action.ALLOW
        steps: tuple[Step, ...] = ()
        if trace:
            if action is Action.DENY:
                why = "conntrack state INVALID: dropped before policy"
            else:
                why = f"conntrack state {flow.state.upper()}: accepted before policy"
            outcome = _OUTCOME[action]
            steps = (Step(StepKind.CONNTRACK, None, None, None, action, outcome, None, why),)
        return Verdict(action, False, "conntrack", steps, self.direction)

    def _profile_verdict(self, out: list[Step] | None, logged: bool) -> Verdict:
        profile = self._profile
        action = self._default_action
        if out is not None:
            if profile is not None:
                reason = "no policy applies" if not self.tiers else "every applicable tier passed"
                ref = PolicyRef("Profile", None, profile, "pro")
                why = f"{reason}: profile {profile} allows"
                out.append(Step(StepKind.PROFILE, None, ref, None, action, "allow", None, why))
            else:
                why = "no policy decided and the endpoint has no profile: denied"
                out.append(Step(StepKind.NO_PROFILE, None, None, None, action, "deny", None, why))
        reason = "profile" if profile is not None else "no-profile"
        return Verdict(action, logged, reason, _steps(out), self.direction)


def _steps(out: list[Step] | None) -> tuple[Step, ...]:
    return tuple(out) if out is not None else ()


def _rule_step(  # noqa: PLR0917 (hot path)
    tier: TierInfo,
    pol: _PolicyPlan,
    rp: _RulePlan,
    outcome: str,
    detail: Any,
    pkt: _Packet,
    ep: Endpoint,
) -> Step:
    return Step(
        StepKind.RULE, tier.name, pol.ref, rp.index, rp.action, outcome, rp, detail, pkt, ep
    )


def _end_step(tier: TierInfo, action: Action, why: str) -> Step:
    return Step(StepKind.END_OF_TIER, tier.name, None, None, action, _OUTCOME[action], None, why)


_OUTCOME: Final = {
    Action.ALLOW: "allow",
    Action.DENY: "deny",
    Action.PASS: "pass",
    Action.LOG: "log",
}


class Plan:
    """Resources compiled for evaluation: build with ``compile_plan``.

    ``ignored`` lists policies that are loaded but not enforced, with the reason (staged, tier
    missing, untracked/preDNAT); ``notes`` lists input quirks met while compiling.
    """

    def __init__(self, manifests: Manifests) -> None:
        notes: list[str] = []
        self.manifests = manifests
        self._compiler = _Compiler(manifests, notes)
        tiers = manifests.effective_tiers()
        self.tiers: tuple[TierInfo, ...] = tuple(
            TierInfo(t.name, t.order, t.effective_default_action)
            for t in sorted(tiers.values(), key=lambda tier: tier.sort_key)
        )
        ignored: list[tuple[PolicyRef, str]] = []
        self._policies = {PolicyRef.of(p): p for p in manifests.all_policies}
        for staged in manifests.staged_policies:
            ignored.append((PolicyRef.of(staged), "staged policies are never enforced"))
        by_tier: dict[str, list[_PolicyPlan]] = {t.name: [] for t in self.tiers}
        for policy in manifests.policies:
            ref = PolicyRef.of(policy)
            if policy.tier not in by_tier:
                ignored.append((ref, f"tier {policy.tier!r} does not exist; Felix skips it"))
                continue
            if isinstance(policy, GlobalNetworkPolicy) and (policy.do_not_track or policy.pre_dnat):
                flag = "doNotTrack" if policy.do_not_track else "preDNAT"
                why = f"{flag} policies run before normal policy; not evaluated here"
                ignored.append((ref, why))
                continue
            try:
                applies = policy_endpoint_selector(policy)
                compiled = _PolicyPlan(self._compiler, policy, applies)
            except SelectorError as exc:
                ignored.append((ref, f"a selector does not parse: {exc.message}"))
                continue
            by_tier[policy.tier].append(compiled)
        for pols in by_tier.values():
            pols.sort(key=lambda p: p.policy.sort_key)
        self._by_tier = {name: tuple(pols) for name, pols in by_tier.items()}
        self.ignored: tuple[tuple[PolicyRef, str], ...] = tuple(ignored)
        self.notes: tuple[str, ...] = tuple(notes)
        self._may_note = bool(
            self.ignored
            or self.notes
            or any(
                rp.notes
                for pols in self._by_tier.values()
                for pol in pols
                for rules in pol.rules.values()
                for rp in rules
            )
        )
        self._cache: dict[tuple[Endpoint, PolicyType], EndpointPlan] = {}

    def policy(self, ref: PolicyRef) -> Policy | None:
        """The policy a trace step names (enforced or not)."""
        return self._policies.get(ref)

    def reach(self, selector: sel.Selector) -> Reach:
        """What an (effective) rule selector reaches among the inputs."""
        return self._compiler.reach(selector)

    def for_endpoint(
        self, endpoint: Endpoint, direction: PolicyType = PolicyType.EGRESS
    ) -> EndpointPlan:
        """The applicable policies of ``endpoint`` in ``direction`` (cached)."""
        key = (endpoint, direction)
        found = self._cache.get(key)
        if found is not None:
            return found
        labels = endpoint.labels
        tiers = []
        for tier in self.tiers:
            pols = tuple(
                p for p in self._by_tier[tier.name] if direction in p.types and p.applies(labels)
            )
            if pols:
                tiers.append((tier, pols))
        plan = EndpointPlan(endpoint, direction, tuple(tiers))
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[key] = plan
        return plan

    def evaluate(
        self,
        endpoint: Endpoint,
        flow: Flow,
        direction: PolicyType = PolicyType.EGRESS,
        *,
        trace: bool = True,
    ) -> Verdict:
        """The verdict for ``flow`` leaving (egress) or reaching (ingress) ``endpoint``."""
        verdict = self.for_endpoint(endpoint, direction).evaluate(flow, trace=trace)
        if not trace or not self._may_note:
            return verdict
        notes = self._notes_for(verdict)
        if notes:
            return Verdict(
                verdict.action,
                verdict.logged,
                verdict.reason,
                verdict.trace,
                verdict.direction,
                notes,
            )
        return verdict

    def _notes_for(self, verdict: Verdict) -> tuple[str, ...]:
        out = list(self.notes)
        for ref, why in self.ignored:
            out.append(f"{ref} is not evaluated: {why}")
        for step in verdict.trace:
            rp = step._rule
            if rp is not None:
                for note in rp.notes:
                    text = f"{step.policy} {rp.direction}[{rp.index}]: {note}"
                    if text not in out:
                        out.append(text)
        return tuple(out)


def compile_plan(manifests: Manifests | Iterable[Any]) -> Plan:
    """Compile resources (a ``Manifests`` or resources) into an evaluation ``Plan``."""
    if not isinstance(manifests, Manifests):
        manifests = Manifests.of(manifests)
    return Plan(manifests)


def evaluate(
    manifests: Manifests | Iterable[Any],
    endpoint: Endpoint,
    flow: Flow,
    direction: PolicyType = PolicyType.EGRESS,
) -> Verdict:
    """One-shot ``compile_plan(manifests).evaluate(endpoint, flow, direction)``."""
    return compile_plan(manifests).evaluate(endpoint, flow, direction)

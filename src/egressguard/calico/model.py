"""Typed, immutable values for the Calico resources egressguard reads and writes.

The classes mirror Calico's ``projectcalico.org/v3`` Go types (the ``crd.projectcalico.org/v1``
CRDs carry the same spec fields), with Python names for the fields. Every value is a frozen,
slotted dataclass, so resources can be shared between the evaluator, the linter and the nft
compiler without defensive copies, and compared for equality (``origin`` — where a resource was
read from — never takes part in equality).

Strings that other modules interpret stay strings here, exactly as written: selectors (parsed by
``egressguard.selector``) and CIDRs (parsed by ``egressguard.cidr``). Values the API itself
normalises are normalised on load: a numeric protocol string ``"6"`` is the number 6, a numeric
port string ``"80"`` is port 80, an empty selector is ``None``.

Which direction a policy governs (``types``) needs care, see ``Policy.effective_types``:

* ``projectcalico.org/v3`` objects pass through Calico's API defaulting: no egress rules →
  ``[Ingress]``; egress rules only → ``[Egress]``; both → ``[Ingress, Egress]``.
* ``crd.projectcalico.org/v1`` objects written with kubectl skip that step, and Felix treats an
  empty ``types`` as *both* directions (``felix/calc/policy_sorter.go``).

Source for all field semantics: ``shared/reference/calico-semantics.md`` §1–§3.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Final, Literal, TypeAlias

from egressguard.problems import Path, Problem
from egressguard.selector import rewrite
from egressguard.yamlio import nearest_line

__all__ = [
    "API_V1",
    "API_V3",
    "BUILTIN_TIERS",
    "CALICO_API_GROUPS",
    "DEFAULT_TIER",
    "K8S_NAMESPACE_NAME_LABEL",
    "K8S_NETWORKING_V1",
    "K8S_POLICY_ORDER",
    "KNP_PREFIX",
    "KUBE_ADMIN_TIER",
    "KUBE_BASELINE_TIER",
    "LABEL_NAMESPACE",
    "LABEL_NAMESPACE_NAME",
    "LABEL_ORCHESTRATOR",
    "LABEL_SERVICE_ACCOUNT",
    "NAMESPACE_LABEL_PREFIX",
    "PORT_PROTOCOLS",
    "PROTOCOL_NUMBERS",
    "SERVICE_ACCOUNT_LABEL_PREFIX",
    "Action",
    "ApiGroup",
    "ContainerPort",
    "EntityRule",
    "FrozenMap",
    "GlobalNetworkPolicy",
    "GlobalNetworkSet",
    "HttpMatch",
    "HttpPath",
    "IcmpMatch",
    "IpBlock",
    "KubernetesNetworkPolicy",
    "KubernetesPeer",
    "KubernetesPort",
    "KubernetesRule",
    "LabelSelector",
    "LabelSelectorRequirement",
    "Metadata",
    "Namespace",
    "NetworkPolicy",
    "NetworkSet",
    "Origin",
    "Pod",
    "Policy",
    "PolicyType",
    "Port",
    "Protocol",
    "Resource",
    "Rule",
    "ServiceAccountMatch",
    "ServiceMatch",
    "StagedGlobalNetworkPolicy",
    "StagedNetworkPolicy",
    "Tier",
]

API_V1: Final = "crd.projectcalico.org/v1"
API_V3: Final = "projectcalico.org/v3"
K8S_NETWORKING_V1: Final = "networking.k8s.io/v1"
ApiGroup: TypeAlias = Literal["crd.projectcalico.org/v1", "projectcalico.org/v3"]
CALICO_API_GROUPS: Final = (API_V1, API_V3)

#: Tier names and orders of the built-in tiers (calico-semantics.md §2.2).
DEFAULT_TIER: Final = "default"
KUBE_ADMIN_TIER: Final = "kube-admin"
KUBE_BASELINE_TIER: Final = "kube-baseline"

#: Kubernetes NetworkPolicies become Calico policies named ``knp.default.<name>``, order 1000,
#: in the default tier (libcalico-go ``k8s/conversion/conversion.go``, ``lib/names``).
KNP_PREFIX: Final = "knp.default."
K8S_POLICY_ORDER: Final = 1000.0

#: Labels Calico adds to endpoints and network sets for selector evaluation (§1.3;
#: libcalico-go ``k8s/conversion/constants.go``, ``api/.../v3/constants.go``). The ones the
#: selector rewrites use are defined there, once.
LABEL_NAMESPACE: Final = rewrite.NAMESPACE_LABEL
LABEL_ORCHESTRATOR: Final = "projectcalico.org/orchestrator"
LABEL_SERVICE_ACCOUNT: Final = rewrite.SERVICE_ACCOUNT_LABEL
LABEL_NAMESPACE_NAME: Final = "projectcalico.org/name"
NAMESPACE_LABEL_PREFIX: Final = rewrite.NAMESPACE_PREFIX
SERVICE_ACCOUNT_LABEL_PREFIX: Final = rewrite.SERVICE_ACCOUNT_PREFIX
#: Kubernetes sets this label on every namespace (since 1.21).
K8S_NAMESPACE_NAME_LABEL: Final = "kubernetes.io/metadata.name"


class FrozenMap(Mapping[str, str]):
    """An immutable, hashable ``str → str`` mapping (labels, annotations).

    Iteration follows insertion order (the order in the manifest), equality and hashing ignore
    it, like ``dict`` equality.
    """

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, str] | Sequence[tuple[str, str]] = ()) -> None:
        self._data: dict[str, str] = dict(data)
        self._hash: int | None = None

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenMap):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"

    def to_dict(self) -> dict[str, str]:
        return dict(self._data)


_EMPTY_MAP: Final = FrozenMap()


class Action(enum.StrEnum):
    """A rule's action (§3.1, §5). Case-sensitive in the API."""

    ALLOW = "Allow"
    DENY = "Deny"
    LOG = "Log"
    PASS = "Pass"  # noqa: S105 (an action, not a password)


class PolicyType(enum.StrEnum):
    """A direction a policy governs."""

    INGRESS = "Ingress"
    EGRESS = "Egress"


_BOTH_TYPES: Final = (PolicyType.INGRESS, PolicyType.EGRESS)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a resource was read from: file, 0-based document index, first line, and the line
    of every YAML path of the document (for findings that point inside it)."""

    file: str
    document: int
    line: int
    lines: Mapping[Path, int] = field(default_factory=dict, repr=False, compare=False)

    def line_of(self, path: Sequence[str | int]) -> int:
        """The 1-based line of ``path`` or of its nearest ancestor that has one."""
        return nearest_line(self.lines, path, self.line)

    def locate(self, problem: Problem, path: Sequence[str | int] | None = None) -> Problem:
        """``problem`` with this origin's file, document index and the line of ``path``."""
        line = self.line_of(path) if path is not None else self.line
        return problem.located(file=self.file, line=line, document=self.document)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class Metadata:
    """The part of ``metadata`` the model keeps. ``namespace`` is ``None`` for cluster-scoped
    kinds; for namespaced kinds a manifest without one gets ``default`` (what ``kubectl apply``
    does in the default context)."""

    name: str
    namespace: str | None = None
    labels: FrozenMap = _EMPTY_MAP
    annotations: FrozenMap = _EMPTY_MAP


# --------------------------------------------------------------------------------------------
# Rule building blocks (§3)

#: Protocol names and their IANA numbers; the names are case-sensitive in the API.
PROTOCOL_NUMBERS: Final[Mapping[str, int]] = {
    "TCP": 6,
    "UDP": 17,
    "ICMP": 1,
    "ICMPv6": 58,
    "SCTP": 132,
    "UDPLite": 136,
}
#: Protocols whose rules may match ports: TCP, UDP, SCTP, by name or number, not UDPLite
#: (``numorstring.Protocol.SupportsPorts``).
PORT_PROTOCOLS: Final = frozenset({6, 17, 132})


@dataclass(frozen=True, slots=True)
class Protocol:
    """A rule protocol as written: a name from ``PROTOCOL_NUMBERS`` or a number 1–255."""

    value: str | int

    @property
    def number(self) -> int:
        """The IANA protocol number (``TCP`` → 6)."""
        if isinstance(self.value, int):
            return self.value
        return PROTOCOL_NUMBERS[self.value]

    @property
    def supports_ports(self) -> bool:
        return self.number in PORT_PROTOCOLS

    @property
    def is_icmp(self) -> bool:
        """ICMP (v4) by name or number 1."""
        return self.number == 1

    @property
    def is_icmpv6(self) -> bool:
        return self.number == 58

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True, slots=True)
class Port:
    """One ``ports`` entry: a number (``min == max``), an inclusive range, or a named port.

    Named ports have ``min == max == 0`` and ``name`` set; they match the endpoint's container
    port of that name under whatever protocol the endpoint declares for it.
    """

    min: int = 0
    max: int = 0
    name: str | None = None

    @classmethod
    def number(cls, port: int) -> Port:
        return cls(port, port)

    @classmethod
    def range(cls, first: int, last: int) -> Port:
        return cls(first, last)

    @classmethod
    def named(cls, name: str) -> Port:
        return cls(0, 0, name)

    @property
    def is_named(self) -> bool:
        return self.name is not None

    def contains(self, port: int) -> bool:
        """Whether numeric ``port`` is in this entry (always False for a named port)."""
        return self.name is None and self.min <= port <= self.max

    def to_yaml(self) -> int | str:
        """The API form: an int, ``"min:max"`` or the name."""
        if self.name is not None:
            return self.name
        if self.min == self.max:
            return self.min
        return f"{self.min}:{self.max}"

    def __str__(self) -> str:
        return str(self.to_yaml())


@dataclass(frozen=True, slots=True)
class IcmpMatch:
    """``icmp`` / ``notICMP``: type 0–254 and optional code 0–255 (code needs type)."""

    type: int | None = None
    code: int | None = None


@dataclass(frozen=True, slots=True)
class HttpPath:
    """One HTTP path match: exactly one of ``exact`` or ``prefix``."""

    exact: str | None = None
    prefix: str | None = None


@dataclass(frozen=True, slots=True)
class HttpMatch:
    """Application-layer match (Allow rules only; not enforced by egressguard's dataplane)."""

    methods: tuple[str, ...] = ()
    paths: tuple[HttpPath, ...] = ()


@dataclass(frozen=True, slots=True)
class ServiceAccountMatch:
    names: tuple[str, ...] = ()
    selector: str | None = None


@dataclass(frozen=True, slots=True)
class ServiceMatch:
    name: str
    namespace: str | None = None


@dataclass(frozen=True, slots=True)
class EntityRule:
    """``source`` or ``destination`` of a rule. Every set field must match (AND); entries of a
    list field are alternatives (OR); a ``not_*`` field matches when no entry does.

    Selector semantics depend on the policy kind and ``namespace_selector`` (§1.3): a GNP rule
    selector with no namespace selector reaches GNS, HEPs, pods and NetworkSets everywhere;
    ``namespace_selector == "global()"`` restricts it to GNS and HEPs.
    """

    nets: tuple[str, ...] = ()
    not_nets: tuple[str, ...] = ()
    selector: str | None = None
    not_selector: str | None = None
    namespace_selector: str | None = None
    ports: tuple[Port, ...] = ()
    not_ports: tuple[Port, ...] = ()
    service_accounts: ServiceAccountMatch | None = None
    services: ServiceMatch | None = None

    @property
    def is_empty(self) -> bool:
        return self == _EMPTY_ENTITY

    @property
    def is_global_only(self) -> bool:
        """``namespaceSelector: global()`` (blanks allowed): selectors reach only GNS/HEPs."""
        ns = self.namespace_selector
        if ns is None:
            return False
        return "".join(ns.split()) == "global()"


_EMPTY_ENTITY: Final = EntityRule()


@dataclass(frozen=True, slots=True)
class Rule:
    """One ingress or egress rule (§3.1)."""

    action: Action
    ip_version: int | None = None
    protocol: Protocol | None = None
    not_protocol: Protocol | None = None
    icmp: IcmpMatch | None = None
    not_icmp: IcmpMatch | None = None
    source: EntityRule = _EMPTY_ENTITY
    destination: EntityRule = _EMPTY_ENTITY
    http: HttpMatch | None = None
    annotations: FrozenMap = _EMPTY_MAP  # rule ``metadata.annotations``

    @property
    def matches_whole_family(self) -> bool:
        """No match criteria but perhaps ``ipVersion``: every packet of its family(ies)."""
        return (
            self.protocol is None
            and self.not_protocol is None
            and self.icmp is None
            and self.not_icmp is None
            and self.http is None
            and self.source.is_empty
            and self.destination.is_empty
        )

    @property
    def is_catch_all(self) -> bool:
        """No match criteria at all: every packet of both families."""
        return self.ip_version is None and self.matches_whole_family


# --------------------------------------------------------------------------------------------
# Resources


@dataclass(frozen=True, slots=True, kw_only=True)
class _Resource:
    KIND: ClassVar[str] = ""
    NAMESPACED: ClassVar[bool] = False

    metadata: Metadata
    api_version: str = API_V1
    origin: Origin | None = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str | None:
        return self.metadata.namespace

    @property
    def labels(self) -> FrozenMap:
        return self.metadata.labels

    @property
    def kind(self) -> str:
        return self.KIND

    @property
    def key(self) -> tuple[str, str | None, str]:
        """``(kind, namespace, name)``: unique per cluster."""
        return (self.KIND, self.metadata.namespace, self.metadata.name)

    def describe(self) -> str:
        """``GlobalNetworkPolicy egress-traffic-blocking`` / ``NetworkPolicy ns/name``."""
        ns = f"{self.metadata.namespace}/" if self.metadata.namespace else ""
        return f"{self.KIND} {ns}{self.metadata.name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class GlobalNetworkSet(_Resource):
    """Cluster-wide set of networks; reached only by *rule* selectors, never by a policy's
    top-level selector (§1.3). ``nets`` are kept as written (host bits and bare IPs are
    allowed; Felix uses the network of each entry)."""

    KIND: ClassVar[str] = "GlobalNetworkSet"
    nets: tuple[str, ...] = ()
    #: Calico Enterprise only; kept so that lint can explain it has no effect here.
    allowed_egress_domains: tuple[str, ...] = ()

    def calico_labels(self) -> dict[str, str]:
        """Labels rule selectors see: only its own (§1.3)."""
        return dict(self.metadata.labels)


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkSet(_Resource):
    """Namespaced set of networks."""

    KIND: ClassVar[str] = "NetworkSet"
    NAMESPACED: ClassVar[bool] = True
    nets: tuple[str, ...] = ()
    allowed_egress_domains: tuple[str, ...] = ()

    def calico_labels(self, namespace: Namespace | None = None) -> dict[str, str]:
        """Own labels, ``projectcalico.org/namespace``, and the namespace's labels inherited
        through its profile as ``pcns.*`` (own labels win)."""
        ns_name = self.metadata.namespace or "default"
        out = _namespace_profile_labels(ns_name, namespace)
        out[LABEL_NAMESPACE] = ns_name
        out.update(self.metadata.labels)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Tier(_Resource):
    """A policy tier. ``order`` ``None`` sorts last; ``default_action`` ``None`` means Deny."""

    KIND: ClassVar[str] = "Tier"
    order: float | None = None
    default_action: Action | None = None

    @property
    def effective_default_action(self) -> Action:
        """What happens at the end of the tier when no rule decided: Deny or Pass."""
        return self.default_action or Action.DENY

    @property
    def builtin(self) -> bool:
        return self.metadata.name in BUILTIN_TIERS

    @property
    def sort_key(self) -> tuple[bool, float, str]:
        """Evaluation order of tiers: ``order`` ascending, tiers without one last, then name."""
        return (self.order is None, self.order if self.order is not None else 0.0, self.name)


#: The tiers Calico creates itself, present even when no manifest declares them (§2.2).
BUILTIN_TIERS: Final[Mapping[str, Tier]] = {
    DEFAULT_TIER: Tier(
        metadata=Metadata(DEFAULT_TIER), order=1_000_000.0, default_action=Action.DENY
    ),
    KUBE_ADMIN_TIER: Tier(
        metadata=Metadata(KUBE_ADMIN_TIER), order=1_000.0, default_action=Action.PASS
    ),
    KUBE_BASELINE_TIER: Tier(
        metadata=Metadata(KUBE_BASELINE_TIER), order=10_000_000.0, default_action=Action.PASS
    ),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy(_Resource):
    """Fields common to every Calico policy kind (GNP, NP and their staged variants).

    ``types`` is what the document said (possibly empty). Use ``effective_types`` to know which
    directions the policy governs.
    """

    STAGED: ClassVar[bool] = False
    #: Short kind as Felix names it in log prefixes (``%k``): gnp, np, knp, sgnp, snp.
    SHORT_KIND: ClassVar[str] = ""

    tier: str = DEFAULT_TIER
    order: float | None = None
    selector: str | None = None
    service_account_selector: str | None = None
    types: tuple[PolicyType, ...] = ()
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()
    performance_hints: tuple[str, ...] = ()

    @property
    def short_kind(self) -> str:
        return self.SHORT_KIND

    @property
    def staged(self) -> bool:
        """Staged policies are loaded and reported but never enforced (§5)."""
        return self.STAGED

    def defaulted_types(self) -> tuple[PolicyType, ...]:
        """``types`` after Calico's API defaulting (clientv3, calicoctl, the API server):
        kept when set, else ``[Ingress]`` without egress rules, ``[Egress]`` with egress rules
        only, both with both (``api/pkg/defaults/networkpolicy.go``)."""
        if self.types:
            return self.types
        if not self.egress:
            return (PolicyType.INGRESS,)
        if not self.ingress:
            return (PolicyType.EGRESS,)
        return _BOTH_TYPES

    def felix_types(self) -> tuple[PolicyType, ...]:
        """``types`` as Felix reads a stored object: empty means both directions."""
        return self.types or _BOTH_TYPES

    def effective_types(self) -> tuple[PolicyType, ...]:
        """The directions the policy governs in a cluster, by API group.

        ``crd.projectcalico.org/v1`` documents are what ``kubectl apply`` stores verbatim, so
        Felix's fallback applies; ``projectcalico.org/v3`` documents go through API defaulting.
        The evaluator should use this method.
        """
        if self.api_version == API_V3:
            return self.defaulted_types()
        return self.felix_types()

    def governs(self, direction: PolicyType) -> bool:
        return direction in self.effective_types()

    def rules(self, direction: PolicyType) -> tuple[Rule, ...]:
        return self.ingress if direction is PolicyType.INGRESS else self.egress

    @property
    def sort_key(self) -> tuple[float, str]:
        """Order within a tier: ``order`` ascending (missing = +inf), then Felix's HEAD
        tie-break ``"<name>/<namespace>/<kind>"`` (§5)."""
        order = self.order if self.order is not None else float("inf")
        return (order, f"{self.metadata.name}/{self.metadata.namespace or ''}/{self.short_kind}")


@dataclass(frozen=True, slots=True, kw_only=True)
class GlobalNetworkPolicy(Policy):
    """Cluster-wide policy; ``selector`` picks endpoints (pods and host endpoints)."""

    KIND: ClassVar[str] = "GlobalNetworkPolicy"
    SHORT_KIND: ClassVar[str] = "gnp"
    namespace_selector: str | None = None
    do_not_track: bool = False
    pre_dnat: bool = False
    apply_on_forward: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkPolicy(Policy):
    """Calico namespaced policy. ``from_kubernetes`` marks one converted from a Kubernetes
    ``networking.k8s.io/v1`` NetworkPolicy (name ``knp.default.<name>``, order 1000).

    Felix restricts ``selector`` to the policy's namespace; ``egressguard.selector.
    policy_selector(selector=..., namespace=...)`` builds the selector Felix evaluates.
    """

    KIND: ClassVar[str] = "NetworkPolicy"
    NAMESPACED: ClassVar[bool] = True
    SHORT_KIND: ClassVar[str] = "np"
    from_kubernetes: bool = False

    @property
    def short_kind(self) -> str:
        return "knp" if self.from_kubernetes else "np"


@dataclass(frozen=True, slots=True, kw_only=True)
class StagedGlobalNetworkPolicy(Policy):
    """A staged GNP: loaded, validated and reported, never enforced."""

    KIND: ClassVar[str] = "StagedGlobalNetworkPolicy"
    SHORT_KIND: ClassVar[str] = "sgnp"
    STAGED: ClassVar[bool] = True
    staged_action: str | None = None
    namespace_selector: str | None = None
    do_not_track: bool = False
    pre_dnat: bool = False
    apply_on_forward: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class StagedNetworkPolicy(Policy):
    """A staged namespaced policy: never enforced."""

    KIND: ClassVar[str] = "StagedNetworkPolicy"
    NAMESPACED: ClassVar[bool] = True
    SHORT_KIND: ClassVar[str] = "snp"
    STAGED: ClassVar[bool] = True
    staged_action: str | None = None


# --------------------------------------------------------------------------------------------
# Kubernetes networking.k8s.io/v1 NetworkPolicy, kept as written and converted on demand


@dataclass(frozen=True, slots=True)
class LabelSelectorRequirement:
    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A Kubernetes ``metav1.LabelSelector``."""

    match_labels: FrozenMap = _EMPTY_MAP
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.match_labels and not self.match_expressions


@dataclass(frozen=True, slots=True)
class IpBlock:
    cidr: str
    except_: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class KubernetesPeer:
    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IpBlock | None = None


@dataclass(frozen=True, slots=True)
class KubernetesPort:
    """``protocol`` ``None`` means TCP (the Kubernetes default, made explicit on conversion)."""

    protocol: str | None = None
    port: int | str | None = None
    end_port: int | None = None


@dataclass(frozen=True, slots=True)
class KubernetesRule:
    """An ingress (``from``) or egress (``to``) rule; ``peers`` holds either list."""

    peers: tuple[KubernetesPeer, ...] = ()
    ports: tuple[KubernetesPort, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class KubernetesNetworkPolicy(_Resource):
    """A ``networking.k8s.io/v1`` NetworkPolicy as written. ``policy_types`` is what the
    document said; ``to_calico()`` (in ``egressguard.calico.k8s``) gives Calico's view."""

    KIND: ClassVar[str] = "KubernetesNetworkPolicy"
    NAMESPACED: ClassVar[bool] = True
    pod_selector: LabelSelector = LabelSelector()
    policy_types: tuple[PolicyType, ...] = ()
    ingress: tuple[KubernetesRule, ...] = ()
    egress: tuple[KubernetesRule, ...] = ()

    def describe(self) -> str:
        return f"NetworkPolicy (networking.k8s.io/v1) {self.metadata.namespace}/{self.name}"

    def defaulted_policy_types(self) -> tuple[PolicyType, ...]:
        """The API server's defaulting: Ingress always, plus Egress when there are egress rules
        (``k8s.io/kubernetes/pkg/apis/networking/v1/defaults.go``)."""
        if self.policy_types:
            return self.policy_types
        if self.egress:
            return _BOTH_TYPES
        return (PolicyType.INGRESS,)


# --------------------------------------------------------------------------------------------
# Label sources: pods and namespaces


@dataclass(frozen=True, slots=True)
class ContainerPort:
    """A container port; named ones are what named rule ports match."""

    port: int
    protocol: str = "TCP"
    name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Namespace(_Resource):
    """A Kubernetes namespace; its labels reach pods and NetworkSets as ``pcns.*`` labels."""

    KIND: ClassVar[str] = "Namespace"

    def effective_labels(self) -> dict[str, str]:
        """Labels including the automatic ``kubernetes.io/metadata.name``."""
        out = dict(self.metadata.labels)
        out[K8S_NAMESPACE_NAME_LABEL] = self.metadata.name
        return out

    @classmethod
    def implicit(cls, name: str) -> Namespace:
        """A namespace no manifest declares (only its automatic label)."""
        return cls(metadata=Metadata(name), api_version="v1")


@dataclass(frozen=True, slots=True, kw_only=True)
class Pod(_Resource):
    """A Kubernetes pod as a workload endpoint: labels, addresses and named ports."""

    KIND: ClassVar[str] = "Pod"
    NAMESPACED: ClassVar[bool] = True
    ips: tuple[str, ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    service_account: str = "default"
    node_name: str | None = None
    host_network: bool = False

    def calico_labels(self, namespace: Namespace | None = None) -> dict[str, str]:
        """Labels Calico gives the pod's workload endpoint (§1.3): the pod's own, plus
        ``projectcalico.org/{namespace,orchestrator,serviceaccount}``, plus ``pcns.*`` from the
        namespace and ``pcsa.projectcalico.org/name`` from the service account. The pod's own
        labels win over inherited ones."""
        ns_name = self.metadata.namespace or "default"
        out = _namespace_profile_labels(ns_name, namespace)
        out[SERVICE_ACCOUNT_LABEL_PREFIX + LABEL_NAMESPACE_NAME] = self.service_account
        out[LABEL_NAMESPACE] = ns_name
        out[LABEL_ORCHESTRATOR] = "k8s"
        out[LABEL_SERVICE_ACCOUNT] = self.service_account
        out.update(self.metadata.labels)
        return out

    def named_port(self, name: str) -> tuple[ContainerPort, ...]:
        return tuple(p for p in self.ports if p.name == name)


Resource: TypeAlias = (
    GlobalNetworkSet
    | NetworkSet
    | Tier
    | GlobalNetworkPolicy
    | NetworkPolicy
    | StagedGlobalNetworkPolicy
    | StagedNetworkPolicy
    | KubernetesNetworkPolicy
    | Pod
    | Namespace
)


def _namespace_profile_labels(ns_name: str, namespace: Namespace | None) -> dict[str, str]:
    """Labels of the ``kns.<ns>`` profile: namespace labels prefixed ``pcns.`` plus
    ``pcns.projectcalico.org/name`` (``conversion.go:NamespaceToProfile``)."""
    labels = namespace.effective_labels() if namespace is not None else {}
    if namespace is None:
        labels[K8S_NAMESPACE_NAME_LABEL] = ns_name
    out = {NAMESPACE_LABEL_PREFIX + k: v for k, v in labels.items()}
    out[NAMESPACE_LABEL_PREFIX + LABEL_NAMESPACE_NAME] = ns_name
    return out

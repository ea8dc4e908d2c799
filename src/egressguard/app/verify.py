"""``egressguard verify``: prove in a real cluster that the blocklist blocks, with probe Jobs.

Three steps, each usable on its own:

1. :func:`make_plan` — from loaded manifests and :class:`VerifyOptions`, pick the destinations
   to probe and say what each probe should observe:

   * **blocked samples** come from the user's own blocklist: the network sets (and inline
     ``nets``) that a ``Deny`` egress rule selects. A deterministic RNG (seeded per set with
     ``--seed``) draws up to ``samples`` addresses per set, from distinct CIDRs where there are
     enough, inside the set's CIDRs and outside every ``--allowed`` address;
   * **allowed destinations** are only those the user names (``--allowed``): egressguard never
     invents a public address to connect to;
   * the **expected verdict** of every probe, per namespace, comes from the policy evaluator
     (:mod:`egressguard.calico.evaluate`) for a pod with the probe pod's labels in that
     namespace, with the deciding rule (and the set and CIDR it matched) as the reason.

2. :func:`render_jobs` — one ``batch/v1`` Job per namespace whose pod runs
   ``egressguard verify probe`` (:mod:`egressguard.adapters.verify_probe`) with the plan in an
   env var. The pod runs as non-root with a read-only root filesystem, no capabilities, no
   service-account token and RuntimeDefault seccomp (it passes the ``restricted`` Pod Security
   Standard); the Job has ``backoffLimit: 0``, an ``activeDeadlineSeconds`` and a
   ``ttlSecondsAfterFinished``, so a forgotten Job cleans itself up.

3. :func:`execute` — create the Jobs through a :class:`~egressguard.adapters.kube_jobs.JobClient`,
   wait (bounded), read each pod's log, parse it, delete the Jobs (unless ``keep``) and compare
   expected with observed (:func:`judge`). Everything that can go wrong in one namespace (create
   refused, image not pullable, pod crashed, log unreadable, garbage in the log) is reported for
   that namespace; other namespaces still run.

How observations are judged. With Felix's default deny action (DROP) a blocked probe must
**time out**; an allowed one must **reach** the destination: a completed handshake, or a
refusal (a TCP reset or ICMP port unreachable means the packet got there and something
answered). With ``deny_action=reject`` (Felix configured with ``iptablesFilterDenyAction`` /
``nftablesFilterDenyAction: REJECT``) a blocked probe must be refused or unreachable, and an
allowed one must connect. A timeout proves only that *something* dropped the packet: an upstream
firewall drops too, so allowed destinations are what show that the drop is selective.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar, cast

from egressguard.adapters.kube_jobs import JobClient
from egressguard.adapters.verify_probe import (
    MAX_PROBES,
    MAX_TIMEOUT,
    PLAN_ENV,
    Outcome,
    ParsedLog,
    ProbeOutcome,
    ProbeSpec,
    Proto,
    encode_plan,
    parse_log,
)
from egressguard.calico import evaluate as ev
from egressguard.calico.load import Manifests
from egressguard.calico.model import (
    Action,
    GlobalNetworkSet,
    NetworkSet,
    Policy,
    PolicyType,
)
from egressguard.cidr import parse as cidr_parse
from egressguard.cidr.addresses import Cidr, CidrError, format_address, parse_address, parse_cidr
from egressguard.cidr.sets import AddressSet
from egressguard.errors import InputError, KubeError, SelectorError, UsageError
from egressguard.render.ownership import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from egressguard.tables import align

__all__ = [
    "ALLOWED_SOURCE",
    "DEFAULT_IMAGE",
    "MANAGED_BY_LABEL",
    "MANAGED_BY_VALUE",
    "NAME_LABEL",
    "NAME_VALUE",
    "RUN_LABEL",
    "BlockedSource",
    "CheckStatus",
    "DenyAction",
    "Expectation",
    "NamespacePlan",
    "NamespaceReport",
    "PlannedProbe",
    "PortSpec",
    "ProbeCheck",
    "Target",
    "Verdict",
    "VerifyOptions",
    "VerifyPlan",
    "VerifyReport",
    "blocked_sources",
    "execute",
    "format_plan_table",
    "format_report_table",
    "job_deadline",
    "job_name",
    "judge",
    "make_plan",
    "plan_to_json",
    "render_job",
    "render_jobs",
    "report_namespace",
    "report_to_json",
    "sample_addresses",
    "unique",
]

DEFAULT_IMAGE = "ghcr.io/egressguard/egressguard:0.1.0"
NAME_LABEL = "app.kubernetes.io/name"
NAME_VALUE = "egressguard-verify"
RUN_LABEL = "egressguard.io/verify-run"
ALLOWED_SOURCE = "--allowed"
"""The source of the destinations the user named."""

_JOB_PREFIX = "egressguard-verify-"
_CONTAINER = "probe"
_RUN_AS = 65532  # the conventional "nonroot" uid/gid of distroless images
_TTL_SECONDS = 3600
_START_ALLOWANCE = 90  # scheduling, image pull and interpreter start, within the Job deadline
_WORKERS = 32  # probes the in-Job runner runs at once (verify_probe._MAX_WORKERS)
_MAX_SAMPLES = 64


class Verdict(enum.StrEnum):
    BLOCKED = "Blocked"
    ALLOWED = "Allowed"


class DenyAction(enum.StrEnum):
    """What Felix does on Deny: DROP (default) or REJECT (ICMP port unreachable)."""

    DROP = "drop"
    REJECT = "reject"


class CheckStatus(enum.StrEnum):
    PASS = "pass"  # noqa: S105 - a check status, not a password
    FAIL = "fail"
    MISSING = "missing"


class PortSpec(NamedTuple):
    """A protocol and destination port to probe each destination on."""

    proto: str
    port: int

    @classmethod
    def parse(cls, text: str) -> PortSpec:
        """``443``, ``tcp/443`` or ``udp/53``."""
        proto, _, port = text.strip().lower().rpartition("/")
        proto = proto or "tcp"
        if proto not in ("tcp", "udp"):
            raise UsageError(f"--port {text!r}: the protocol must be tcp or udp")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError(f"--port {text!r}: the port must be a number in 1..65535")
        return cls(proto, int(port))

    def __str__(self) -> str:
        return f"{self.proto}/{self.port}"


@dataclass(frozen=True)
class VerifyOptions:
    """What to probe and how. ``family`` limits the *sampled* addresses (4, 6 or None for
    both); ``--allowed`` destinations are probed as given. ``run_id`` None derives one from
    the plan's content, so rendering is reproducible."""

    namespaces: tuple[str, ...] = ("default",)
    samples: int = 3
    seed: int = 0
    allowed: tuple[str, ...] = ()
    ports: tuple[PortSpec, ...] = (PortSpec("tcp", 443),)
    timeout: float = 3.0
    family: int | None = None
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    image: str = DEFAULT_IMAGE
    deny_action: DenyAction = DenyAction.DROP
    run_id: str | None = None

    def __post_init__(self) -> None:
        if not self.namespaces:
            raise UsageError("at least one namespace is needed")
        for ns in self.namespaces:
            if not _dns_label(ns):
                raise UsageError(f"namespace {ns!r} is not a valid Kubernetes namespace name")
        if not 0 <= self.samples <= _MAX_SAMPLES:
            raise UsageError(f"--samples must be in 0..{_MAX_SAMPLES}")
        if not self.ports:
            raise UsageError("at least one --port is needed")
        if not 0 < self.timeout <= MAX_TIMEOUT:
            raise UsageError(f"--timeout must be in (0, {MAX_TIMEOUT:g}] seconds")
        if self.family not in (None, 4, 6):
            raise UsageError("--family must be 4, 6 or all")
        for key, value in self.pod_labels.items():
            if key in _own_labels("x"):
                raise UsageError(f"--pod-label {key}: egressguard sets this label itself")
            if not _label_key(key) or not (value == "" or _LABEL_NAME.fullmatch(value)):
                raise UsageError(
                    f"--pod-label {key}={value}: not a valid Kubernetes label",
                    hint="keys are [prefix/]name, values up to 63 of A-Z a-z 0-9 - _ . "
                    "starting and ending alphanumeric",
                )
        if self.run_id is not None and not _dns_label(self.run_id, max_len=20):
            raise UsageError(f"run id {self.run_id!r}: use up to 20 of a-z, 0-9 and '-'")


# Label syntax (k8s.io/apimachinery/pkg/util/validation: IsQualifiedName, IsValidLabelValue).
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _label_key(key: str) -> bool:
    prefix, slash, name = key.rpartition("/")
    if slash and not (len(prefix) <= 253 and _DNS_SUBDOMAIN.fullmatch(prefix)):
        return False
    return bool(_LABEL_NAME.fullmatch(name))


def _dns_label(text: str, *, max_len: int = 63) -> bool:
    """An RFC 1123 label: lower-case alphanumerics and '-', starting and ending alphanumeric."""
    if not 0 < len(text) <= max_len or not text.isascii():
        return False
    if not (text[0].isalnum() and text[-1].isalnum()):
        return False
    return all(c.isdigit() or c.islower() or c == "-" for c in text)


def _own_labels(run_id: str) -> dict[str, str]:
    return {MANAGED_BY_LABEL: MANAGED_BY_VALUE, NAME_LABEL: NAME_VALUE, RUN_LABEL: run_id}


# --------------------------------------------------------------------------- the plan values


@dataclass(frozen=True)
class BlockedSource:
    """Networks a Deny egress rule selects: a (Global)NetworkSet, or a rule's inline nets.

    ``nets`` are as written; ``rules`` name the Deny rules that select them
    (``gnp/egress-traffic-blocking egress[1]``).
    """

    kind: str
    name: str
    namespace: str | None
    nets: tuple[str, ...]
    rules: tuple[str, ...]

    def describe(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {ns}{self.name}"


@dataclass(frozen=True)
class Target:
    """A destination address and where it came from: a blocked source (``source`` is its
    description, ``entry`` the CIDR as written that holds the address) or ``--allowed``."""

    address: str
    source: str
    entry: str | None = None


@dataclass(frozen=True)
class Expectation:
    verdict: Verdict
    reason: str


@dataclass(frozen=True)
class PlannedProbe:
    spec: ProbeSpec
    target: Target
    expected: Expectation


@dataclass(frozen=True)
class NamespacePlan:
    namespace: str
    probes: tuple[PlannedProbe, ...]


@dataclass(frozen=True)
class VerifyPlan:
    """Everything ``verify`` will do: the sources, targets, probes per namespace, and notes
    (what the evaluator could not take into account, what the run cannot prove)."""

    run_id: str
    options: VerifyOptions
    sources: tuple[BlockedSource, ...]
    targets: tuple[Target, ...]
    namespaces: tuple[NamespacePlan, ...]
    notes: tuple[str, ...] = ()

    @property
    def probe_count(self) -> int:
        return sum(len(n.probes) for n in self.namespaces)


def job_name(run_id: str) -> str:
    return _JOB_PREFIX + run_id


# --------------------------------------------------------------------------- blocked sources


def _rule_name(policy: Policy, index: int) -> str:
    return f"{ev.PolicyRef.of(policy)} egress[{index}]"


def blocked_sources(manifests: Manifests) -> tuple[list[BlockedSource], list[str]]:
    """The network sets and inline nets that enforced ``Deny`` egress rules select.

    Rule selectors are rewritten the way Calico does (``namespaceSelector``, ``global()``, the
    namespace of a NetworkPolicy, a folded ``notSelector``) and matched against the labels each
    set really has. Returns the sources sorted by kind, namespace and name, and notes about
    rules that could not be used.
    """
    sets: dict[tuple[str, str | None, str], tuple[GlobalNetworkSet | NetworkSet, list[str]]] = {}
    inline: list[BlockedSource] = []
    notes: list[str] = []
    network_sets = manifests.network_sets
    labels_of = {
        id(s): (
            s.calico_labels()
            if isinstance(s, GlobalNetworkSet)
            else s.calico_labels(manifests.namespace(s.namespace or "default"))
        )
        for s in network_sets
    }
    for policy in manifests.policies:
        if not policy.governs(PolicyType.EGRESS):
            continue
        for index, rule in enumerate(policy.egress):
            if rule.action is not Action.DENY:
                continue
            name = _rule_name(policy, index)
            dest = rule.destination
            if dest.nets:
                inline.append(
                    BlockedSource("rule", name, None, tuple(dest.nets), (name,)),
                )
            if dest.selector is None and dest.namespace_selector is None:
                continue
            try:
                positive, _negative = ev.effective_rule_selectors(policy, dest)
            except SelectorError as exc:
                notes.append(f"{name}: the destination selector does not parse: {exc.message}")
                continue
            if positive is None:
                continue
            for nset in network_sets:
                if positive.matches(labels_of[id(nset)]):
                    key = (nset.kind, nset.namespace, nset.name)
                    entry = sets.setdefault(key, (nset, []))
                    if name not in entry[1]:
                        entry[1].append(name)
    out = [
        BlockedSource(key[0], key[2], key[1], tuple(nset.nets), tuple(rules))
        for key, (nset, rules) in sets.items()
        if nset.nets
    ]
    out.extend(inline)
    out.sort(key=lambda s: (s.kind, s.namespace or "", s.name))
    return out, notes


# --------------------------------------------------------------------------- sampling


def _pick(cidr: Cidr, rng: random.Random) -> int:
    """A random address of ``cidr``; for IPv4 networks of 4+ addresses not the first or last
    (network and broadcast), for IPv6 not the first (the subnet-router anycast address)."""
    n = cidr.num_addresses
    if cidr.family == 4 and n >= 4:
        return cidr.first + rng.randrange(1, n - 1)
    if cidr.family == 6 and n >= 2:
        return cidr.first + rng.randrange(1, n)
    return cidr.first + rng.randrange(n)


def _pickable(cidr: Cidr) -> int:
    """How many addresses :func:`_pick` can return for ``cidr``."""
    n = cidr.num_addresses
    if cidr.family == 4 and n >= 4:
        return n - 2
    if cidr.family == 6 and n >= 2:
        return n - 1
    return n


def sample_addresses(
    nets: Sequence[str],
    count: int,
    *,
    seed: str,
    exclude: AddressSet | None = None,
    family: int | None = None,
) -> list[tuple[str, str]]:
    """Up to ``count`` distinct addresses inside ``nets`` and outside ``exclude``, as
    ``(address, entry)`` with the entry of ``nets`` (as written) that holds the address.

    Deterministic for a given ``seed`` text. Distinct CIDRs of the canonical set are preferred
    (so a sample covers different entries); when there are fewer CIDRs than ``count``, more
    addresses come from the same CIDRs. Unparsable entries are skipped (validation reports them).
    """
    # The bulk parser reads a world-size set in milliseconds. It also accepts ranges and
    # comments, which are not CIDRs: such entries are left out, like unparsable ones.
    texts = [t.strip() for t in nets]
    usable = [t for t in texts if t and not _NOT_A_CIDR.intersection(t)]
    space = cidr_parse.parse("\n".join(usable)).addresses
    if family is not None:
        space = AddressSet(v4=space.v4) if family == 4 else AddressSet(v6=space.v6)
    if exclude is not None:
        space = space - exclude
    cidrs = space.cidrs()
    if not cidrs or count <= 0:
        return []
    rng = random.Random(seed)  # noqa: S311 - reproducible sampling, not cryptography
    picks: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    for i in rng.sample(range(len(cidrs)), min(count, len(cidrs))):
        value = (cidrs[i].family, _pick(cidrs[i], rng))
        seen.add(value)
        picks.append(value)
    capacity = sum(_pickable(c) for c in cidrs) if len(cidrs) < count else count
    want = min(count, capacity)
    for _ in range(count * 16):  # bounded: duplicates are rare except in tiny sets
        if len(picks) >= want:
            break
        cidr = cidrs[rng.randrange(len(cidrs))]
        value = (cidr.family, _pick(cidr, rng))
        if value not in seen:
            seen.add(value)
            picks.append(value)
    entries = _entries_of(nets, picks)
    return [
        (format_address(fam, address), entries[(fam, address)])
        for fam, address in picks
        if (fam, address) in entries
    ]


_NOT_A_CIDR = frozenset("-#;\n\r")


def _entries_of(
    nets: Sequence[str], picks: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], str]:
    """For each picked address, the first entry of ``nets`` (as written) that holds it.

    One pass over ``nets``, parsing only entries that can hold a pick: IPv4 entries whose first
    octet is one of the picks' (a /8 or longer network keeps the first octet) or whose prefix is
    shorter than /8, and IPv6 entries when an IPv6 address was picked. A world-size set costs
    one cheap string pass.
    """
    octets = {str(a >> 24) for f, a in picks if f == 4}
    want_v6 = any(f == 6 for f, _ in picks)
    found: dict[tuple[int, int], str] = {}
    for raw in nets:
        if len(found) == len(picks):
            break
        text = raw.strip()
        if ":" in text:
            if not want_v6:
                continue
        else:
            head, _, _ = text.partition(".")
            _, slash, plen = text.partition("/")
            short = bool(slash) and not (plen.isdigit() and int(plen) >= 8)
            if head not in octets and not short:
                continue
        if _NOT_A_CIDR.intersection(text):
            continue
        try:
            cidr = parse_cidr(text)
        except CidrError:
            continue
        for pick in picks:
            if pick not in found and cidr.contains(*pick):
                found[pick] = raw
    return found


# --------------------------------------------------------------------------- expectations


def _expectation(verdict: ev.Verdict) -> Expectation:
    decided = verdict.decided_by
    where = str(decided) if decided is not None else verdict.reason
    if decided is not None and decided.matches:
        m = decided.matches[0]
        where += f" ({m.entity} {m.cidr})"
    outcome = Verdict.ALLOWED if verdict.allowed else Verdict.BLOCKED
    return Expectation(outcome, where)


def _pod_labels(options: VerifyOptions, run_id: str) -> dict[str, str]:
    labels = dict(options.pod_labels)
    labels.update(_own_labels(run_id))
    return labels


def _content_id(
    options: VerifyOptions, targets: Sequence[Target], sources: Sequence[BlockedSource]
) -> str:
    doc = {
        "seed": options.seed,
        "samples": options.samples,
        "namespaces": list(options.namespaces),
        "ports": [str(p) for p in options.ports],
        "timeout": options.timeout,
        "pod_labels": dict(sorted(options.pod_labels.items())),
        "image": options.image,
        "targets": [[t.address, t.source] for t in targets],
        "sources": [[s.describe(), list(s.rules)] for s in sources],
    }
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
    return digest[:10]


def make_plan(manifests: Manifests, options: VerifyOptions) -> VerifyPlan:
    """Choose the targets and compute the expected verdict of every probe in every namespace.

    Raises ``InputError`` when there is nothing to probe (no Deny egress rule selects a
    network set and no ``--allowed`` destination was given) and ``UsageError`` for a bad
    ``--allowed`` address or too many probes.
    """
    sources, notes = blocked_sources(manifests)
    allowed: list[str] = []
    for text in options.allowed:
        try:
            family, value = parse_address(text.strip())
        except CidrError as exc:
            raise UsageError(
                f"--allowed {text!r}: {exc.message}",
                hint="give single addresses of destinations you own or trust, e.g. your "
                "API gateway or a partner's endpoint",
            ) from exc
        address = format_address(family, value)
        if address not in allowed:
            allowed.append(address)
    exclude = AddressSet.from_cidrs(allowed)

    targets: list[Target] = []
    seen: set[str] = set()
    for source in sources:
        picks = sample_addresses(
            source.nets,
            options.samples,
            seed=f"egressguard-verify:{options.seed}:{source.describe()}",
            exclude=exclude,
            family=options.family,
        )
        if not picks and options.samples:
            notes.append(f"{source.describe()}: no address left to sample")
        for address, entry in picks:
            if address not in seen:
                seen.add(address)
                targets.append(Target(address, source.describe(), entry))
    for address in allowed:
        targets.append(Target(address, ALLOWED_SOURCE))
    if not targets:
        raise InputError(
            "nothing to verify: no Deny egress rule selects a network set with addresses, "
            "and no --allowed destination was given",
            hint="check the manifests with `egressguard validate`, or pass --allowed ADDRESS",
        )
    if not allowed:
        notes.append(
            "no --allowed destination: the run shows that blocked addresses time out, not that "
            "other egress still works (a timeout alone can come from any firewall)"
        )
    per_namespace = len(targets) * len(options.ports)
    if per_namespace > MAX_PROBES:
        raise UsageError(
            f"{per_namespace} probes per namespace; at most {MAX_PROBES}",
            hint="lower --samples or pass fewer --port/--allowed values",
        )

    run_id = options.run_id or _content_id(options, targets, sources)
    plan = ev.compile_plan(manifests)
    labels = _pod_labels(options, run_id)
    namespace_plans = []
    for ns in options.namespaces:
        endpoint = ev.Endpoint.pod(
            labels,
            namespace=ns,
            name=job_name(run_id),
            namespace_resource=manifests.namespace(ns),
        )
        probes: list[PlannedProbe] = []
        for target in targets:
            for port in options.ports:
                flow = ev.Flow(dst=target.address, protocol=port.proto.upper(), dst_port=port.port)
                verdict = plan.evaluate(endpoint, flow)
                for note in verdict.notes:
                    if note not in notes:
                        notes.append(note)
                proto = cast(Proto, port.proto)
                spec = ProbeSpec(len(probes), proto, target.address, port.port, options.timeout)
                probes.append(PlannedProbe(spec, target, _expectation(verdict)))
        namespace_plans.append(NamespacePlan(ns, tuple(probes)))
    return VerifyPlan(
        run_id,
        options,
        tuple(sources),
        tuple(targets),
        tuple(namespace_plans),
        tuple(notes),
    )


# --------------------------------------------------------------------------- the Jobs


def job_deadline(plan: VerifyPlan, ns_plan: NamespacePlan) -> int:
    """``activeDeadlineSeconds``: start-up allowance plus one timeout per wave of probes."""
    waves = max(1, math.ceil(len(ns_plan.probes) / _WORKERS))
    return _START_ALLOWANCE + waves * math.ceil(plan.options.timeout)


def render_job(plan: VerifyPlan, ns_plan: NamespacePlan) -> dict[str, Any]:
    """The Job that runs ``ns_plan``'s probes in its namespace."""
    options = plan.options
    name = job_name(plan.run_id)
    own = _own_labels(plan.run_id)
    pod_labels = _pod_labels(options, plan.run_id)
    specs = [p.spec for p in ns_plan.probes]
    container: dict[str, Any] = {
        "name": _CONTAINER,
        "image": options.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["egressguard"],
        "args": ["verify", "probe"],
        "env": [
            {"name": PLAN_ENV, "value": encode_plan(plan.run_id, ns_plan.namespace, specs)},
            {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
        ],
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"cpu": "500m", "memory": "128Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": _RUN_AS,
            "runAsGroup": _RUN_AS,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": ns_plan.namespace,
            "labels": own,
            "annotations": {
                "egressguard.io/description": (
                    "egressguard verify: probes sampled blocked and allowed destinations "
                    "once; safe to delete"
                ),
            },
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": job_deadline(plan, ns_plan),
            "ttlSecondsAfterFinished": _TTL_SECONDS,
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 5,
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": _RUN_AS,
                        "runAsGroup": _RUN_AS,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                },
            },
        },
    }


def render_jobs(plan: VerifyPlan) -> list[dict[str, Any]]:
    return [render_job(plan, ns_plan) for ns_plan in plan.namespaces]


# --------------------------------------------------------------------------- judging


def judge(
    expected: Verdict, observed: Outcome, deny_action: DenyAction = DenyAction.DROP
) -> tuple[bool, str]:
    """Whether ``observed`` is what ``expected`` predicts, and a short explanation."""
    reached = observed in (Outcome.CONNECTED, Outcome.REFUSED)
    if deny_action is DenyAction.DROP:
        if expected is Verdict.BLOCKED:
            if observed is Outcome.TIMEOUT:
                return True, "dropped, as a Deny does"
            if reached:
                return False, (
                    "the destination answered: not blocked for this pod"
                    if observed is Outcome.CONNECTED
                    else "something answered (refused): Deny drops silently; if Felix's deny "
                    "action is REJECT, use --deny-action reject"
                )
            return False, f"inconclusive ({observed}): neither a drop nor an answer"
        if observed is Outcome.CONNECTED:
            return True, "reached"
        if observed is Outcome.REFUSED:
            return True, "reached (the destination refused the port)"
        if observed is Outcome.TIMEOUT:
            return False, "no answer: dropped on the way, or the destination ignores the probe"
        return False, f"not reached ({observed})"
    # REJECT: a Deny answers with ICMP port unreachable (ECONNREFUSED for TCP).
    if expected is Verdict.BLOCKED:
        if observed in (Outcome.REFUSED, Outcome.UNREACHABLE):
            return True, "rejected, as a Deny with deny action REJECT does"
        if observed is Outcome.CONNECTED:
            return False, "the destination answered: not blocked for this pod"
        return False, f"expected a rejection, observed {observed}"
    if observed is Outcome.CONNECTED:
        return True, "reached"
    return False, (
        f"not reached ({observed}); with deny action REJECT a refusal may be the Deny itself"
    )


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ProbeCheck:
    planned: PlannedProbe
    observed: ProbeOutcome | None
    status: CheckStatus
    note: str


@dataclass(frozen=True)
class NamespaceReport:
    """What happened in one namespace. ``state``: ``completed``, ``failed`` (the Job failed,
    e.g. its deadline), ``stuck`` (the pod cannot start), ``timed-out`` (still running when
    the wait ended), ``not-created``, ``gone`` (the Job disappeared) or ``error``."""

    namespace: str
    job: str
    state: str
    detail: str
    checks: tuple[ProbeCheck, ...]
    log: ParsedLog | None = None
    log_error: str | None = None
    deleted: bool | None = None
    delete_error: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.status is CheckStatus.PASS for c in self.checks)

    @property
    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in CheckStatus}
        for c in self.checks:
            out[c.status.value] += 1
        return out


@dataclass(frozen=True)
class VerifyReport:
    plan: VerifyPlan
    namespaces: tuple[NamespaceReport, ...]

    @property
    def ok(self) -> bool:
        return all(n.ok for n in self.namespaces)


def report_namespace(
    plan: VerifyPlan,
    ns_plan: NamespacePlan,
    *,
    state: str,
    detail: str,
    log_text: str | None,
    log_error: str | None = None,
) -> NamespaceReport:
    """Compare a namespace's plan with what its pod's log says (pure; used by :func:`execute`)."""
    parsed = parse_log(log_text, plan.run_id) if log_text is not None else None
    results = parsed.results if parsed is not None else {}
    checks = []
    why_missing = _why_missing(state, parsed, log_error)
    for probe in ns_plan.probes:
        observed = results.get(probe.spec.index)
        if observed is None:
            checks.append(ProbeCheck(probe, None, CheckStatus.MISSING, why_missing))
            continue
        spec = probe.spec
        if (observed.proto, observed.dst, observed.port) != (spec.proto, spec.dst, spec.port):
            note = f"the result is for {observed.proto} {observed.dst}:{observed.port}, not ours"
            checks.append(ProbeCheck(probe, observed, CheckStatus.FAIL, note))
            continue
        ok, note = judge(probe.expected.verdict, observed.outcome, plan.options.deny_action)
        checks.append(
            ProbeCheck(probe, observed, CheckStatus.PASS if ok else CheckStatus.FAIL, note)
        )
    return NamespaceReport(
        ns_plan.namespace,
        job_name(plan.run_id),
        state,
        detail,
        tuple(checks),
        parsed,
        log_error,
    )


def _why_missing(state: str, parsed: ParsedLog | None, log_error: str | None) -> str:
    if log_error is not None:
        return f"no log: {log_error}"
    if parsed is None:
        return f"no result (Job {state})"
    if not parsed.started:
        return "the probe never started (no start line in the log)"
    if not parsed.ended:
        return "no result: the probe was cut short (no end line in the log)"
    return "no result for this probe in the log"


# --------------------------------------------------------------------------- running

#: Waiting reasons after which a container will not start without someone fixing something.
_STUCK_REASONS = frozenset(
    {
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)


def _condition(job: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(Complete|Failed, reason: message)`` when the Job has finished."""
    status = job.get("status") or {}
    for cond in status.get("conditions") or ():
        if not isinstance(cond, Mapping) or cond.get("status") != "True":
            continue
        if cond.get("type") in ("Complete", "Failed"):
            why = ": ".join(str(cond[k]) for k in ("reason", "message") if cond.get(k))
            return str(cond["type"]), why
    return None


def _pod_state(pod: Mapping[str, Any]) -> tuple[str, str | None]:
    """``(description, stuck reason or None)`` of a probe pod."""
    status = pod.get("status") or {}
    phase = str(status.get("phase") or "Unknown")
    parts = [f"pod {(pod.get('metadata') or {}).get('name', '?')} {phase}"]
    stuck = None
    for cs in status.get("containerStatuses") or ():
        state = (cs or {}).get("state") or {}
        if "terminated" in state:
            term = state["terminated"] or {}
            text = f"exit code {term.get('exitCode')}"
            if term.get("reason"):
                text += f" ({term['reason']})"
            parts.append(text)
        elif "waiting" in state:
            wait = state["waiting"] or {}
            reason = str(wait.get("reason") or "waiting")
            text = reason + (f": {wait['message']}" if wait.get("message") else "")
            parts.append(text[:300])
            if reason in _STUCK_REASONS:
                stuck = text[:300]
    return ", ".join(parts), stuck


def _pick_pod(pods: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    if not pods:
        return None
    return max(pods, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""))


@dataclass
class _Tracked:
    ns_plan: NamespacePlan
    state: str = "running"
    detail: str = ""
    done: bool = False


def execute(
    plan: VerifyPlan,
    client: JobClient,
    *,
    wait: float,
    keep: bool = False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[str], None] | None = None,
) -> VerifyReport:
    """Create the Jobs, wait at most ``wait`` seconds, collect and judge, clean up.

    The Jobs are deleted (with their pods) in a ``finally``: also after an error or Ctrl-C,
    unless ``keep``. ``clock`` and ``sleep`` are injectable so tests need no real waiting.
    """
    say = progress or (lambda _text: None)
    name = job_name(plan.run_id)
    tracked: dict[str, _Tracked] = {}
    reports: dict[str, NamespaceReport] = {}
    created: list[str] = []
    try:
        for ns_plan in plan.namespaces:
            ns = ns_plan.namespace
            try:
                client.create_job(render_job(plan, ns_plan))
            except KubeError as err:
                hint = f" ({err.hint})" if err.hint else ""
                reports[ns] = report_namespace(
                    plan,
                    ns_plan,
                    state="not-created",
                    detail=f"{err.message}{hint}",
                    log_text=None,
                    log_error="the Job was not created",
                )
                continue
            created.append(ns)
            tracked[ns] = _Tracked(ns_plan)
            say(f"created Job {ns}/{name} ({len(ns_plan.probes)} probes)")
        _wait_for(tracked, client, name, plan.run_id, wait=wait, clock=clock, sleep=sleep)
        for ns, item in tracked.items():
            reports[ns] = _collect(plan, client, item)
            say(f"{ns}: {reports[ns].state}")
    finally:
        deleted: dict[str, tuple[bool | None, str | None]] = {}
        if not keep:
            for ns in created:
                try:
                    deleted[ns] = (client.delete_job(ns, name), None)
                except KubeError as err:
                    deleted[ns] = (None, err.message)
    out = []
    for ns_plan in plan.namespaces:
        report = reports.get(ns_plan.namespace)
        if report is None:  # pragma: no cover - only when an exception is propagating
            continue
        if ns_plan.namespace in deleted:
            was, error = deleted[ns_plan.namespace]
            report = dataclasses.replace(report, deleted=was, delete_error=error)
        out.append(report)
    return VerifyReport(plan, tuple(out))


def _wait_for(
    tracked: Mapping[str, _Tracked],
    client: JobClient,
    name: str,
    run_id: str,
    *,
    wait: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> None:
    deadline = clock() + max(0.0, wait)
    delay = 0.5
    while True:
        for ns, item in tracked.items():
            if item.done:
                continue
            try:
                job = client.get_job(ns, name)
            except KubeError as err:
                if err.transient:
                    continue
                item.state, item.detail, item.done = "error", err.message, True
                continue
            if job is None:
                item.state, item.detail, item.done = "gone", "the Job disappeared", True
                continue
            cond = _condition(job)
            if cond is not None:
                item.state = "completed" if cond[0] == "Complete" else "failed"
                item.detail = f"Job {cond[0]}" + (f" ({cond[1]})" if cond[1] else "")
                item.done = True
                continue
            try:
                pod = _pick_pod(client.list_pods(ns, {RUN_LABEL: run_id}))
            except KubeError:
                continue
            if pod is not None:
                text, stuck = _pod_state(pod)
                item.detail = text
                if stuck is not None:
                    item.state, item.detail, item.done = "stuck", text, True
        if all(item.done for item in tracked.values()):
            return
        remaining = deadline - clock()
        if remaining <= 0:
            for item in tracked.values():
                if not item.done:
                    item.state = "timed-out"
                    item.detail = "still running when the wait ended" + (
                        f" ({item.detail})" if item.detail else ""
                    )
            return
        sleep(min(delay, remaining))
        delay = min(delay * 1.5, 3.0)


def _collect(plan: VerifyPlan, client: JobClient, item: _Tracked) -> NamespaceReport:
    ns = item.ns_plan.namespace
    detail = item.detail
    log_text: str | None = None
    log_error: str | None = None
    try:
        pod = _pick_pod(client.list_pods(ns, {RUN_LABEL: plan.run_id}))
    except KubeError as err:
        pod, log_error = None, f"cannot list the probe pod: {err.message}"
    if pod is None and log_error is None:
        log_error = "no probe pod exists (did admission refuse it? see kubectl describe job)"
    if pod is not None:
        text, _stuck = _pod_state(pod)
        if text not in detail:
            detail = f"{detail}; {text}" if detail else text
        pod_name = str((pod.get("metadata") or {}).get("name", ""))
        try:
            log_text = client.pod_log(ns, pod_name, tail_lines=2 * len(item.ns_plan.probes) + 200)
        except KubeError as err:
            log_error = err.message
    return report_namespace(
        plan, item.ns_plan, state=item.state, detail=detail, log_text=log_text, log_error=log_error
    )


# --------------------------------------------------------------------------- output


def _probe_json(p: PlannedProbe) -> dict[str, Any]:
    return {
        **p.spec.to_json(),
        "source": p.target.source,
        "entry": p.target.entry,
        "expected": p.expected.verdict.value,
        "reason": p.expected.reason,
    }


def plan_to_json(plan: VerifyPlan, *, jobs: bool = True) -> dict[str, Any]:
    """The plan as one JSON document (with the rendered Jobs unless ``jobs=False``)."""
    o = plan.options
    doc: dict[str, Any] = {
        "run": plan.run_id,
        "seed": o.seed,
        "samples": o.samples,
        "deny_action": o.deny_action.value,
        "ports": [str(p) for p in o.ports],
        "timeout": o.timeout,
        "sources": [
            {
                "kind": s.kind,
                "namespace": s.namespace,
                "name": s.name,
                "entries": len(s.nets),
                "rules": list(s.rules),
            }
            for s in plan.sources
        ],
        "targets": [
            {"address": t.address, "source": t.source, "entry": t.entry} for t in plan.targets
        ],
        "namespaces": [
            {
                "namespace": n.namespace,
                "job": job_name(plan.run_id),
                "probes": [_probe_json(p) for p in n.probes],
            }
            for n in plan.namespaces
        ],
        "notes": list(plan.notes),
    }
    if jobs:
        doc["jobs"] = render_jobs(plan)
    return doc


def _log_json(parsed: ParsedLog | None) -> dict[str, Any] | None:
    if parsed is None:
        return None
    return {
        "started": parsed.started,
        "ended": parsed.ended,
        "announced": parsed.announced,
        "results": len(parsed.results),
        "duplicates": parsed.duplicates,
        "malformed": parsed.malformed,
        "foreign_runs": parsed.foreign_runs,
        "other_lines": parsed.other_lines,
        "other_samples": list(parsed.other_samples),
    }


def report_to_json(report: VerifyReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "run": report.plan.run_id,
        "deny_action": report.plan.options.deny_action.value,
        "namespaces": [
            {
                "namespace": n.namespace,
                "job": n.job,
                "ok": n.ok,
                "state": n.state,
                "detail": n.detail,
                "counts": n.counts,
                "deleted": n.deleted,
                "delete_error": n.delete_error,
                "log_error": n.log_error,
                "log": _log_json(n.log),
                "probes": [
                    {
                        **_probe_json(c.planned),
                        "observed": c.observed.outcome.value if c.observed else None,
                        "observed_detail": c.observed.detail if c.observed else None,
                        "elapsed": round(c.observed.elapsed, 3) if c.observed else None,
                        "status": c.status.value,
                        "note": c.note,
                    }
                    for c in n.checks
                ],
            }
            for n in report.namespaces
        ],
        "notes": list(report.plan.notes),
    }


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def format_plan_table(plan: VerifyPlan) -> str:
    """The plan as a table: namespace, probe, source, expected verdict and why."""
    rows: list[Sequence[str]] = [("NAMESPACE", "PROBE", "SOURCE", "EXPECTED", "WHY")]
    for n in plan.namespaces:
        for p in n.probes:
            source = p.target.source + (f" {p.target.entry}" if p.target.entry else "")
            rows.append(
                (
                    n.namespace,
                    p.spec.label(),
                    _short(source, 60),
                    p.expected.verdict.value,
                    p.expected.reason,
                )
            )
    lines = align(rows)
    lines.append(
        f"run {plan.run_id}: {len(plan.targets)} destinations x {len(plan.options.ports)} "
        f"port(s) in {len(plan.namespaces)} namespace(s), seed {plan.options.seed}"
    )
    lines.extend(f"note: {n}" for n in plan.notes)
    return "\n".join(lines) + "\n"


def format_report_table(report: VerifyReport) -> str:
    """Expected vs observed per probe, then one summary line per namespace."""
    rows: list[Sequence[str]] = [
        ("NAMESPACE", "PROBE", "SOURCE", "EXPECTED", "OBSERVED", "RESULT", "NOTE")
    ]
    for n in report.namespaces:
        for c in n.checks:
            observed = "-"
            if c.observed is not None:
                observed = c.observed.outcome.value
                if c.observed.outcome is Outcome.TIMEOUT:
                    observed += f" ({c.observed.elapsed:.1f}s)"
            rows.append(
                (
                    n.namespace,
                    c.planned.spec.label(),
                    _short(c.planned.target.source, 40),
                    c.planned.expected.verdict.value,
                    observed,
                    c.status.value,
                    c.note,
                )
            )
    lines = align(rows)
    for n in report.namespaces:
        counts = n.counts
        summary = (
            f"{n.namespace}: Job {n.job} {n.state}; {counts['pass']}/{len(n.checks)} as "
            f"expected, {counts['fail']} not, {counts['missing']} without result"
        )
        if n.detail:
            summary += f" [{n.detail}]"
        if n.log_error:
            summary += f"; log: {n.log_error}"
        if n.log is not None and n.log.other_lines:
            summary += f"; {n.log.other_lines} other log line(s), first: {n.log.other_samples[0]!r}"
        if n.deleted is False:
            summary += "; the Job was already gone"
        if n.delete_error:
            summary += f"; NOT deleted: {n.delete_error}"
        lines.append(summary)
    lines.append("verified: every probe as expected" if report.ok else "NOT verified")
    return "\n".join(lines) + "\n"


_T = TypeVar("_T")


def unique(items: Iterable[_T]) -> tuple[_T, ...]:
    """Items in first-seen order without repeats (namespaces or ports given twice run once)."""
    return tuple(dict.fromkeys(items))

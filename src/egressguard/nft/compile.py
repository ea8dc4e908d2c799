"""Compile Calico resources and this host's endpoints into the nftables IR.

The result enforces *egress* policy, for each endpoint, exactly as egressguard's evaluator
(:mod:`egressguard.calico.evaluate`, i.e. Calico's semantics) decides it; a property test holds
the two together. Layout of the table (all names are ours, in ``inet egressguard``)::

    chain output  (hook output)   oifname "lo" accept           exempt interfaces
                                  icmpv6 type {133..137} accept neighbour discovery
                                  ct state established,related accept
                                  ct state invalid drop
                                  jump host                     the host endpoint
    chain forward (hook forward)  ct state ... (the same two)
                                  iifname "cali1" ip saddr {...} jump wl.ns.web   per workload
                                  iifname "cali1" drop          any other source: spoofed
    chain host / wl.ns.web        jump host.<tier>              each tier with policies for it
                                  accept | drop                 the profile: nothing decided
    chain host.<tier>             goto host.<tier>.0.<policy>   the tier's first policy
    chain host.<tier>.0.<policy>  <rules>                       Log: log; Allow: accept;
                                  goto host.<tier>.1.<next>     Deny: drop; Pass: return
    chain host.<tier>.N.<last>    <rules>
                                  drop | return                 end of tier: Deny | Pass tier

Policies are chained with ``goto``, so a ``return`` (Pass) anywhere in a tier's policies
returns straight to the endpoint chain, which goes on with the next tier: no packet marks are
needed and the jump stack does not grow with the number of policies.

Only the first packet of a flow is evaluated (conntrack first, as in Felix). Each rule is
compiled separately for IPv4 and IPv6 as Felix does (§7.5): a rule is skipped for a family
when its ``ipVersion`` names the other one or when a non-empty net field has no CIDR of the
family. Rule selectors are resolved here, at compile time, to interval sets named per
(effective selector, family) holding the addresses of every entity the selector reaches:
GlobalNetworkSets, NetworkSets, pods of the manifests, the workloads of the endpoints file and
the host when its addresses are given. A selector set changes when a network set changes,
which keeps updates element-only.

What is not enforced, and said so in ``Compiled.notes``: ingress rules, ``http`` criteria,
``services`` (the rule never matches), staged policies, ``doNotTrack``/``preDNAT`` policies,
policies of tiers that do not exist.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from egressguard import logprefix
from egressguard import selector as sel
from egressguard.calico.evaluate import effective_rule_selectors, policy_endpoint_selector
from egressguard.calico.load import Manifests
from egressguard.calico.model import (
    Action,
    ContainerPort,
    EntityRule,
    GlobalNetworkPolicy,
    GlobalNetworkSet,
    Namespace,
    NetworkSet,
    Policy,
    PolicyType,
    Port,
    Rule,
    Tier,
)
from egressguard.cidr import parse as cidr_parse
from egressguard.cidr.addresses import CidrError, Family, parse_address, parse_cidr
from egressguard.cidr.sets import AddressSet, CidrSet, union_all
from egressguard.errors import SelectorError
from egressguard.nft import ir, render
from egressguard.nft.endpoints import DEFAULT, Endpoints, Host, Workload

__all__ = ["CompileCache", "Compiled", "EndpointSummary", "Options", "compile_table"]

#: IPv6 neighbour discovery (RS, RA, NS, NA, redirect): never subject to policy.
ND_TYPES = (133, 134, 135, 136, 137)
#: Protocols whose first four transport bytes are the source and destination ports.
PORTED_PROTOCOLS = (6, 17, 132, 136)
_NAMED_PORT_PROTOCOLS = {6: "TCP", 17: "UDP", 132: "SCTP"}
_CHAIN_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
_COMMENT_CHARS = re.compile(r"[^\x20-\x21\x23-\x7e]")


@dataclass(frozen=True, slots=True)
class Options:
    """Rendering choices that are not in the manifests.

    ``log_prefix`` is a Calico ``logPrefix`` template (``%t``, ``%k``, ``%n``, ``%p``), encoded
    per policy by ``logprefix.encode``. ``log_limit`` rate-limits the log lines only.
    """

    log_prefix: str = logprefix.DEFAULT_TEMPLATE
    log_limit: ir.LogLimit | None = None
    log_level: str = "info"
    priority: int = 0


@dataclass(frozen=True, slots=True)
class EndpointSummary:
    """Which chain enforces an endpoint and which policies apply to it, in order."""

    kind: str  # "host" or "workload"
    name: str
    chain: str
    labels: Mapping[str, str]
    policies: tuple[str, ...]
    default_allow: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "chain": self.chain,
            "labels": dict(self.labels),
            "policies": list(self.policies),
            "profile": "allow" if self.default_allow else "deny",
        }


@dataclass(frozen=True, slots=True)
class Compiled:
    """The compiled table, what each endpoint got, and what was not enforced."""

    table: ir.Table
    endpoints: tuple[EndpointSummary, ...] = ()
    notes: tuple[str, ...] = ()

    def script(self) -> str:
        return render.script(self.table)


# ------------------------------------------------------------------------------- naming


def _chain_name(*parts: str) -> str:
    text = ".".join(_CHAIN_CHARS.sub("_", p) for p in parts if p)
    if not text[0].isalpha():
        text = "c" + text
    if len(text) > 120:
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]  # noqa: S324 - a name, not security
        text = f"{text[:110]}.{digest}"
    return text


def _comment(text: str) -> str:
    clean = _COMMENT_CHARS.sub("'", text.replace('"', "'"))
    return clean if len(clean) <= 127 else clean[:124] + "..."


# ------------------------------------------------------------------------------ entities


@dataclass(frozen=True, slots=True)
class _Entity:
    ref: str
    labels: Mapping[str, str]
    addresses: AddressSet
    ports: tuple[ContainerPort, ...] = ()
    #: (family, address) of each address of a pod or workload: what named ports refer to.
    hosts: tuple[tuple[int, int], ...] = ()


def _hosts(texts: Sequence[str]) -> tuple[tuple[int, int], ...]:
    out = []
    for text in texts:
        try:
            out.append(parse_address(text.strip().split("/")[0]))
        except CidrError:
            continue  # reported by _addresses
    return tuple(out)


def _addresses(texts: Sequence[str], owner: str, notes: list[str]) -> AddressSet:
    if not texts:
        return AddressSet()
    result = cidr_parse.parse("\n".join(texts), source=owner)
    for issue in result.issues:
        notes.append(_bad_entry(owner, issue.text))
    return result.addresses


def _bad_entry(owner: str, text: str) -> str:
    return f"{owner}: {text!r} is not an address or CIDR; ignored"


@dataclass(frozen=True, slots=True)
class _Parsed:
    """One network set's ``nets``, what they parse to, and the notes the parse gave."""

    nets: tuple[str, ...]
    addresses: AddressSet
    notes: tuple[str, ...]


class CompileCache:
    """What one compile keeps for the next (the agent's reloads): parsed network sets and the
    table's structure.

    *Network sets.* A network set whose ``nets`` are equal (by value: a reload builds new
    objects) to those of the set of the same name in the previous compile is not parsed
    again; comparing costs a tenth of parsing (measured on the world set: 0.4 ms against
    3.5 ms, cold caches). A set that changed is parsed in full: diffing it entry by entry
    against the previous version (a dictionary lookup per entry, then parsing only the
    entries that came and went) was measured too, and with entries as a reload builds them
    (new string objects, cold caches) it cost as much as the vectorised parse at 20k entries
    and twice as much at 100k. Entries are keyed by the owner's description
    (``GlobalNetworkSet blocked``); those that a compile did not use are dropped when it ends,
    so the cache holds one generation.

    *Structure.* When every input but the network sets' ``nets`` is equal to the previous
    compile's (resources with ``nets`` left out, endpoints, options, which families each set
    has addresses of, and the notes), the chains are the same: only the selector sets are
    rebuilt from the entities they reached (``_Structure``).

    Either way the result is what a compile without a cache gives; a property test holds the
    two together. Not for use by two compiles at once.
    """

    #: Smaller sets are parsed every time: the bookkeeping would cost more than the parse.
    MIN_ENTRIES = 32

    def __init__(self) -> None:
        self._entries: dict[str, _Parsed] = {}
        self._used: set[str] = set()
        self.structure: _Structure | None = None
        #: How each network set was answered (``reused``, ``parsed``) and each structure
        #: (``same structure``, ``compiled``), for tests and the benchmark.
        self.counts: dict[str, int] = {
            "reused": 0,
            "parsed": 0,
            "same structure": 0,
            "compiled": 0,
        }

    def __len__(self) -> int:
        return len(self._entries)

    def addresses(self, owner: str, nets: tuple[str, ...], notes: list[str]) -> AddressSet:
        """What ``nets`` parse to; rejected entries are appended to ``notes`` as a fresh
        parse would."""
        if len(nets) < self.MIN_ENTRIES:
            return _addresses(nets, owner, notes)
        self._used.add(owner)
        entry = self._entries.get(owner)
        if entry is not None and entry.nets == nets:
            self.counts["reused"] += 1
        else:
            own: list[str] = []
            entry = _Parsed(nets, _addresses(nets, owner, own), tuple(own))
            self._entries[owner] = entry
            self.counts["parsed"] += 1
        notes.extend(entry.notes)
        return entry.addresses

    def sweep(self) -> None:
        """Forget the sets the last compile did not use."""
        for owner in [o for o in self._entries if o not in self._used]:
            del self._entries[owner]
        self._used.clear()


@dataclass(frozen=True, slots=True)
class _SetRecipe:
    """How a selector set was made: the entities (indices) with addresses of its family."""

    family: Family
    name: str
    comment: str
    members: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _Structure:
    """A compiled table without its set elements, and the inputs it was compiled from."""

    key: tuple[Any, ...]
    chains: tuple[ir.Chain, ...]
    recipes: tuple[_SetRecipe, ...]
    endpoints: tuple[EndpointSummary, ...]
    notes: tuple[str, ...]
    #: ``render.structure_digest`` of every table of this structure (it leaves out elements).
    digest: str


def _without_nets(resource: Any) -> Any:
    if isinstance(resource, GlobalNetworkSet | NetworkSet):
        return dataclasses.replace(resource, nets=())
    return resource


class _Compiler:
    def __init__(
        self,
        manifests: Manifests,
        endpoints: Endpoints,
        options: Options,
        cache: CompileCache | None = None,
    ) -> None:
        self.manifests = manifests
        self.endpoints = endpoints
        self.options = options
        self.cache = cache
        self.notes: list[str] = []
        self.entities = self._entities()
        self.chains: list[ir.Chain] = []
        self._reach: dict[str, tuple[int, ...]] = {}
        self._selector_sets: dict[tuple[Family, str], str | None] = {}
        self._recipes: dict[tuple[Family, str], _SetRecipe] = {}

    def _namespace(self, name: str) -> Namespace:
        return self.endpoints.namespace(name) or self.manifests.namespace(name)

    def _entities(self) -> tuple[_Entity, ...]:
        out: list[_Entity] = []
        m = self.manifests
        for gns in m.global_network_sets:
            out.append(
                _Entity(
                    gns.describe(),
                    gns.calico_labels(),
                    self._set_addresses(gns.nets, gns.describe()),
                )
            )
        for ns_set in m.namespaced_network_sets:
            ns = ns_set.namespace or "default"
            out.append(
                _Entity(
                    ns_set.describe(),
                    ns_set.calico_labels(self._namespace(ns)),
                    self._set_addresses(ns_set.nets, ns_set.describe()),
                )
            )
        workloads = {(w.namespace, w.name) for w in self.endpoints.workloads}
        for pod in m.pods:
            ns = pod.namespace or "default"
            if pod.host_network or (ns, pod.name) in workloads:
                continue
            out.append(
                _Entity(
                    pod.describe(),
                    pod.calico_labels(self._namespace(ns)),
                    _addresses(pod.ips, pod.describe(), self.notes),
                    pod.ports,
                    _hosts(pod.ips),
                )
            )
        for wl in self.endpoints.workloads:
            out.append(
                _Entity(
                    f"workload {wl.namespace}/{wl.name}",
                    self._workload_labels(wl),
                    _addresses(wl.addresses, f"workload {wl.name}", self.notes),
                    wl.ports,
                    _hosts(wl.addresses),
                )
            )
        host = self.endpoints.host
        if host is not None and host.addresses:
            out.append(
                _Entity(
                    f"host {host.name}",
                    dict(host.labels),
                    _addresses(host.addresses, f"host {host.name}", self.notes),
                )
            )
        return tuple(out)

    def _set_addresses(self, nets: tuple[str, ...], owner: str) -> AddressSet:
        if self.cache is None:
            return _addresses(nets, owner, self.notes)
        return self.cache.addresses(owner, tuple(nets), self.notes)

    def _workload_labels(self, wl: Workload) -> dict[str, str]:
        return wl.as_pod().calico_labels(self._namespace(wl.namespace))

    def _reached(self, selector: sel.Selector) -> tuple[int, ...]:
        key = str(selector)
        found = self._reach.get(key)
        if found is None:
            found = tuple(i for i, e in enumerate(self.entities) if selector.matches(e.labels))
            self._reach[key] = found
        return found

    def reach(self, selector: sel.Selector) -> tuple[_Entity, ...]:
        return tuple(self.entities[i] for i in self._reached(selector))

    def selector_set(self, selector: sel.Selector, family: Family) -> str | None:
        """The name of the interval set of what ``selector`` reaches, or None if empty."""
        key = (family, str(selector))
        if key in self._selector_sets:
            return self._selector_sets[key]
        members = tuple(i for i in self._reached(selector) if self.entities[i].addresses[family])
        name: str | None = None
        if members:
            digest = hashlib.sha256(key[1].encode()).hexdigest()[:12]
            name = f"sel{family}-{digest}"
            self._recipes[key] = _SetRecipe(family, name, _comment(key[1]), members)
        self._selector_sets[key] = name
        return name

    def _build_sets(self, recipes: Iterable[_SetRecipe]) -> tuple[ir.IntervalSet, ...]:
        """The selector sets of ``recipes`` with this compile's addresses: one way for a fresh
        compile and a rebuilt structure alike."""
        out = []
        for recipe in recipes:
            members = [self.entities[i].addresses[recipe.family] for i in recipe.members]
            elements = members[0] if len(members) == 1 else union_all(members)  # sets are values
            out.append(ir.IntervalSet(recipe.name, recipe.family, elements, recipe.comment))
        return tuple(out)

    def recipes(self) -> tuple[_SetRecipe, ...]:
        """The selector sets made so far, in table order (by family, then selector)."""
        return tuple(self._recipes[key] for key in sorted(self._recipes))

    # -- reuse ---------------------------------------------------------------------------

    def structure_key(self) -> tuple[Any, ...]:
        """Everything the chains depend on: all inputs but the network sets' ``nets``."""
        m = self.manifests
        return (
            tuple(_without_nets(r) for r in m.resources),
            m.converted,
            self.endpoints,
            self.options,
            tuple((bool(e.addresses.v4), bool(e.addresses.v6)) for e in self.entities),
            tuple(self.notes),
        )

    def structure(self, key: tuple[Any, ...], compiled: Compiled) -> _Structure:
        return _Structure(
            key,
            compiled.table.chains,
            self.recipes(),
            compiled.endpoints,
            compiled.notes,
            render.structure_digest(compiled.table),
        )

    def rebuild(self, structure: _Structure) -> Compiled:
        """The table of ``structure`` with set elements from this compile's entities."""
        table = ir.Table(self._build_sets(structure.recipes), structure.chains)
        table.memo["structure"] = structure.digest  # same chains and set definitions
        return Compiled(table, structure.endpoints, structure.notes)

    # -- rules -------------------------------------------------------------------------

    def rule_matches(
        self, policy: Policy, rule: Rule, family: Family, labels: Mapping[str, str]
    ) -> list[ir.Match] | None:
        """Matches of one rule for one family and endpoint; None: never matches there."""
        if rule.ip_version is not None and rule.ip_version != family:
            return None
        for entity in (rule.source, rule.destination):
            for nets in (entity.nets, entity.not_nets):
                if nets and not any((":" in n) == (family == 6) for n in nets):
                    return None
            if any(n.replace(" ", "") in ("0.0.0.0/0", "::/0") for n in entity.not_nets):
                return None  # Felix never programs such a rule (calico-semantics §3.2)
            if entity.services is not None:
                return None  # Service endpoints are not known here: never matches
        out: list[ir.Match] = []
        if rule.protocol is not None:
            out.append(ir.L4Proto((rule.protocol.number,)))
        if rule.not_protocol is not None:
            out.append(ir.L4Proto((rule.not_protocol.number,), negate=True))
        for negate, icmp in ((False, rule.icmp), (True, rule.not_icmp)):
            if icmp is not None and icmp.type is not None:
                out.append(ir.Icmp(family, icmp.type, icmp.code, negate=negate))
        for side, entity in (("source", rule.source), ("destination", rule.destination)):
            got = self.entity_matches(
                policy, rule, side=side, entity=entity, family=family, labels=labels
            )
            if got is None:
                return None
            out.extend(got)
        return out

    def entity_matches(
        self,
        policy: Policy,
        rule: Rule,
        *,
        side: str,
        entity: EntityRule,
        family: Family,
        labels: Mapping[str, str],
    ) -> list[ir.Match] | None:
        addr: ir.AddrField = "saddr" if side == "source" else "daddr"
        port: ir.PortField = "sport" if side == "source" else "dport"
        local = side == "source"  # egress: the source is the endpoint itself
        out: list[ir.Match] = []
        for negate, nets in ((False, entity.nets), (True, entity.not_nets)):
            mine = [n for n in nets if (":" in n) == (family == 6)]
            if mine:
                ranges = []
                for text in mine:
                    cidr = parse_cidr(text.strip())
                    ranges.append((cidr.first, cidr.last))
                out.append(ir.AddrInNets(addr, CidrSet.from_ranges(family, ranges), negate))
        positive, negative = effective_rule_selectors(policy, entity)
        if positive is not None:
            if local and positive.matches(labels):
                pass  # the packet comes from the endpoint, which the selector reaches
            else:
                name = self.selector_set(positive, family)
                if name is None:
                    return None
                out.append(ir.AddrInSet(addr, family, name))
        if negative is not None:
            if local and negative.matches(labels):
                return None
            name = self.selector_set(negative, family)
            if name is not None:
                out.append(ir.AddrInSet(addr, family, name, negate=True))
        for negate, ports in ((False, entity.ports), (True, entity.not_ports)):
            if not ports:
                continue
            got = self.port_match(
                rule, ports, positive, family=family, addr=addr, port=port, negate=negate
            )
            if got is None:
                return None
            out.extend(got)
        return out

    def port_match(
        self,
        rule: Rule,
        ports: tuple[Port, ...],
        positive: sel.Selector | None,
        *,
        family: Family,
        addr: ir.AddrField,
        port: ir.PortField,
        negate: bool,
    ) -> list[ir.Match] | None:
        ranges = tuple((p.min, p.max) for p in ports if not p.is_named)
        named = {p.name for p in ports if p.name is not None}
        guard: list[ir.Match] = []
        if rule.protocol is None:
            # Only packets with ports can match ports or notPorts (th reads the first bytes of
            # the transport header, whatever the protocol).
            guard.append(ir.L4Proto(PORTED_PROTOCOLS))
        if not named:
            return [*guard, ir.Ports(port, ranges, negate)]
        # Felix: named ports are matched under the rule's protocol, TCP when it has none.
        np_proto = 6
        if rule.protocol is not None and rule.protocol.number in (17, 132):
            np_proto = rule.protocol.number
        proto_name = _NAMED_PORT_PROTOCOLS[np_proto]
        pool = self.reach(positive) if positive is not None else self.entities
        entries: set[tuple[int, int, int, int, int]] = set()
        for ent in pool:
            numbers = {
                c.port for c in ent.ports if c.name in named and c.protocol.upper() == proto_name
            }
            if not numbers:
                continue
            for fam, value in ent.hosts:
                if fam == family:
                    for number in numbers:
                        entries.add((np_proto, value, value, number, number))
        top = (1 << (32 if family == 4 else 128)) - 1
        protocols = (rule.protocol.number,) if rule.protocol is not None else PORTED_PROTOCOLS
        for lo, hi in ranges:
            for proto in protocols:
                entries.add((proto, 0, top, lo, hi))
        if not entries:
            return guard if negate else None
        return [*guard, ir.AddrPorts(family, addr, port, tuple(sorted(entries)), negate)]

    def rules_for(self, policy: Policy, labels: Mapping[str, str], prefix: str) -> list[ir.Rule]:
        out: list[ir.Rule] = []
        kind = policy.short_kind
        ns = f"{policy.namespace}/" if policy.NAMESPACED and policy.namespace else ""
        for index, rule in enumerate(policy.egress):
            comment = _comment(f"{kind} {ns}{policy.name} egress[{index}] {rule.action.value}")
            if rule.http is not None:
                self._note(
                    f"{policy.describe()} egress[{index}]: http criteria are "
                    "application-layer and not enforced"
                )
            variants = {
                family: self.rule_matches(policy, rule, family, labels) for family in (4, 6)
            }
            statements: tuple[ir.Statement, ...] = ()
            verdict: ir.Verdict | None
            if rule.action is Action.LOG:
                statements = (
                    ir.Log(prefix, level=self.options.log_level, limit=self.options.log_limit),
                )
                verdict = None
            elif rule.action is Action.ALLOW:
                verdict = ir.ACCEPT
            elif rule.action is Action.DENY:
                verdict = ir.DROP
            else:
                verdict = ir.RETURN  # Pass: back to the endpoint chain, on to the next tier
            v4, v6 = variants[4], variants[6]
            if v4 is not None and v4 == v6 and not any(_family_bound(m) for m in v4):
                out.append(ir.Rule(tuple(v4), statements, verdict, comment))
                continue
            pairs: tuple[tuple[Family, list[ir.Match] | None], ...] = ((4, v4), (6, v6))
            for family, matches in pairs:
                if matches is None:
                    continue
                if not any(_family_bound(m) for m in matches):
                    matches = [ir.NfProto(family), *matches]  # noqa: PLW2901
                out.append(ir.Rule(tuple(matches), statements, verdict, comment))
        return out

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    # -- policies, tiers, endpoints -----------------------------------------------------

    def ordered_policies(self) -> list[tuple[Tier, list[tuple[Policy, sel.Selector]]]]:
        tiers = self.manifests.effective_tiers()
        by_tier: dict[str, list[tuple[Policy, sel.Selector]]] = {name: [] for name in tiers}
        for policy in self.manifests.policies:
            if policy.tier not in by_tier:
                self._note(
                    f"{policy.describe()}: tier {policy.tier!r} does not exist; "
                    "not enforced (Felix skips it)"
                )
                continue
            if isinstance(policy, GlobalNetworkPolicy) and (policy.do_not_track or policy.pre_dnat):
                self._note(f"{policy.describe()}: doNotTrack/preDNAT policies are not enforced")
                continue
            try:
                applies = policy_endpoint_selector(policy)
            except (SelectorError, ValueError) as exc:
                self._note(f"{policy.describe()}: selector does not parse ({exc}); not enforced")
                continue
            if PolicyType.INGRESS in policy.effective_types() and policy.ingress:
                self._note(
                    f"{policy.describe()}: ingress rules are not enforced by the host "
                    "dataplane (egress only)"
                )
            by_tier[policy.tier].append((policy, applies))
        for items in by_tier.values():
            items.sort(key=lambda item: item[0].sort_key)
        for staged in self.manifests.staged_policies:
            self._note(f"{staged.describe()}: staged policies are never enforced")
        ordered = sorted(tiers.values(), key=lambda t: t.sort_key)
        return [(tier, by_tier[tier.name]) for tier in ordered]

    def endpoint_chain(
        self,
        chain: str,
        labels: Mapping[str, str],
        default_allow: bool,
        tiers: list[tuple[Tier, list[tuple[Policy, sel.Selector]]]],
    ) -> tuple[str, ...]:
        body: list[ir.Rule] = []
        applied: list[str] = []
        for tier, policies in tiers:
            mine = [
                p
                for p, applies in policies
                if PolicyType.EGRESS in p.effective_types() and applies.matches(labels)
            ]
            if not mine:
                continue
            tier_chain = _chain_name(chain, tier.name)
            names = [
                _chain_name(
                    tier_chain, str(i), f"{p.namespace}.{p.name}" if p.NAMESPACED else p.name
                )
                for i, p in enumerate(mine)
            ]
            end = ir.DROP if tier.effective_default_action is Action.DENY else ir.RETURN
            for i, policy in enumerate(mine):
                prefix = logprefix.encode(
                    self.options.log_prefix,
                    tier=policy.tier,
                    kind=policy.short_kind,
                    name=policy.name,
                    namespace=policy.namespace if policy.NAMESPACED else None,
                )
                rules = self.rules_for(policy, labels, prefix)
                if i + 1 < len(mine):
                    rules.append(ir.Rule(verdict=ir.Verdict.goto(names[i + 1])))
                else:
                    what = "end of tier: drop" if end is ir.DROP else "end of tier: pass"
                    rules.append(ir.Rule(verdict=end, comment=_comment(f"{tier.name} {what}")))
                self.chains.append(ir.Chain(names[i], tuple(rules)))
                ns = f"{policy.namespace}/" if policy.NAMESPACED and policy.namespace else ""
                applied.append(f"{tier.name}/{policy.short_kind}/{ns}{policy.name}")
            self.chains.append(ir.Chain(tier_chain, (ir.Rule(verdict=ir.Verdict.goto(names[0])),)))
            body.append(ir.Rule(verdict=ir.Verdict.jump(tier_chain)))
        profile = "allow" if default_allow else "deny"
        body.append(
            ir.Rule(
                verdict=ir.ACCEPT if default_allow else ir.DROP,
                comment=f"no policy decided: profile {profile}",
            )
        )
        self.chains.append(ir.Chain(chain, tuple(body)))
        return tuple(applied)

    def compile(self) -> Compiled:
        tiers = self.ordered_policies()
        summaries: list[EndpointSummary] = []
        base: list[ir.Chain] = []
        conntrack = (
            ir.Rule((ir.CtState(("established", "related")),), verdict=ir.ACCEPT),
            ir.Rule((ir.CtState(("invalid",)),), verdict=ir.DROP),
        )
        host: Host | None = self.endpoints.host
        if host is not None:
            labels = dict(host.labels)
            applied = self.endpoint_chain("host", labels, host.default_allow, tiers)
            summaries.append(
                EndpointSummary("host", host.name, "host", labels, applied, host.default_allow)
            )
            exempt = list(
                dict.fromkeys(
                    [*host.exempt_interfaces, *(w.interface for w in self.endpoints.workloads)]
                )
            )
            rules = [
                ir.Rule(
                    (ir.IfName("oifname", iface),),
                    verdict=ir.ACCEPT,
                    comment="not host egress: exempt or local workload interface",
                )
                for iface in exempt
            ]
            rules.append(
                ir.Rule(
                    (ir.IcmpTypes(6, ND_TYPES),),
                    verdict=ir.ACCEPT,
                    comment="IPv6 neighbour discovery",
                )
            )
            rules.extend(conntrack)
            rules.append(ir.Rule(verdict=ir.Verdict.jump("host")))
            base.append(ir.Chain("output", tuple(rules), ir.Hook("output", self.options.priority)))
        if self.endpoints.workloads:
            dispatch: list[ir.Rule] = list(conntrack)
            guarded: list[str] = []
            for wl in self.endpoints.workloads:
                chain = _chain_name("wl", wl.namespace, wl.name)
                labels = self._workload_labels(wl)
                applied = self.endpoint_chain(chain, labels, True, tiers)
                summaries.append(
                    EndpointSummary(
                        "workload", f"{wl.namespace}/{wl.name}", chain, labels, applied, True
                    )
                )
                iface = ir.IfName("iifname", wl.interface)
                sources = [(f, wl.address_values(f)) for f in (4, 6)]
                if not any(values for _, values in sources):
                    dispatch.append(ir.Rule((iface,), verdict=ir.Verdict.jump(chain)))
                    continue
                for family, values in sources:
                    if values:
                        nets = CidrSet.from_ranges(family, [(v, v) for v in values])
                        dispatch.append(
                            ir.Rule(
                                (iface, ir.AddrInNets("saddr", nets)),
                                verdict=ir.Verdict.jump(chain),
                            )
                        )
                if wl.interface not in guarded:
                    guarded.append(wl.interface)
            dispatch.extend(
                ir.Rule(
                    (ir.IfName("iifname", iface),),
                    verdict=ir.DROP,
                    comment="source address of no workload of this interface",
                )
                for iface in guarded
            )
            base.append(
                ir.Chain("forward", tuple(dispatch), ir.Hook("forward", self.options.priority))
            )
        table = ir.Table(self._build_sets(self.recipes()), tuple(base) + tuple(self.chains))
        return Compiled(table, tuple(summaries), tuple(self.notes))


def _family_bound(match: ir.Match) -> bool:
    """Whether a match restricts the packet to one family by itself (``ip daddr ...``).

    ICMP matches do not: ``icmp type`` only implies ``meta l4proto icmp``.
    """
    return isinstance(match, ir.AddrInSet | ir.AddrInNets | ir.AddrPorts | ir.NfProto)


def compile_table(
    manifests: Manifests | Iterable[Any],
    endpoints: Endpoints = DEFAULT,
    options: Options = Options(),
    *,
    cache: CompileCache | None = None,
) -> Compiled:
    """Compile resources (a ``Manifests`` or resources) for this host's ``endpoints``.

    ``cache`` keeps parsed network sets for the next compile (see :class:`CompileCache`); the
    result is the same with or without it.

    Raises ``InputError`` when a log prefix cannot be encoded for a policy (see
    ``logprefix.encode``).
    """
    if not isinstance(manifests, Manifests):
        manifests = Manifests.of(manifests)
    compiler = _Compiler(manifests, endpoints, options, cache)
    if cache is None:
        return compiler.compile()
    key = compiler.structure_key()
    known = cache.structure
    if known is not None and known.key == key:
        compiled = compiler.rebuild(known)
        cache.counts["same structure"] += 1
    else:
        cache.structure = None  # a failing compile must not leave a stale structure behind
        compiled = compiler.compile()
        cache.structure = compiler.structure(key, compiled)
        cache.counts["compiled"] += 1
    cache.sweep()
    return compiled

"""``egressguard lab run``: the reference scenario, enforced and measured on one Linux machine.

The run has a pure half (``prepare``) and an executing half (``execute``):

1. **Rewrite** (``rewrite_for_lab``). The manifests name real public addresses (the bundled
   ``examples/blog`` blocks 217.160.0.92, .111 and 217.160.223.1); the lab may only use the
   documentation ranges. Every *public* CIDR in network sets, in rule ``nets``/``notNets`` and in
   Kubernetes ``ipBlock``s is moved into the lab's internet (203.0.113.0/24, and
   2001:db8:203:113::/64 for IPv6) by a translation that keeps its prefix length and its
   position in a /24 (/64) when that place is free (217.160.0.92 → 203.0.113.92), else the
   first free aligned block. CIDRs nested in another one move with it, so containment between
   entries is preserved exactly. What is left alone, and said so: documentation-range entries
   (already lab addresses), the whole address space (``/0``), and non-public special-purpose
   ranges (private, loopback, link-local, … — the lab sends nothing there, as no internet
   traffic goes there). A public CIDR larger than the lab's internet (an IPv4 prefix shorter
   than /24, IPv6 shorter than /64) cannot be placed and is refused with every such entry named:
   run a lab-sized example such as ``examples/lab-tier`` instead. Nothing is ever sent to an
   original address: probes go only to lab addresses.

   **IPv6 coverage.** The reference scenario is IPv4-only. When no network set holds an IPv6
   entry, one IPv6 address is *added* to the lab copy of the first network set with a probed
   IPv4 entry (mirroring that entry: 203.0.113.92 → 2001:db8:203:113::92) and the mapping says
   "added for IPv6 coverage". ``ipv6_coverage=False`` (``--no-ipv6-coverage``) leaves it out.
   Expected verdicts are always computed on the manifests actually enforced, addition included.

2. **Destinations and probes** (``plan_probes``). Every lab address listed in a network set or
   in an egress rule's destination nets (one representative address per CIDR, at most
   ``max_destinations``, picked evenly) plus one *control* address per family that nothing
   lists (203.0.113.10, 2001:db8:203:113::10 when free). From every lab pod to every
   destination: TCP 80 and 443, UDP 53, ICMP echo.

3. **Expected** (``expected_verdicts``): egressguard's evaluator (Calico's semantics, the same
   one ``explain`` uses) on the lab manifests for each probe's (pod, destination, protocol,
   port): Allow or Deny, and whether a Log rule fires before the verdict. Never hand-written.

4. **Execute** (``execute``): build the lab (``app.lab``), set ``net.netfilter.nf_log_all_netns``
   to 1 (the kernel logs nothing from a non-initial namespace otherwise; the previous value is
   journaled and restored at teardown, even after a crash), compile the lab manifests with the
   nft compiler for the two pods as workloads behind their ``cali*`` interfaces (the node's
   own traffic is left alone, as on a Calico node without host endpoints) and load them into
   the node namespace, open a ``/dev/kmsg`` cursor, probe, then read the kernel's log lines
   with a bounded wait and parse them (``logs.LogParser``).

5. **Compare** (``compare``): observed verdict = Allow when the probe got its answer, Deny when
   it timed out (Deny drops), Error otherwise; observed logged = a parsed event with the
   probe's (source pod address, destination, protocol, port) exists. A probe matches when both
   agree with the expectation. The run is OK when every probe matches.

   A Log rule placed after the Deny it should precede never fires: the evaluator expects "not
   logged", the kernel logs nothing, the probes match and the run is OK — the lab tests that
   the dataplane does what the manifests say, not what their author meant. What the author
   meant is ``lint``'s business: its errors (``log-never-fires`` among them) are printed with
   the run's result and listed in the report, without changing the exit status.

The lab is torn down at the end (``keep=False``), and always on failure, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import bisect
import dataclasses
import ipaddress
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from egressguard import logprefix
from egressguard.adapters import kmsgcursor, logsource
from egressguard.adapters.netns import NetnsRunner
from egressguard.adapters.nftables import NftCli
from egressguard.adapters.probe import Probe, ProbeResult
from egressguard.app import lab as labmod
from egressguard.calico import evaluate as ev
from egressguard.calico import lint as calico_lint
from egressguard.calico.load import Manifests
from egressguard.calico.model import (
    EntityRule,
    FrozenMap,
    GlobalNetworkSet,
    IpBlock,
    KubernetesNetworkPolicy,
    KubernetesPeer,
    KubernetesRule,
    NetworkSet,
    Pod,
    Policy,
    Resource,
    Rule,
)
from egressguard.errors import InputError
from egressguard.logs import Event, LogParser, enrich, event_to_json
from egressguard.nft import compile as nft_compile
from egressguard.nft import endpoints as eps
from egressguard.tables import align

__all__ = [
    "CONTROL_OFFSET",
    "NON_PUBLIC",
    "REPORT_VERSION",
    "SYSCTL_LOG_ALL_NETNS",
    "AddressMapping",
    "Destination",
    "LabProbe",
    "LabRewrite",
    "Prepared",
    "ProbeOutcome",
    "RunOptions",
    "RunReport",
    "compare",
    "execute",
    "expected_verdicts",
    "lab_endpoints",
    "lab_enricher",
    "plan_probes",
    "prepare",
    "render_text",
    "rewrite_for_lab",
]

REPORT_VERSION = 1
SYSCTL_LOG_ALL_NETNS = "net.netfilter.nf_log_all_netns"
#: The control destination of each family: the internet network's address + 10 (.10, ::10).
CONTROL_OFFSET = 10

#: Ranges that are not public (IANA special-purpose registries, RFC 6890 and the RFCs named):
#: entries inside them are kept as written, the lab sends nothing there. The documentation
#: ranges are the lab's own and handled before this list.
NON_PUBLIC: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "'this network' (RFC 791)"),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("100.64.0.0/10", "shared address space (RFC 6598)"),
    ("127.0.0.0/8", "loopback (RFC 1122)"),
    ("169.254.0.0/16", "link-local (RFC 3927)"),
    ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments (RFC 6890)"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking (RFC 2544)"),
    ("224.0.0.0/4", "multicast (RFC 5771)"),
    ("240.0.0.0/4", "reserved (RFC 1112)"),
    ("::/128", "unspecified (RFC 4291)"),
    ("::1/128", "loopback (RFC 4291)"),
    ("::ffff:0:0/96", "IPv4-mapped (RFC 4291)"),
    ("64:ff9b::/96", "NAT64 (RFC 6052)"),
    ("64:ff9b:1::/48", "local-use NAT64 (RFC 8215)"),
    ("100::/64", "discard-only (RFC 6666)"),
    ("fc00::/7", "unique local (RFC 4193)"),
    ("fe80::/10", "link-local (RFC 4291)"),
    ("ff00::/8", "multicast (RFC 4291)"),
)
_NON_PUBLIC = tuple((ipaddress.ip_network(net), why) for net, why in NON_PUBLIC)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
#: At most this many entries are named in the error for CIDRs too large for the lab.
_ERROR_EXAMPLES = 5


# ------------------------------------------------------------------------------ the rewrite


@dataclass(frozen=True, slots=True)
class AddressMapping:
    """What became of one address or CIDR of the manifests (as written) in the lab copy.

    ``action``: ``mapped`` (moved into the lab's internet), ``kept`` (left as written, with
    ``reason``) or ``added`` (not in the manifests: ``original`` is ``None``). ``where`` names
    every place it occurs (``GlobalNetworkSet x``, ``GlobalNetworkPolicy y spec.egress[0]...``).
    """

    original: str | None
    lab: str
    action: str
    reason: str
    where: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "original": self.original,
            "lab": self.lab,
            "action": self.action,
            "reason": self.reason,
            "where": list(self.where),
        }


@dataclass(frozen=True, slots=True)
class _Block:
    """A public CIDR moved as a whole: ``old`` → ``new`` (same size, both aligned)."""

    old: Network
    new: Network

    def translate(self, address: Address) -> Address:
        offset = int(address) - int(self.old.network_address)
        return ipaddress.ip_address(int(self.new.network_address) + offset)

    def back(self, address: Address) -> Address | None:
        if address not in self.new:
            return None
        offset = int(address) - int(self.new.network_address)
        return ipaddress.ip_address(int(self.old.network_address) + offset)


@dataclass(frozen=True, slots=True)
class LabRewrite:
    """The lab copy of the manifests and how it was made.

    ``manifests``: what the lab enforces. ``mappings``: per distinct address text, what became
    of it. ``internet4``/``internet6``: the lab's internet networks. ``blocks``: the moved
    blocks, for telling which original address a lab address stands for.
    """

    manifests: Manifests
    mappings: tuple[AddressMapping, ...]
    internet4: ipaddress.IPv4Network
    internet6: ipaddress.IPv6Network
    blocks: tuple[_Block, ...] = ()
    notes: tuple[str, ...] = ()

    def original_of(self, address: str) -> str | None:
        """The original address a lab address stands for, when it was moved; else ``None``."""
        parsed = ipaddress.ip_address(address)
        for block in self.blocks:
            if block.new.version == parsed.version:
                back = block.back(parsed)
                if back is not None:
                    return str(back)
        return None


Transform = Callable[[str, str], str]


def _map_entity(entity: EntityRule, where: str, fn: Transform) -> EntityRule:
    if not entity.nets and not entity.not_nets:
        return entity
    return dataclasses.replace(
        entity,
        nets=tuple(fn(t, f"{where}.nets") for t in entity.nets),
        not_nets=tuple(fn(t, f"{where}.notNets") for t in entity.not_nets),
    )


def _map_rules(rules: tuple[Rule, ...], where: str, fn: Transform) -> tuple[Rule, ...]:
    out = []
    for i, rule in enumerate(rules):
        base = f"{where}[{i}]"
        out.append(
            dataclasses.replace(
                rule,
                source=_map_entity(rule.source, f"{base}.source", fn),
                destination=_map_entity(rule.destination, f"{base}.destination", fn),
            )
        )
    return tuple(out)


def _map_k8s_rules(
    rules: tuple[KubernetesRule, ...], where: str, fn: Transform
) -> tuple[KubernetesRule, ...]:
    out = []
    for i, rule in enumerate(rules):
        peers: list[KubernetesPeer] = []
        for j, peer in enumerate(rule.peers):
            block = peer.ip_block
            if block is not None:
                at = f"{where}[{i}].peers[{j}].ipBlock"
                block = IpBlock(
                    fn(block.cidr, f"{at}.cidr"),
                    tuple(fn(t, f"{at}.except") for t in block.except_),
                )
                peers.append(dataclasses.replace(peer, ip_block=block))
            else:
                peers.append(peer)
        out.append(dataclasses.replace(rule, peers=tuple(peers)))
    return tuple(out)


def _map_resource(resource: Resource, fn: Transform) -> Resource:
    """``resource`` with every address text passed through ``fn(text, where)``."""
    name = resource.describe()
    if isinstance(resource, GlobalNetworkSet | NetworkSet):
        return dataclasses.replace(resource, nets=tuple(fn(t, name) for t in resource.nets))
    if isinstance(resource, Policy):
        return dataclasses.replace(
            resource,
            egress=_map_rules(resource.egress, f"{name} spec.egress", fn),
            ingress=_map_rules(resource.ingress, f"{name} spec.ingress", fn),
        )
    if isinstance(resource, KubernetesNetworkPolicy):
        return dataclasses.replace(
            resource,
            egress=_map_k8s_rules(resource.egress, f"{name} spec.egress", fn),
            ingress=_map_k8s_rules(resource.ingress, f"{name} spec.ingress", fn),
        )
    return resource


def _parse(text: str, where: str) -> Network:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError as exc:
        raise InputError(f"{where}: {text!r} is not an address or CIDR") from exc


def _kept_reason(net: Network) -> str | None:
    """Why ``net`` stays as written in the lab, or ``None`` when it is public (moved)."""
    if labmod.in_documentation_ranges(net):
        return "documentation range: already a lab address"
    if net.prefixlen == 0:
        return "the whole address space"
    for special, why in _NON_PUBLIC:
        if special.version == net.version and net.subnet_of(special):  # type: ignore[arg-type]
            return f"not public: {why}; the lab sends nothing there"
    return None


class _Pool:
    """Free aligned blocks of one lab internet network, handed out deterministically."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self.first = int(network.network_address)
        self.last = int(network.broadcast_address)
        self.taken: list[tuple[int, int]] = []  # sorted, disjoint (merged on insertion)

    def occupy(self, first: int, last: int) -> None:
        first, last = max(first, self.first), min(last, self.last)
        if first > last:
            return
        keep = []
        for lo, hi in self.taken:
            if hi < first - 1 or lo > last + 1:
                keep.append((lo, hi))
            else:  # touching or overlapping: merge
                first, last = min(first, lo), max(last, hi)
        bisect.insort(keep, (first, last))
        self.taken = keep

    def _overlap(self, first: int, last: int) -> tuple[int, int] | None:
        """The last taken interval starting at or before ``last``, if it reaches ``first``
        (intervals are disjoint, so no earlier one can overlap when it does not)."""
        index = bisect.bisect_right(self.taken, (last, self.last + 1)) - 1
        if index >= 0 and self.taken[index][1] >= first:
            return self.taken[index]
        return None

    def is_free(self, first: int, last: int) -> bool:
        return self._overlap(first, last) is None

    def place(self, size: int, preferred: int) -> int | None:
        """Start of a free block of ``size`` addresses (aligned): ``preferred`` when free,
        else the lowest free one. Marks it taken."""
        if self.is_free(preferred, preferred + size - 1):
            self.occupy(preferred, preferred + size - 1)
            return preferred
        start = self.first
        while start + size - 1 <= self.last:
            hit = self._overlap(start, start + size - 1)
            if hit is None:
                self.occupy(start, start + size - 1)
                return start
            start = ((hit[1] + 1 + size - 1) // size) * size  # next aligned start after it
        return None


def rewrite_for_lab(
    manifests: Manifests,
    *,
    internet4: ipaddress.IPv4Network,
    internet6: ipaddress.IPv6Network,
    ipv6_coverage: bool = True,
) -> LabRewrite:
    """The lab copy of ``manifests`` (see the module docstring for the rules).

    Raises ``InputError`` naming every public CIDR that cannot be placed in the lab.
    """
    seen: dict[str, list[str]] = {}

    def record(text: str, where: str) -> str:
        places = seen.setdefault(text, [])
        if where not in places:
            places.append(where)
        return text

    for resource in manifests.resources:
        _map_resource(resource, record)

    parsed = {text: _parse(text, seen[text][0]) for text in seen}
    kept = {text: why for text, net in parsed.items() if (why := _kept_reason(net)) is not None}
    public = sorted(
        {net for text, net in parsed.items() if text not in kept},
        key=lambda n: (n.version, int(n.network_address), n.prefixlen),
    )
    pools: dict[int, _Pool] = {4: _Pool(internet4), 6: _Pool(internet6)}
    for text in kept:
        # A kept lab address must not end up holding a moved one (that would change what
        # contains what); the whole address space holds everything either way.
        net = parsed[text]
        if net.prefixlen > 0:
            pools[net.version].occupy(int(net.network_address), int(net.broadcast_address))

    # Outer blocks: public CIDRs not inside another public CIDR (CIDRs nest or are disjoint,
    # so a sweep in address order finds them).
    outers: list[Network] = []
    outer_of: dict[Network, Network] = {}
    for net in public:
        last = outers[-1] if outers else None
        if last is not None and last.version == net.version and net.subnet_of(last):  # type: ignore[arg-type]
            outer_of[net] = last
            continue
        outers.append(net)
        outer_of[net] = net
    too_large = [n for n in outers if n.prefixlen < pools[n.version].network.prefixlen]
    if too_large:
        named = [f"{n} ({seen[_text_of(parsed, n)][0]})" for n in too_large[:_ERROR_EXAMPLES]]
        more = len(too_large) - len(named)
        raise InputError(
            f"{len(too_large)} public CIDR(s) are larger than the lab's internet "
            f"({internet4} / {internet6}) and cannot be moved into it keeping their prefix "
            "length: " + ", ".join(named) + (f" and {more} more" if more else ""),
            hint="the lab reproduces small, lab-sized manifests (IPv4 entries of /24 or longer, "
            "IPv6 of /64 or longer); try examples/lab-tier, or a build of your config with "
            "a small static source",
        )
    blocks: dict[Network, _Block] = {}
    for net in sorted(outers, key=lambda n: (n.version, n.prefixlen, int(n.network_address))):
        pool = pools[net.version]
        size = net.num_addresses
        preferred = pool.first + int(net.network_address) % pool.network.num_addresses
        start = pool.place(size, preferred)
        if start is None:
            raise InputError(
                f"the lab's internet {pool.network} has no room left for {net} "
                f"({seen[_text_of(parsed, net)][0]})",
                hint="the public entries of the manifests together must fit into the lab's "
                "internet; try a smaller example such as examples/lab-tier",
            )
        new = ipaddress.ip_network(f"{ipaddress.ip_address(start)}/{net.prefixlen}")
        blocks[net] = _Block(net, new)

    lab_text: dict[str, str] = {}
    for text, net in parsed.items():
        if text in kept:
            lab_text[text] = text
            continue
        address = ipaddress.ip_address(text.strip().split("/")[0])
        moved = blocks[outer_of[net]].translate(address)
        lab_text[text] = f"{moved}/{text.split('/')[1].strip()}" if "/" in text else str(moved)

    resources = [_map_resource(r, lambda t, _w: lab_text[t]) for r in manifests.resources]
    mappings = [
        AddressMapping(
            text,
            lab_text[text],
            "kept" if text in kept else "mapped",
            kept.get(text, "public: moved into the lab's internet"),
            tuple(seen[text]),
        )
        for text in seen
    ]
    notes: list[str] = []
    if ipv6_coverage:
        resources, added, note = _add_ipv6_coverage(resources, pools[6], internet4)
        mappings += added
        if note:
            notes.append(note)
    return LabRewrite(
        manifests=Manifests.of(resources, manifests.problems),
        mappings=tuple(mappings),
        internet4=internet4,
        internet6=internet6,
        blocks=tuple(blocks.values()),
        notes=tuple(notes),
    )


def _text_of(parsed: Mapping[str, Network], net: Network) -> str:
    return next(text for text, n in parsed.items() if n == net)


def _add_ipv6_coverage(
    resources: list[Resource], pool6: _Pool, internet4: ipaddress.IPv4Network
) -> tuple[list[Resource], list[AddressMapping], str | None]:
    """Add one IPv6 address to the first network set with a probed IPv4 entry, unless some
    network set has an IPv6 entry already."""
    sets = [r for r in resources if isinstance(r, GlobalNetworkSet | NetworkSet)]
    if any(_parse(t, r.describe()).version == 6 for r in sets for t in r.nets):
        return resources, [], None
    for index, resource in enumerate(resources):
        if not isinstance(resource, GlobalNetworkSet | NetworkSet):
            continue
        nets = [_parse(t, resource.describe()) for t in resource.nets]
        inside = [
            n for n in nets if isinstance(n, ipaddress.IPv4Network) and n.subnet_of(internet4)
        ]
        if not inside:
            continue
        # Mirror the IPv4 entry's last octet in hex digits: 203.0.113.92 -> ...::92.
        octet = _representative(inside[0]).packed[-1]
        preferred = pool6.first + int(str(octet), 16)
        start = pool6.place(1, preferred)
        if start is None:
            return resources, [], "no IPv6 coverage: the lab's IPv6 internet is full"
        added = f"{ipaddress.IPv6Address(start)}/128"
        out = list(resources)
        out[index] = dataclasses.replace(resource, nets=(*resource.nets, added))
        mapping = AddressMapping(
            None,
            added,
            "added",
            "added for IPv6 coverage: the manifests have no IPv6 network-set entry",
            (resource.describe(),),
        )
        return out, [mapping], None
    return resources, [], "no IPv6 coverage: no network set has an IPv4 entry in the lab"


# ------------------------------------------------------------------------- destinations


@dataclass(frozen=True, slots=True)
class Destination:
    """A lab address the pods probe: ``listed`` (in a network set or rule nets; ``original``
    is the address it stands for when it was moved), ``added`` (listed only because the run
    added it for IPv6 coverage) or ``control`` (listed nowhere)."""

    address: str
    role: str
    original: str | None = None
    sources: tuple[str, ...] = ()

    @property
    def family(self) -> int:
        return ipaddress.ip_address(self.address).version

    def label(self, arrow: str = "→") -> str:
        if self.original is not None:
            return f"{self.original} {arrow} {self.address}"
        return self.address + {"control": " (control)", "added": " (added)"}.get(self.role, "")

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "role": self.role,
            "original": self.original,
            "sources": list(self.sources),
        }


def _representative(net: Network) -> Address:
    """The address probed for a CIDR: the first host of larger blocks (``.65`` of a /30)."""
    if net.num_addresses <= 2:
        return net.network_address
    return net.network_address + 1


def _listed_cidrs(manifests: Manifests) -> Iterator[tuple[str, str]]:
    """(CIDR text, where) for every network-set entry and egress destination net."""
    for s in manifests.network_sets:
        for text in s.nets:
            yield text, s.describe()
    for policy in manifests.policies:
        for i, rule in enumerate(policy.egress):
            d = rule.destination
            for text in (*d.nets, *d.not_nets):
                yield text, f"{policy.describe()} spec.egress[{i}].destination"


def _every_cidr(manifests: Manifests) -> list[Network]:
    found: list[Network] = []

    def record(text: str, where: str) -> str:
        found.append(_parse(text, where))
        return text

    for resource in manifests.resources:
        _map_resource(resource, record)
    return found


def _spread(items: Sequence[Address], limit: int) -> list[Address]:
    """At most ``limit`` items, evenly spaced, first and last included."""
    if len(items) <= limit:
        return list(items)
    if limit <= 1:
        return list(items[:limit])
    picks = sorted({round(i * (len(items) - 1) / (limit - 1)) for i in range(limit)})
    return [items[i] for i in picks]


def _destinations(
    rewrite: LabRewrite, max_destinations: int
) -> tuple[list[Destination], list[str]]:
    notes: list[str] = []
    internet: dict[int, Network] = {4: rewrite.internet4, 6: rewrite.internet6}
    listed: dict[Address, list[str]] = {}
    outside: set[str] = set()
    for text, where in _listed_cidrs(rewrite.manifests):
        net = _parse(text, where)
        if net.prefixlen == 0:
            continue
        if not net.subnet_of(internet[net.version]):  # type: ignore[arg-type]
            outside.add(text)
            continue
        places = listed.setdefault(_representative(net), [])
        if where not in places:
            places.append(where)
    if outside:
        notes.append(
            f"{len(outside)} listed CIDR(s) outside the lab's internet are enforced but not "
            f"probed: {', '.join(sorted(outside)[:_ERROR_EXAMPLES])}"
            + (" ..." if len(outside) > _ERROR_EXAMPLES else "")
        )
    ordered = sorted(listed, key=lambda a: (a.version, int(a)))
    added = {
        ipaddress.ip_network(m.lab, strict=False) for m in rewrite.mappings if m.action == "added"
    }
    chosen = _spread(ordered, max_destinations)
    if len(chosen) < len(ordered):
        notes.append(f"probing {len(chosen)} of {len(ordered)} listed destinations (evenly spread)")
    picked = [
        Destination(
            str(a),
            "added" if any(a in n for n in added) else "listed",
            rewrite.original_of(str(a)),
            tuple(listed[a]),
        )
        for a in chosen
    ]
    every = [n for n in _every_cidr(rewrite.manifests) if n.prefixlen > 0]
    for family, net in internet.items():
        control = _control(net, [n for n in every if n.version == family])
        if control is None:
            notes.append(f"no control destination in {net}: every address is listed")
        else:
            picked.append(Destination(str(control), "control"))
    return picked, notes


def _control(net: Network, listed: Sequence[Network]) -> Address | None:
    """``.10`` (``::10``) unless listed, else ``.20``, ``.30``, … (``::20``, …); ``None`` when
    all 25 are listed."""
    base = int(net.network_address)
    # IPv6 reads the same digits in hex, so the control is ::10 and not ::a.
    step = [CONTROL_OFFSET * k for k in range(1, 26)]
    candidates = [base + (n if net.version == 4 else int(str(n), 16)) for n in step]
    for value in candidates:
        address = ipaddress.ip_address(value)
        if address in net and not any(address in n for n in listed):
            return address
    return None


# --------------------------------------------------------------------------------- probes


@dataclass(frozen=True, slots=True)
class LabProbe:
    """One probe with what it stands for: the pod (key, namespace/name, source address) and
    the destination."""

    probe: Probe
    pod_name: str
    src: str
    destination: Destination

    def to_json(self) -> dict[str, Any]:
        return {
            "pod": self.probe.pod,
            "pod_name": self.pod_name,
            "src": self.src,
            "proto": self.probe.proto,
            "dst": self.probe.dst,
            "port": self.probe.port,
            "destination": self.destination.to_json(),
        }


def plan_probes(
    topology: labmod.Topology, destinations: Sequence[Destination], *, timeout: float = 2.0
) -> list[LabProbe]:
    """From every pod to every destination: each TCP port (443 first), each UDP port, ICMP."""
    out: list[LabProbe] = []
    for pod in topology.pods:
        for dest in destinations:
            src = str(pod.ipv4 if dest.family == 4 else pod.ipv6)
            kinds: list[tuple[str, int | None]] = [
                *(("tcp", p) for p in sorted(topology.tcp_ports, reverse=True)),
                *(("udp", p) for p in topology.udp_ports),
                ("icmp", None),
            ]
            for proto, port in kinds:
                probe = Probe(pod.key, proto, dest.address, port, timeout)  # type: ignore[arg-type]
                out.append(LabProbe(probe, f"{pod.namespace}/{pod.name}", src, dest))
    return out


def lab_endpoints(topology: labmod.Topology) -> eps.Endpoints:
    """The lab pods as workloads behind their cali interfaces. The node's own traffic is
    not an endpoint (``host=None``), as on a Calico node without host endpoints."""
    return eps.Endpoints(
        host=None,
        workloads=tuple(
            eps.Workload(
                name=p.name,
                namespace=p.namespace,
                labels=FrozenMap(p.label_map),
                interface=p.cali,
                addresses=(str(p.ipv4), str(p.ipv6)),
            )
            for p in topology.pods
        ),
    )


def expected_verdicts(
    manifests: Manifests, endpoints: eps.Endpoints, probes: Sequence[LabProbe]
) -> list[ev.Verdict]:
    """The evaluator's verdict for each probe, with the lab pods among the inputs (so rule
    selectors reach them as the compiler's sets do)."""
    pods: list[Pod] = [w.as_pod() for w in endpoints.workloads]
    plan = ev.compile_plan(Manifests.of([*manifests.resources, *pods]))
    by_key = {w.name: w for w in endpoints.workloads}
    out = []
    for lp in probes:
        wl = by_key[lp.pod_name.split("/", 1)[1]]
        endpoint = ev.Endpoint.from_pod(wl.as_pod(), manifests.namespace(wl.namespace))
        p = lp.probe
        if p.proto == "icmp":
            v6 = p.family == 6
            flow = ev.Flow(
                dst=p.dst,
                src=lp.src,
                protocol="ICMPv6" if v6 else "ICMP",
                icmp_type=128 if v6 else 8,
                icmp_code=0,
            )
        else:
            flow = ev.Flow(dst=p.dst, src=lp.src, protocol=p.proto.upper(), dst_port=p.port)
        out.append(plan.evaluate(endpoint, flow))
    return out


# -------------------------------------------------------------------------------- compare


def _norm(address: str | None) -> str | None:
    if address is None:
        return None
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


def _event_key(event: Event) -> tuple[str | None, str | None, str, int | None] | None:
    proto = (event.proto or "").upper()
    if proto in ("TCP", "UDP"):
        return _norm(event.src), _norm(event.dst), proto.lower(), event.dst_port
    if proto in ("ICMP", "ICMPV6") and event.icmp_type in (8, 128):
        return _norm(event.src), _norm(event.dst), "icmp", None
    return None


def _probe_key(lp: LabProbe) -> tuple[str | None, str | None, str, int | None]:
    return _norm(lp.src), _norm(lp.probe.dst), lp.probe.proto, lp.probe.port


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    """Expected against observed for one probe."""

    lab_probe: LabProbe
    expected: str  # Allow | Deny
    expected_logged: bool
    decided_by: str | None
    log_rules: tuple[str, ...]
    observed: str  # Allow | Deny | Error
    detail: str
    elapsed: float
    events: int

    @property
    def observed_logged(self) -> bool:
        return self.events > 0

    @property
    def matched(self) -> bool:
        return self.expected == self.observed and self.expected_logged == self.observed_logged

    def differences(self) -> list[str]:
        out = []
        if self.expected != self.observed:
            out.append(f"expected {self.expected}, observed {self.observed} ({self.detail})")
        if self.expected_logged and not self.observed_logged:
            out.append("expected a log line, none was read")
        if not self.expected_logged and self.observed_logged:
            out.append(f"expected no log line, {self.events} read")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            **self.lab_probe.to_json(),
            "expected": {
                "verdict": self.expected,
                "logged": self.expected_logged,
                "decided_by": self.decided_by,
                "log_rules": list(self.log_rules),
            },
            "observed": {
                "verdict": self.observed,
                "detail": self.detail,
                "elapsed": round(self.elapsed, 3),
                "logged": self.observed_logged,
                "events": self.events,
            },
            "matched": self.matched,
            "differences": self.differences(),
        }


def compare(
    probes: Sequence[LabProbe],
    verdicts: Sequence[ev.Verdict],
    results: Sequence[ProbeResult],
    events: Sequence[Event],
) -> tuple[list[ProbeOutcome], list[Event]]:
    """Each probe's outcome, and the events that belong to no probe."""
    counts: dict[tuple[str | None, str | None, str, int | None], int] = {}
    for event in events:
        key = _event_key(event)
        if key is not None:
            counts[key] = counts.get(key, 0) + 1
    keys = {_probe_key(lp) for lp in probes}
    stray = [e for e in events if _event_key(e) not in keys]
    outcomes = []
    for lp, verdict, result in zip(probes, verdicts, results, strict=True):
        if result.ok:
            observed = "Allow"
        elif result.detail == "timeout":
            observed = "Deny"
        else:
            observed = "Error"
        decided = verdict.decided_by
        outcomes.append(
            ProbeOutcome(
                lab_probe=lp,
                expected=str(verdict.action),
                expected_logged=verdict.logged,
                decided_by=str(decided) if decided is not None else verdict.reason,
                log_rules=tuple(str(s) for s in verdict.log_steps),
                observed=observed,
                detail=result.detail,
                elapsed=result.elapsed,
                events=counts.get(_probe_key(lp), 0),
            )
        )
    return outcomes, stray


# ---------------------------------------------------------------------------- prepare / run


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Choices of one run (the command's options)."""

    prefix: str = labmod.DEFAULT_PREFIX
    state_dir: Path = labmod.DEFAULT_STATE_DIR
    keep: bool = False
    timeout: float = 2.0
    log_wait: float = 3.0
    log_prefix: str = logprefix.DEFAULT_TEMPLATE
    ipv6_coverage: bool = True
    max_destinations: int = 16


@dataclass(frozen=True, slots=True)
class Prepared:
    """Everything decided before anything is built: pure values."""

    sources: tuple[str, ...]
    original: Manifests
    rewrite: LabRewrite
    topology: labmod.Topology
    endpoints: eps.Endpoints
    compiled: nft_compile.Compiled
    destinations: tuple[Destination, ...]
    probes: tuple[LabProbe, ...]
    verdicts: tuple[ev.Verdict, ...]
    lint: tuple[calico_lint.Finding, ...]
    notes: tuple[str, ...]

    @property
    def policy_count(self) -> int:
        return len(self.rewrite.manifests.policies)

    @property
    def set_count(self) -> int:
        return len(self.rewrite.manifests.network_sets)


def prepare(
    manifests: Manifests, options: RunOptions = RunOptions(), *, sources: Sequence[str] = ()
) -> Prepared:
    """Rewrite, plan, compile and predict: everything but the lab itself.

    Raises ``InputError`` for manifests with problems, or ones the lab cannot reproduce.
    """
    if manifests.problems:
        shown = "; ".join(str(p) for p in manifests.problems[:3])
        raise InputError(
            f"the manifests have {len(manifests.problems)} problem(s): {shown}",
            hint="egressguard validate shows them all; the lab enforces only valid manifests",
        )
    if not manifests.policies:
        raise InputError(
            "the manifests hold no policy to enforce",
            hint="give a directory with GlobalNetworkPolicies and GlobalNetworkSets, "
            "e.g. examples/blog",
        )
    logprefix.validate_template(options.log_prefix)
    base = labmod.default_topology(options.prefix)
    rewrite = rewrite_for_lab(
        manifests,
        internet4=base.internet_network4,
        internet6=base.internet_network6,
        ipv6_coverage=options.ipv6_coverage,
    )
    destinations, notes = _destinations(rewrite, options.max_destinations)
    topology = labmod.default_topology(
        options.prefix,
        internet4=[d.address for d in destinations if d.family == 4] or None,
        internet6=[d.address for d in destinations if d.family == 6] or None,
    )
    endpoints = lab_endpoints(topology)
    compiled = nft_compile.compile_table(
        rewrite.manifests, endpoints, nft_compile.Options(log_prefix=options.log_prefix)
    )
    probes = plan_probes(topology, destinations, timeout=options.timeout)
    verdicts = expected_verdicts(rewrite.manifests, endpoints, probes)
    findings = calico_lint.lint(manifests)
    return Prepared(
        sources=tuple(sources),
        original=manifests,
        rewrite=rewrite,
        topology=topology,
        endpoints=endpoints,
        compiled=compiled,
        destinations=tuple(destinations),
        probes=tuple(probes),
        verdicts=tuple(verdicts),
        lint=tuple(findings),
        notes=(*rewrite.notes, *notes, *compiled.notes),
    )


@dataclass
class RunReport:
    """What a run did and saw. ``ok``: every probe matched its expectation."""

    prepared: Prepared
    options: RunOptions
    outcomes: list[ProbeOutcome] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    stray_events: list[Event] = field(default_factory=list)
    other_lines: int = 0
    lost_records: int = 0
    sysctl_previous: str | None = None
    sysctl_at_read: str | None = None
    teardown: labmod.TeardownReport | None = None
    kept: bool = False
    state_file: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.outcomes) and all(o.matched for o in self.outcomes)

    @property
    def mismatched(self) -> list[ProbeOutcome]:
        return [o for o in self.outcomes if not o.matched]

    def lint_errors(self) -> list[calico_lint.Finding]:
        return [f for f in self.prepared.lint if f.severity is calico_lint.Severity.ERROR]

    @staticmethod
    def event_pod(event: Event) -> str | None:
        """``namespace/name`` of the pod that sent it (from the enrichment)."""
        if event.src_pod is None:
            return None
        return f"{event.src_namespace}/{event.src_pod}"

    def summary(self) -> dict[str, int]:
        outs = self.outcomes
        return {
            "probes": len(outs),
            "matched": sum(o.matched for o in outs),
            "mismatched": sum(not o.matched for o in outs),
            "expected_deny": sum(o.expected == "Deny" for o in outs),
            "expected_allow": sum(o.expected == "Allow" for o in outs),
            "expected_logged": sum(o.expected_logged for o in outs),
            "observed_logged": sum(o.observed_logged for o in outs),
            "events": len(self.events),
            "stray_events": len(self.stray_events),
            "lint_errors": len(self.lint_errors()),
            "lint_warnings": sum(
                f.severity is calico_lint.Severity.WARNING for f in self.prepared.lint
            ),
        }

    def to_json(self) -> dict[str, Any]:
        p = self.prepared
        events = []
        for e in self.events:
            doc = event_to_json(e)
            doc["pod"] = self.event_pod(e)
            events.append(doc)
        return {
            "version": REPORT_VERSION,
            "ok": self.ok,
            "summary": self.summary(),
            "manifests": list(p.sources),
            "prefix": p.topology.prefix,
            "log_prefix": self.options.log_prefix,
            "addresses": [m.to_json() for m in p.rewrite.mappings],
            "destinations": [d.to_json() for d in p.destinations],
            "enforced": {
                "policies": [pol.describe() for pol in p.rewrite.manifests.policies],
                "network_sets": [s.describe() for s in p.rewrite.manifests.network_sets],
                "endpoints": [e.to_json() for e in p.compiled.endpoints],
            },
            "notes": list(p.notes),
            "lint": [f.to_json() for f in p.lint],
            "probes": [o.to_json() for o in self.outcomes],
            "events": events,
            "stray_events": [event_to_json(e) for e in self.stray_events],
            "kernel_log": {
                "other_lines": self.other_lines,
                "lost_records": self.lost_records,
                "sysctl": SYSCTL_LOG_ALL_NETNS,
                "sysctl_previous": self.sysctl_previous,
                "sysctl_at_read": self.sysctl_at_read,
            },
            "topology": p.topology.to_json(),
            "kept": self.kept,
            "state_file": self.state_file,
            "teardown": self.teardown.to_json() if self.teardown is not None else None,
            "seconds": round(self.seconds, 3),
        }


_PROGRESS = {
    "namespaces": "creating namespaces (2 pods, node, internet)",
    "links": "linking them with veth pairs (pod side eth0, node side cali*)",
    "addresses": "assigning documentation addresses",
    "routes": "adding routes",
    "forwarding": "turning on forwarding in the node",
    "servers": "starting servers in the internet namespace (tcp 80, 443; udp 53; ICMP)",
}


def execute(
    prepared: Prepared,
    options: RunOptions,
    *,
    runner: NetnsRunner,
    progress: Callable[[str], None] | None = None,
    cursor_factory: Callable[[], kmsgcursor.KernelLogCursor] = kmsgcursor.KmsgCursor,
    boot_time: float | None = None,
) -> RunReport:
    """Build the lab, enforce, probe, read the kernel log, compare; tear down unless
    ``options.keep`` (and always on failure or interruption)."""
    say = progress or (lambda _msg: None)
    started = time.monotonic()
    report = RunReport(prepared, options)
    topology = prepared.topology
    # SIGTERM acts like Ctrl-C from the first namespace to the last probe, so every way out
    # goes through the teardown below (lab_up removes a half-built lab itself).
    with labmod.interruptible():
        lab = labmod.lab_up(
            topology,
            runner=runner,
            state_dir=Path(options.state_dir),
            progress=lambda step: say(_PROGRESS.get(step, step)),
        )
        report.state_file = str(lab.state_file.path)
        finished = False
        try:
            _enforce_probe_read(
                report,
                lab,
                runner=runner,
                say=say,
                cursor_factory=cursor_factory,
                boot_time=boot_time,
            )
            finished = True
        finally:
            if options.keep and finished:
                report.kept = True
            else:
                with labmod.shielded():
                    say("removing the lab")
                    report.teardown = lab.down()
                    say(_teardown_line(report.teardown))
            report.seconds = time.monotonic() - started
    return report


def _teardown_line(t: labmod.TeardownReport) -> str:
    """``lab 'eg-lab-' removed: 4 namespaces, 1 process; net.netfilter.nf_log_all_netns
    restored to 0`` (and what could not be removed)."""
    parts = [
        f"{len(t.removed_namespaces)} namespace{'' if len(t.removed_namespaces) == 1 else 's'}",
        f"{len(t.stopped_pids)} process{'' if len(t.stopped_pids) == 1 else 'es'}",
    ]
    line = f"lab {t.prefix!r} removed: " + ", ".join(parts)
    restored = [f"{c.key} restored to {c.previous}" for c in t.restored_sysctls]
    if restored:
        line += "; " + ", ".join(restored)
    if t.errors:
        line += (
            "; NOT removed: "
            + "; ".join(t.errors)
            + f" (retry: egressguard lab down --prefix {t.prefix})"
        )
    return line + "."


def _enforce_probe_read(
    report: RunReport,
    lab: labmod.Lab,
    *,
    runner: NetnsRunner,
    say: Callable[[str], None],
    cursor_factory: Callable[[], kmsgcursor.KernelLogCursor],
    boot_time: float | None,
) -> None:
    """Log switch, ruleset, probes, kernel lines, comparison: the run inside a built lab."""
    prepared, topology = report.prepared, report.prepared.topology
    report.sysctl_previous = lab.set_sysctl(None, SYSCTL_LOG_ALL_NETNS, "1")
    sets, policies = prepared.set_count, prepared.policy_count
    say(
        f"enforcing {policies} polic{'y' if policies == 1 else 'ies'}, "
        f"{sets} network set{'' if sets == 1 else 's'} in {topology.node_ns} "
        "(nftables table inet egressguard)"
    )
    NftCli(topology.node_ns, runner=runner).apply(prepared.compiled.script())
    say(
        f"probing {len(prepared.destinations)} destinations from {len(topology.pods)} pods: "
        f"{len(prepared.probes)} probes (tcp 443, tcp 80, udp 53, icmp echo)"
    )
    cursor = cursor_factory()
    try:
        results = lab.probe([lp.probe for lp in prepared.probes])
        say("reading the kernel log (/dev/kmsg)")
        _read_log(report, cursor, boot_time)
    finally:
        report.lost_records = cursor.lost
        cursor.close()
    report.sysctl_at_read = lab.ip.read_sysctl(None, SYSCTL_LOG_ALL_NETNS)
    report.outcomes, report.stray_events = compare(
        prepared.probes, prepared.verdicts, results, report.events
    )


def _read_log(
    report: RunReport,
    cursor: kmsgcursor.KernelLogCursor,
    boot: float | None,
) -> None:
    """Parse the kernel's lines with the run's prefix from the lab pods, waiting (bounded) until
    every probe expected to be logged has a line."""
    prepared, options = report.prepared, report.options
    parser = LogParser(
        prefix=options.log_prefix, boot_time=logsource.boot_time() if boot is None else boot
    )
    enricher = lab_enricher(prepared.rewrite.manifests, prepared.topology)
    sources = {str(p.ipv4) for p in prepared.topology.pods}
    sources |= {str(p.ipv6) for p in prepared.topology.pods}
    interfaces = {p.cali for p in prepared.topology.pods}
    pairs = zip(prepared.probes, prepared.verdicts, strict=True)
    wanted = {_probe_key(lp) for lp, verdict in pairs if verdict.logged}
    seen: set[tuple[str | None, str | None, str, int | None]] = set()
    line_no = 0

    def take(records: list[str]) -> None:
        nonlocal line_no
        for record in records:
            line_no += 1
            parsed = parser.parse(record, line_no)
            # Ours: from a lab pod, through its cali interface (not another lab's or host's).
            if (
                not isinstance(parsed, Event)
                or _norm(parsed.src) not in sources
                or parsed.in_iface not in interfaces
            ):
                report.other_lines += 1
                continue
            event = enricher.enrich(parsed)
            report.events.append(event)
            key = _event_key(event)
            if key is not None:
                seen.add(key)

    deadline = time.monotonic() + max(0.0, options.log_wait)
    take(cursor.read())
    while not wanted <= seen and (left := deadline - time.monotonic()) > 0:
        take(cursor.read(wait=min(left, 0.25)))
    # What else is already in the ring (a last SYN retry) is read without waiting.
    take(cursor.read())


def lab_enricher(manifests: Manifests, topology: labmod.Topology) -> enrich.Enricher:
    """The log enrichment of the lab: network sets of the enforced copy (shards of a build
    under their blocklist's name, as ``logs follow`` names them) and the lab pods."""
    networks = enrich.NetworkIndex(enrich.network_set_tags(manifests.network_sets))
    pods = enrich.PodIndex()
    for pod in topology.pods:
        for address in (pod.ipv4, pod.ipv6):
            pods.add(str(address), pod.namespace, pod.name)
    return enrich.Enricher(networks, pods)


# --------------------------------------------------------------------------------- text


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _clock(event: Event) -> str:
    if event.time and "T" in event.time:
        return event.time.split("T", 1)[1][:12]
    return f"{event.uptime:.3f}" if event.uptime is not None else "-"


def _flows(events: Sequence[Event]) -> list[tuple[Event, int]]:
    """Events folded per connection attempt (same addresses, protocol, ports, ICMP id): the
    first event of each with the number of lines, in the order of the first lines."""
    first: dict[tuple[Any, ...], int] = {}
    out: list[tuple[Event, int]] = []
    for e in events:
        key = (e.src, e.src_port, e.dst, e.proto, e.dst_port, e.icmp_type, e.icmp_id)
        index = first.get(key)
        if index is None:
            first[key] = len(out)
            out.append((e, 1))
        else:
            out[index] = (out[index][0], out[index][1] + 1)
    return out


def render_text(report: RunReport, *, ascii_only: bool = False) -> str:
    """The run as tables for people: addresses, probes, events, notes and the summary."""
    arrow, ok_mark, bad_mark = ("->", "ok", "FAIL") if ascii_only else ("→", "✓", "✗")
    p = report.prepared
    out: list[str] = []
    rows: list[tuple[str, ...]]
    out.append(
        "addresses in the lab copy of the manifests (probes go only to lab addresses, "
        "never to the originals):"
    )
    rows = [("ORIGINAL", "", "LAB", "WHERE")]
    for m in p.rewrite.mappings:
        where = m.where[0] + (f" (+{len(m.where) - 1} more)" if len(m.where) > 1 else "")
        if m.action == "added":
            rows.append(("(added)", arrow, m.lab, f"{where}: {m.reason}"))
        elif m.action == "kept":
            rows.append((m.original or "", "=", m.lab, f"{where}: kept, {m.reason}"))
        else:
            rows.append((m.original or "", arrow, m.lab, where))
    out += ["  " + line for line in align(rows)]
    out.append("")
    rows = [
        (
            "POD",
            "PROTO",
            "DESTINATION",
            "PORT",
            "EXPECTED",
            "OBSERVED",
            "LOGGED exp/obs",
            "",
        )
    ]
    for o in report.outcomes:
        lp = o.lab_probe
        observed = o.observed if o.observed == "Allow" else f"{o.observed} ({o.detail})"
        logged = f"{_yes(o.expected_logged)}/{_yes(o.observed_logged)}"
        if o.events > 1:
            logged += f" ({o.events})"
        rows.append(
            (
                lp.pod_name,
                lp.probe.proto,
                lp.destination.label(arrow),
                str(lp.probe.port) if lp.probe.port is not None else "-",
                o.expected,
                observed,
                logged,
                ok_mark if o.matched else bad_mark,
            )
        )
    out.append(
        "probes (expected: egressguard's evaluator on the enforced manifests; observed: "
        "real packets from the pods, log lines from /dev/kmsg):"
    )
    out += ["  " + line for line in align(rows)]
    out.append("")
    if report.events:
        out.append(
            f"kernel log events ({report.options.log_prefix} lines, parsed; a connection's "
            "retries on one row):"
        )
        rows = [("TIME", "PREFIX", "IN", "SRC POD", "SRC", "DST", "PROTO", "DPT", "SET", "LINES")]
        for e, count in _flows(report.events):
            dpt = (
                str(e.dst_port)
                if e.dst_port is not None
                else (f"type {e.icmp_type}" if e.icmp_type is not None else "-")
            )
            rows.append(
                (
                    _clock(e),
                    e.prefix,
                    e.in_iface or "-",
                    report.event_pod(e) or "-",
                    e.src or "-",
                    e.dst or "-",
                    e.proto or "-",
                    dpt,
                    e.set or "-",
                    str(count),
                )
            )
        out += ["  " + line for line in align(rows)]
    else:
        out.append(f"kernel log events: none ({report.options.log_prefix} lines from the lab pods)")
    out.append("")
    for note in p.notes:
        out.append(f"note: {note}")
    if report.sysctl_at_read not in (None, "1"):
        out.append(
            f"note: {SYSCTL_LOG_ALL_NETNS} was {report.sysctl_at_read} when the log was read: "
            "something else changed it during the run, so the kernel may have logged nothing"
        )
    if report.lost_records:
        out.append(f"note: {report.lost_records} kernel log record(s) were overwritten unread")
    for finding in report.lint_errors():
        out.append(f"lint: {finding}")
    s = report.summary()
    for o in report.mismatched:
        lp = o.lab_probe
        port = f":{lp.probe.port}" if lp.probe.port is not None else ""
        out.append(
            f"differs: {lp.pod_name} {lp.probe.proto} {lp.destination.label(arrow)}{port}: "
            + "; ".join(o.differences())
            + f" [expected by {o.decided_by}]"
        )
    if report.kept:
        prefix = p.topology.prefix
        out.append(
            f"the lab stays up (--keep): egressguard lab status --prefix {prefix}; "
            f"ip netns exec {p.topology.node_ns} nft list table inet egressguard; "
            f"egressguard lab down --prefix {prefix}"
        )
    head = (
        f"{s['probes']} probes: {s['matched']} as expected"
        if report.ok
        else f"{s['probes']} probes: {s['mismatched']} differ from the expectation"
    )
    lint = f"lint: {s['lint_errors']} errors, {s['lint_warnings']} warnings"
    out.append(
        f"{'OK' if report.ok else 'FAILED'}: {head} ({s['expected_deny']} denied, "
        f"{s['expected_logged']} logged, {s['expected_allow']} allowed); "
        f"{s['events']} log events; {lint}"
    )
    text = "\n".join(out) + "\n"
    # Lint messages and compiler notes are not ours to keep ASCII: replace what is not.
    return text.encode("ascii", "replace").decode() if ascii_only else text

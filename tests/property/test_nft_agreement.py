"""The dataplane and ``explain`` agree: for random policy sets, endpoints and flows, the nft
table the compiler builds gives the same verdict (and the same "was it logged") as the
evaluator.

The table is run by a small interpreter of the IR written here from nftables' documented
semantics (nft(8): ``jump`` pushes a return point, ``goto`` does not, ``return`` or the end of
a regular chain pops, ``accept``/``drop`` end the hook, a base chain's end applies its
policy; ``limit`` is a match; anonymous sets and concatenations are membership tests). The
golden scripts and the lab tests tie the IR's text to the real kernel; this test ties the
compiler to Calico's semantics on thousands of cases.

The interpreter refuses to read a transport port of a packet that has none: the compiler
must always put a protocol match before ``th dport`` (on an ICMP packet nft would read the
checksum). Documented exceptions, kept out of the generated cases: IPv6 neighbour discovery
from the host (always accepted by the table, before policy) and destinations that are the
host's own addresses (a rule selector reaches the host endpoint in Calico, and so in the
table, but the evaluator only knows the endpoint it evaluates).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from egressguard.calico import evaluate as ev
from egressguard.calico.load import Manifests
from egressguard.calico.model import (
    API_V1,
    API_V3,
    Action,
    ContainerPort,
    EntityRule,
    FrozenMap,
    GlobalNetworkPolicy,
    GlobalNetworkSet,
    IcmpMatch,
    Metadata,
    Namespace,
    NetworkPolicy,
    NetworkSet,
    PolicyType,
    Port,
    Protocol,
    Rule,
    Tier,
)
from egressguard.cidr.addresses import parse_address
from egressguard.nft import compile as nft_compile
from egressguard.nft import endpoints as eps
from egressguard.nft import ir

# ------------------------------------------------------------------------- interpreter


@dataclass(frozen=True)
class Packet:
    family: int
    src: int
    dst: int
    proto: int
    sport: int | None = None
    dport: int | None = None
    itype: int | None = None
    icode: int | None = None
    iif: str = ""
    oif: str = "eth0"


class PortlessRead(AssertionError):
    """The table read a transport port of a packet that has none."""


def _in_ranges(value: int, ranges: Any) -> bool:
    return any(lo <= value <= hi for lo, hi in ranges)


def _iface(pattern: str, name: str) -> bool:
    return name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern


def match(m: ir.Match, p: Packet, table: ir.Table) -> bool:
    if isinstance(m, ir.CtState):
        return "new" in m.states
    if isinstance(m, ir.NfProto):
        return p.family == m.family
    if isinstance(m, ir.L4Proto):
        return (p.proto in m.protocols) != m.negate
    if isinstance(m, ir.AddrInSet):
        if p.family != m.family:
            return False
        value = p.src if m.field == "saddr" else p.dst
        return table.set(m.set_name).elements.contains_address(value) != m.negate
    if isinstance(m, ir.AddrInNets):
        if p.family != m.family:
            return False
        value = p.src if m.field == "saddr" else p.dst
        return m.nets.contains_address(value) != m.negate
    if isinstance(m, ir.Ports):
        port = p.sport if m.field == "sport" else p.dport
        if port is None:
            raise PortlessRead(f"{m} on protocol {p.proto}")
        return _in_ranges(port, m.ranges) != m.negate
    if isinstance(m, ir.AddrPorts):
        if p.family != m.family:
            return False
        port = p.sport if m.port_field == "sport" else p.dport
        if port is None:
            raise PortlessRead(f"{m} on protocol {p.proto}")
        addr = p.src if m.addr_field == "saddr" else p.dst
        hit = any(
            p.proto == proto and first <= addr <= last and lo <= port <= hi
            for proto, first, last, lo, hi in m.entries
        )
        return hit != m.negate
    if isinstance(m, ir.Icmp):
        proto = 1 if m.family == 4 else 58
        hit = p.proto == proto and p.itype == m.type and (m.code is None or p.icode == m.code)
        return hit != m.negate
    if isinstance(m, ir.IcmpTypes):
        proto = 1 if m.family == 4 else 58
        return p.proto == proto and p.itype in m.types
    if isinstance(m, ir.IfName):
        name = p.iif if m.direction == "iifname" else p.oif
        return _iface(m.pattern, name) != m.negate
    raise TypeError(m)


def run(table: ir.Table, hook: str, p: Packet) -> tuple[bool, bool]:
    """(accepted, logged) for packet ``p`` entering the base chain of ``hook``."""
    chains = {c.name: c for c in table.chains}
    base = next(c for c in table.chains if c.hook is not None and c.hook.hook == hook)
    logged = False
    stack: list[tuple[str, int]] = []
    chain, index = base.name, 0
    for _ in range(100_000):
        rules = chains[chain].rules
        if index >= len(rules):
            if not stack:
                return chains[chain].hook.policy == "accept", logged  # type: ignore[union-attr]
            chain, index = stack.pop()
            continue
        rule = rules[index]
        index += 1
        if not all(match(m, p, table) for m in rule.matches):
            continue
        if rule.statements:
            logged = True
        v = rule.verdict
        if v is None:
            continue
        if v.kind == "accept":
            return True, logged
        if v.kind == "drop":
            return False, logged
        if v.kind == "return":
            if not stack:
                return chains[base.name].hook.policy == "accept", logged  # type: ignore[union-attr]
            chain, index = stack.pop()
        elif v.kind == "jump":
            stack.append((chain, index))
            chain, index = v.target or "", 0
        else:  # goto
            chain, index = v.target or "", 0
    raise AssertionError("the interpreter did not terminate")


# -------------------------------------------------------------------------- strategies

V4_POOL = [
    "203.0.113.1",
    "203.0.113.2",
    "203.0.113.130",
    "198.51.100.7",
    "198.51.100.11",
    "198.51.100.12",
    "192.0.2.77",
]
V6_POOL = [
    "2001:db8:203::1",
    "2001:db8:203::2",
    "2001:db8:198::11",
    "2001:db8:198::12",
    "2001:db8:ffff::9",
]
NETS4 = [
    "203.0.113.0/25",
    "203.0.113.0/24",
    "203.0.113.1/32",
    "198.51.100.0/24",
    "198.51.100.11/32",
    "192.0.2.64/26",
    "0.0.0.0/0",
]
NETS6 = ["2001:db8:203::/48", "2001:db8:203::1/128", "2001:db8:198::/48", "::/0"]
HOST4, HOST6 = "192.0.2.1", "2001:db8:192::1"
LABEL_KEYS = ["app", "role", "tier", "blocked"]
LABEL_VALUES = ["web", "api", "db", "x"]

labels = st.dictionaries(st.sampled_from(LABEL_KEYS), st.sampled_from(LABEL_VALUES), max_size=2)


@st.composite
def selector_text(draw: Any) -> str:
    key = draw(st.sampled_from(LABEL_KEYS))
    value = draw(st.sampled_from(LABEL_VALUES))
    return draw(
        st.sampled_from(
            [
                f"{key} == '{value}'",
                f"{key} != '{value}'",
                f"has({key})",
                f"!has({key})",
                "all()",
                f"{key} in {{'{value}', 'web'}}",
            ]
        )
    )


@st.composite
def ports(draw: Any) -> tuple[Port, ...]:
    items = draw(
        st.lists(
            st.sampled_from(
                [
                    Port.number(80),
                    Port.number(443),
                    Port.number(53),
                    Port.range(1000, 2000),
                    Port.range(440, 450),
                    Port.named("http"),
                    Port.named("dns"),
                ]
            ),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    return tuple(items)


def _sometimes(draw: Any, one_in: int) -> bool:
    return draw(st.integers(1, one_in)) == 1


@st.composite
def entity(draw: Any, *, protocol: Protocol | None) -> EntityRule:
    # Each criterion only sometimes, so that rules match often enough to decide flows.
    kw: dict[str, Any] = {}
    family_nets = draw(st.sampled_from([NETS4, NETS6]))
    if _sometimes(draw, 4):
        kw["nets"] = tuple(
            draw(st.lists(st.sampled_from(family_nets), min_size=1, max_size=2, unique=True))
        )
    if _sometimes(draw, 8):
        kw["not_nets"] = tuple(
            draw(st.lists(st.sampled_from(family_nets), min_size=1, max_size=2, unique=True))
        )
    if _sometimes(draw, 3):
        kw["selector"] = draw(selector_text())
        if _sometimes(draw, 4):
            kw["namespace_selector"] = draw(st.sampled_from(["global()", "team == 'a'", "all()"]))
    if _sometimes(draw, 8):
        kw["not_selector"] = draw(selector_text())
    can_port = protocol is None or protocol.number in (6, 17, 132)
    if can_port and _sometimes(draw, 3):
        kw["ports"] = draw(ports())
    if can_port and _sometimes(draw, 8):
        kw["not_ports"] = draw(ports())
    return EntityRule(**kw)


@st.composite
def rule(draw: Any) -> Rule:
    action = draw(st.sampled_from(list(Action)))
    protocol = draw(
        st.sampled_from(
            [
                None,
                None,
                None,
                None,
                Protocol("TCP"),
                Protocol("TCP"),
                Protocol("UDP"),
                Protocol("UDP"),
                Protocol(6),
                Protocol("ICMP"),
                Protocol("ICMPv6"),
                Protocol("SCTP"),
            ]
        )
    )
    kw: dict[str, Any] = {"action": action, "protocol": protocol}
    if _sometimes(draw, 6):
        kw["ip_version"] = draw(st.sampled_from([4, 6]))
    if _sometimes(draw, 8):
        kw["not_protocol"] = draw(st.sampled_from([Protocol("UDP"), Protocol("TCP")]))
    if protocol is not None and protocol.number in (1, 58) and draw(st.booleans()):
        code = draw(st.sampled_from([None, 0, 1]))
        kw["icmp"] = IcmpMatch(draw(st.sampled_from([0, 3, 8, 128])), code)
    if _sometimes(draw, 8):
        kw["not_icmp"] = IcmpMatch(
            draw(st.sampled_from([0, 8, 128])), draw(st.sampled_from([None, 0]))
        )
    if _sometimes(draw, 5):
        kw["source"] = draw(entity(protocol=protocol))
    if draw(st.booleans()):
        kw["destination"] = draw(entity(protocol=protocol))
    return Rule(**kw)


@st.composite
def scenario(draw: Any) -> tuple[list[Any], eps.Endpoints]:
    resources: list[Any] = []
    for i in range(draw(st.integers(0, 3))):
        nets = draw(
            st.lists(
                st.sampled_from(V4_POOL + V6_POOL + NETS4[:-1] + NETS6[:-1]), min_size=1, max_size=4
            )
        )
        resources.append(
            GlobalNetworkSet(
                metadata=Metadata(f"gns{i}", labels=FrozenMap(draw(labels))), nets=tuple(nets)
            )
        )
    if draw(st.booleans()):
        resources.append(
            NetworkSet(
                metadata=Metadata("ns-set", "shop", FrozenMap(draw(labels))),
                nets=tuple(
                    draw(st.lists(st.sampled_from(V4_POOL + V6_POOL), min_size=1, max_size=2))
                ),
            )
        )
    tiers = ["default"]
    if draw(st.booleans()):
        resources.append(
            Tier(
                metadata=Metadata("guard"),
                order=draw(st.sampled_from([None, 10.0, 2_000_000.0])),
                default_action=draw(st.sampled_from([None, Action.PASS])),
            )
        )
        tiers.append("guard")
    for i in range(draw(st.integers(1, 4))):
        egress = tuple(draw(st.lists(rule(), min_size=0, max_size=4)))
        common: dict[str, Any] = {
            "tier": draw(st.sampled_from(tiers)),
            "order": draw(st.sampled_from([None, 0.0, 1.0, 1000.0])),
            "selector": draw(st.sampled_from([None, "all()"]) | selector_text()),
            "types": draw(st.sampled_from([(PolicyType.EGRESS,), (), (PolicyType.INGRESS,)])),
            "egress": egress,
        }
        if draw(st.integers(0, 3)) == 0:
            resources.append(
                NetworkPolicy(metadata=Metadata(f"np{i}", "shop"), api_version=API_V3, **common)
            )
        else:
            resources.append(
                GlobalNetworkPolicy(
                    metadata=Metadata(f"p{i}"),
                    api_version=draw(st.sampled_from([API_V1, API_V3])),
                    **common,
                )
            )
    workloads = []
    for i, (ns, addrs) in enumerate(
        [
            ("shop", ("198.51.100.11", "2001:db8:198::11")),
            ("other", ("198.51.100.12", "2001:db8:198::12")),
        ]
    ):
        if draw(st.booleans()):
            workloads.append(
                eps.Workload(
                    name=f"w{i}",
                    namespace=ns,
                    labels=FrozenMap(draw(labels)),
                    interface=f"cali{i}",
                    addresses=addrs,
                    ports=draw(
                        st.sampled_from(
                            [
                                (),
                                (ContainerPort(80, "TCP", "http"),),
                                (
                                    ContainerPort(53, "UDP", "dns"),
                                    ContainerPort(8080, "TCP", "http"),
                                ),
                            ]
                        )
                    ),
                )
            )
    host = eps.Host(
        name="node",
        labels=FrozenMap(draw(labels)),
        addresses=(HOST4, HOST6),
        default_allow=draw(st.booleans()),
    )
    namespaces = (Namespace(metadata=Metadata("shop", labels=FrozenMap({"team": "a"}))),)
    return resources, eps.Endpoints(host, tuple(workloads), namespaces)


@st.composite
def flow(draw: Any) -> dict[str, Any]:
    family = draw(st.sampled_from([4, 6]))
    # Workload addresses often: named ports and selectors that reach pods live there.
    pool = V4_POOL + ["198.51.100.11", "198.51.100.12"] * 3 if family == 4 else V6_POOL
    dst = draw(st.sampled_from(pool))
    kind = draw(st.sampled_from(["TCP", "TCP", "UDP", "UDP", "SCTP", "ICMP", 47]))
    out: dict[str, Any] = {"family": family, "dst": dst}
    if kind == "ICMP":
        out["protocol"] = 1 if family == 4 else 58
        out["icmp_type"] = draw(st.sampled_from([0, 3, 8, 128, 129]))
        out["icmp_code"] = draw(st.sampled_from([0, 1]))
    elif kind == 47:
        out["protocol"] = 47
    else:
        out["protocol"] = {"TCP": 6, "UDP": 17, "SCTP": 132}[kind]
        out["dst_port"] = draw(st.sampled_from([80, 443, 53, 53, 1500, 445, 8080, 8080, 22]))
        out["src_port"] = draw(st.sampled_from([80, 40000, 1500]))
    return out


# ------------------------------------------------------------------------------- the law


def _value(text: str) -> int:
    return parse_address(text)[1]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario(), st.lists(flow(), min_size=1, max_size=6), st.data())
def test_dataplane_agrees_with_explain(
    setup: tuple[list[Any], eps.Endpoints], flows: list[dict[str, Any]], data: st.DataObject
) -> None:
    resources, endpoints = setup
    compiled = nft_compile.compile_table(resources, endpoints)
    pods = [w.as_pod() for w in endpoints.workloads]
    plan = ev.compile_plan(Manifests.of([*resources, *pods, *endpoints.namespaces]))
    assert endpoints.host is not None
    host = endpoints.host
    subjects: list[tuple[Any, str, eps.Workload | None]] = [
        (
            ev.Endpoint.host(
                dict(host.labels),
                ips=host.addresses,
                name=host.name,
                default_allow=host.default_allow,
            ),
            "output",
            None,
        )
    ]
    for wl in endpoints.workloads:
        subjects.append(
            (ev.Endpoint.from_pod(wl.as_pod(), endpoints.namespace(wl.namespace)), "forward", wl)
        )
    for f in flows:
        endpoint, hook, wl = data.draw(st.sampled_from(subjects))
        family = f["family"]
        src_text = (HOST4 if family == 4 else HOST6) if wl is None else wl.addresses[family // 6]
        assume(not (wl is None and f["protocol"] == 58 and f.get("icmp_type") in range(133, 138)))
        packet = Packet(
            family,
            _value(src_text),
            _value(f["dst"]),
            f["protocol"],
            f.get("src_port"),
            f.get("dst_port"),
            f.get("icmp_type"),
            f.get("icmp_code"),
            iif=wl.interface if wl is not None else "",
            oif="eth0",
        )
        accepted, logged = run(compiled.table, hook, packet)
        verdict = plan.evaluate(
            endpoint,
            ev.Flow(
                dst=f["dst"],
                src=src_text,
                protocol=f["protocol"],
                dst_port=f.get("dst_port"),
                src_port=f.get("src_port"),
                icmp_type=f.get("icmp_type"),
                icmp_code=f.get("icmp_code"),
            ),
        )
        context = (f, hook, [str(s) for s in verdict.trace], compiled.script())
        assert accepted == verdict.allowed, context
        assert logged == verdict.logged, context


def test_the_interpreter_sees_the_reference_scenario() -> None:
    """A fixed case, so a broken interpreter cannot make the law above vacuous."""
    gns = GlobalNetworkSet(
        metadata=Metadata("b", labels=FrozenMap({"blocked": "x"})), nets=("203.0.113.1/32",)
    )
    dest = EntityRule(selector="blocked == 'x'")
    block = GlobalNetworkPolicy(
        metadata=Metadata("block"),
        order=0,
        types=(PolicyType.EGRESS,),
        egress=(Rule(Action.LOG, destination=dest), Rule(Action.DENY, destination=dest)),
    )
    allow = GlobalNetworkPolicy(
        metadata=Metadata("allow"),
        order=1000,
        types=(PolicyType.EGRESS,),
        egress=(Rule(Action.ALLOW),),
    )
    table = nft_compile.compile_table([gns, block, allow]).table
    blocked = Packet(4, _value(HOST4), _value("203.0.113.1"), 6, 40000, 443)
    other = Packet(4, _value(HOST4), _value("203.0.113.2"), 6, 40000, 443)
    assert run(table, "output", blocked) == (False, True)
    assert run(table, "output", other) == (True, False)
    table = nft_compile.compile_table([gns, block]).table
    assert run(table, "output", other) == (False, False)  # end-of-tier drop


NAMED_PORT_CASES = [
    # (rule protocol, rule ports, flow protocol, flow port, denied?)
    # Felix matches a named port under the rule's protocol, TCP when the rule has none.
    ("UDP", "dns", 17, 53, True),
    ("UDP", "dns", 6, 53, False),
    (None, "http", 6, 8080, True),
    (None, "http", 17, 8080, False),
    (None, "dns", 17, 53, False),  # dns is declared UDP; without a protocol Felix uses TCP
    ("TCP", "http", 6, 8080, True),
    ("TCP", "http", 6, 80, False),
    ("SCTP", "http", 132, 8080, False),  # http is declared TCP only
]


@pytest.mark.parametrize(("rule_proto", "name", "proto", "port", "denied"), NAMED_PORT_CASES)
def test_named_ports_follow_the_rules_protocol(
    rule_proto: str | None, name: str, proto: int, port: int, denied: bool
) -> None:
    deny = GlobalNetworkPolicy(
        metadata=Metadata("named"),
        types=(PolicyType.EGRESS,),
        egress=(
            Rule(
                Action.DENY,
                protocol=Protocol(rule_proto) if rule_proto else None,
                destination=EntityRule(ports=(Port.named(name),)),
            ),
            Rule(Action.ALLOW),
        ),
    )
    target = eps.Workload(
        name="api",
        namespace="shop",
        interface="cali1",
        addresses=("198.51.100.12",),
        ports=(ContainerPort(53, "UDP", "dns"), ContainerPort(8080, "TCP", "http")),
    )
    endpoints = eps.Endpoints(host=eps.Host(name="node", addresses=(HOST4,)), workloads=(target,))
    table = nft_compile.compile_table([deny], endpoints).table
    packet = Packet(4, _value(HOST4), _value("198.51.100.12"), proto, 40000, port)
    accepted, _ = run(table, "output", packet)
    plan = ev.compile_plan(Manifests.of([deny, target.as_pod()]))
    verdict = plan.evaluate(
        ev.Endpoint.host({}, ips=(HOST4,), default_allow=True),
        ev.Flow(dst="198.51.100.12", src=HOST4, protocol=proto, dst_port=port, src_port=40000),
    )
    assert accepted is not denied
    assert verdict.allowed is not denied

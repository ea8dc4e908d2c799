"""The IR refuses tables nft would refuse, and renders each construct to the text nft expects."""

from __future__ import annotations

import pytest

from egressguard.cidr.sets import CidrSet
from egressguard.nft import ir, render


def v4(*cidrs: str) -> CidrSet:
    return CidrSet(4, cidrs)


def v6(*cidrs: str) -> CidrSet:
    return CidrSet(6, cidrs)


def small_table(*, extra_rules: tuple[ir.Rule, ...] = ()) -> ir.Table:
    blocked = ir.IntervalSet("blocked4", 4, v4("203.0.113.0/24", "198.51.100.7/32"))
    policy = ir.Chain(
        "policy",
        (
            ir.Rule((ir.AddrInSet("daddr", 4, "blocked4"),), (ir.Log("calico-packet: "),)),
            ir.Rule((ir.AddrInSet("daddr", 4, "blocked4"),), verdict=ir.DROP),
            *extra_rules,
        ),
    )
    output = ir.Chain(
        "output",
        (
            ir.Rule((ir.CtState(("established", "related")),), verdict=ir.ACCEPT),
            ir.Rule(verdict=ir.Verdict.jump("policy")),
        ),
        ir.Hook("output"),
    )
    return ir.Table((blocked,), (output, policy))


# ----------------------------------------------------------------------------- invariants


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: ir.Table(chains=(ir.Chain("a", (ir.Rule(verdict=ir.Verdict.jump("b")),)),)),
            "unknown chain b",
        ),
        (
            lambda: ir.Table(
                chains=(
                    ir.Chain("a", (ir.Rule((ir.AddrInSet("daddr", 4, "nope"),), verdict=ir.DROP),)),
                )
            ),
            "unknown set nope",
        ),
        (
            lambda: ir.Table(
                sets=(ir.IntervalSet("s", 6, v6("2001:db8::/32")),),
                chains=(
                    ir.Chain("a", (ir.Rule((ir.AddrInSet("daddr", 4, "s"),), verdict=ir.DROP),)),
                ),
            ),
            "IPv4 lookup in IPv6 set",
        ),
        (
            lambda: ir.Table(
                chains=(
                    ir.Chain("a", (ir.Rule(verdict=ir.Verdict.jump("b")),)),
                    ir.Chain("b", (ir.Rule(verdict=ir.Verdict.jump("a")),)),
                )
            ),
            "cycle",
        ),
        (lambda: ir.Table(chains=(ir.Chain("a"), ir.Chain("a"))), "duplicate chain"),
        (
            lambda: ir.Table(
                chains=(
                    ir.Chain("a", (ir.Rule(verdict=ir.Verdict.jump("out")),)),
                    ir.Chain("out", hook=ir.Hook("output")),
                )
            ),
            "jumps to base chain",
        ),
        (lambda: ir.IntervalSet("s", 4, v6("2001:db8::/32")), "IPv6 elements"),
        (lambda: ir.Log('say "hi"'), "cannot quote"),
        (lambda: ir.Log("x" * 128), "longer than 127"),
        (ir.Rule, "needs a statement or a verdict"),
        (lambda: ir.Chain("1abc"), "not a valid nft identifier"),
        (lambda: ir.IfName("iifname", "ca li*"), "not a valid name"),
        (lambda: ir.Ports("dport", ((10, 5),)), "port ranges"),
        (lambda: ir.Hook("egress"), "hook"),
    ],
)
def test_invalid_values_are_refused(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


def test_set_family_reads_back_what_set_type_writes_and_nothing_else() -> None:
    for family in (4, 6):
        assert ir.set_family(ir.set_type(family)) == family
    # Types of sets egressguard never makes (someone else's, or edited by hand) have none.
    for other in ("ether_addr", "inet_service", "ipv4_addr . inet_service", ""):
        assert ir.set_family(other) is None


def test_dependency_order_puts_callees_first_and_keeps_order_otherwise() -> None:
    table = ir.Table(
        chains=(
            ir.Chain("out", (ir.Rule(verdict=ir.Verdict.jump("t1")),), ir.Hook("output")),
            ir.Chain("fwd", (ir.Rule(verdict=ir.Verdict.jump("t1")),), ir.Hook("forward")),
            ir.Chain(
                "t1",
                (ir.Rule(verdict=ir.Verdict.jump("p1")), ir.Rule(verdict=ir.Verdict.goto("t2"))),
            ),
            ir.Chain("t2", (ir.Rule(verdict=ir.DROP),)),
            ir.Chain("p1", (ir.Rule(verdict=ir.RETURN),)),
        )
    )
    names = [c.name for c in table.dependency_order()]
    assert names == ["p1", "t2", "t1", "out", "fwd"]


# ------------------------------------------------------------------------------ elements


@pytest.mark.parametrize(
    ("family", "first", "last", "text"),
    [
        (4, 0xC0000201, 0xC0000201, "192.0.2.1"),
        (4, 0xC0000200, 0xC00002FF, "192.0.2.0/24"),
        (4, 0xC0000200, 0xC00002FE, "192.0.2.0-192.0.2.254"),
        (4, 0xC0000201, 0xC0000202, "192.0.2.1-192.0.2.2"),  # size 2 but not aligned
        (4, 0, 0xFFFFFFFF, "0.0.0.0/0"),
        (6, 0x20010DB8 << 96, (0x20010DB8 << 96) | ((1 << 96) - 1), "2001:db8::/32"),
        (6, 0x20010DB8 << 96, (0x20010DB8 << 96) | 0xFF, "2001:db8::/120"),
        (6, (0x20010DB8 << 96) | 1, (0x20010DB8 << 96) | 0x10, "2001:db8::1-2001:db8::10"),
        (6, (1 << 128) - 1, (1 << 128) - 1, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
    ],
)
def test_range_text(family: int, first: int, last: int, text: str) -> None:
    assert render.range_text(family, first, last) == text  # type: ignore[arg-type]
    assert render.element_texts([(first, last)], family) == [text]  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- matches


@pytest.mark.parametrize(
    ("match", "text"),
    [
        (ir.CtState(("established", "related")), "ct state established,related"),
        (ir.NfProto(6), "meta nfproto ipv6"),
        (ir.L4Proto((6,)), "meta l4proto 6"),
        (ir.L4Proto((6, 17), negate=True), "meta l4proto != { 6, 17 }"),
        (ir.AddrInSet("daddr", 4, "s4"), "ip daddr @s4"),
        (ir.AddrInSet("saddr", 6, "s6", negate=True), "ip6 saddr != @s6"),
        (ir.AddrInNets("daddr", v4("192.0.2.0/24")), "ip daddr 192.0.2.0/24"),
        (ir.AddrInNets("daddr", v4("192.0.2.0/24"), negate=True), "ip daddr != { 192.0.2.0/24 }"),
        (
            ir.AddrInNets("saddr", v6("2001:db8::/64", "2001:db8:1::1/128")),
            "ip6 saddr { 2001:db8::/64, 2001:db8:1::1 }",
        ),
        (ir.Ports("dport", ((443, 443),)), "th dport 443"),
        (ir.Ports("dport", ((80, 80), (1000, 2000)), negate=True), "th dport != { 80, 1000-2000 }"),
        (
            ir.AddrPorts(
                4,
                "daddr",
                "dport",
                ((6, 0xC0000205, 0xC0000205, 8080, 8080), (17, 0, 0xFFFFFFFF, 53, 54)),
            ),
            "meta l4proto . ip daddr . th dport { 6 . 192.0.2.5 . 8080, 17 . 0.0.0.0/0 . 53-54 }",
        ),
        (ir.IcmpTypes(6, (135, 136)), "icmpv6 type { 135, 136 }"),
        (ir.Icmp(4, 8), "icmp type 8"),
        (ir.Icmp(4, 8, 0), "icmp type 8 icmp code 0"),
        (ir.Icmp(6, 128, negate=True), "meta l4proto . @th,0,8 != { 58 . 128 }"),
        (ir.Icmp(4, 3, 1, negate=True), "meta l4proto . @th,0,16 != { 1 . 769 }"),
        (ir.IfName("iifname", "cali*"), 'iifname "cali*"'),
        (ir.IfName("oifname", "eth0", negate=True), 'oifname != "eth0"'),
    ],
)
def test_match_text(match: ir.Match, text: str) -> None:
    assert render.match_text(match) == text


def test_log_rule_with_limit_puts_the_limit_before_the_log_only() -> None:
    rule = ir.Rule(
        (ir.AddrInSet("daddr", 4, "s"),),
        (ir.Log("calico-packet: ", limit=ir.LogLimit(10, "minute", 3)),),
        comment="gnp egress-traffic-blocking rule 0",
    )
    assert render.rule_text(rule) == (
        'ip daddr @s limit rate 10/minute burst 3 packets log prefix "calico-packet: " '
        'level info comment "gnp egress-traffic-blocking rule 0"'
    )


# ------------------------------------------------------------------------------- scripts


def test_full_script_replaces_only_our_table_in_one_transaction() -> None:
    text = render.script(small_table())
    lines = text.splitlines()
    assert lines[:3] == [
        "table inet egressguard",
        "delete table inet egressguard",
        "table inet egressguard {",
    ]
    assert text.endswith("}\n")
    # Nothing but our table is named anywhere.
    assert all(" table " not in line or "inet egressguard" in line for line in lines)
    # Sets before chains, callees before callers, the marker chain last.
    order = [line.strip() for line in lines if line.strip().startswith(("set ", "chain "))]
    assert order == [
        "set blocked4 {",
        "chain policy {",
        "chain output {",
        f"chain {render.MARKER_CHAIN} {{",
    ]


def test_marker_digests_separate_structure_from_content() -> None:
    a = small_table()
    b = ir.Table((ir.IntervalSet("blocked4", 4, v4("203.0.113.0/25")),), a.chains)
    c = small_table(extra_rules=(ir.Rule(verdict=ir.ACCEPT),))
    assert render.structure_digest(a) == render.structure_digest(b)
    assert render.content_digest(a.sets) != render.content_digest(b.sets)
    assert render.structure_digest(a) != render.structure_digest(c)
    assert render.content_digest(a.sets) == render.content_digest(c.sets)
    stamp = render.marker(render.structure_digest(a), render.content_digest(a.sets))
    assert render.parse_marker(stamp) == (render.structure_digest(a), render.content_digest(a.sets))
    assert f'return comment "{stamp}"' in render.script(a)


@pytest.mark.parametrize(
    "comment",
    [None, "", "egressguard/2 structure=a content=b", "egressguard/1 structure=a", "hello"],
)
def test_foreign_comments_are_not_markers(comment: str | None) -> None:
    assert render.parse_marker(comment) is None


def test_update_script_deletes_before_it_adds_and_rewrites_the_marker() -> None:
    text = render.update_script(
        [("s4", 4, [(1, 1)], [(0, 3)]), ("s6", 6, [], [(5, 5)])],
        "egressguard/1 structure=x content=y",
    )
    lines = text.splitlines()
    assert lines[0] == "delete element inet egressguard s4 {"
    assert lines.index("add element inet egressguard s4 {") > lines.index("}")
    assert "delete element inet egressguard s6 {" not in lines  # nothing removed there
    assert lines[-2:] == [
        f"flush chain inet egressguard {render.MARKER_CHAIN}",
        f"add rule inet egressguard {render.MARKER_CHAIN} return comment "
        '"egressguard/1 structure=x content=y"',
    ]

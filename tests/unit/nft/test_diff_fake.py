"""Plans, the fake kernel, reading our table back: the update logic without root."""

from __future__ import annotations

import pytest

from egressguard.adapters.nftables import FakeNftables, nft_error
from egressguard.cidr.sets import CidrSet
from egressguard.errors import DataplaneError
from egressguard.nft import diff, ir, parse, render, state


def table(v4: list[str], v6: list[str] | None = None, *, extra: bool = False) -> ir.Table:
    sets = [ir.IntervalSet("b4", 4, CidrSet(4, v4))]
    rules = [ir.Rule((ir.AddrInSet("daddr", 4, "b4"),), verdict=ir.DROP)]
    if v6 is not None:
        sets.append(ir.IntervalSet("b6", 6, CidrSet(6, v6)))
        rules.append(ir.Rule((ir.AddrInSet("daddr", 6, "b6"),), verdict=ir.DROP))
    if extra:
        rules.append(
            ir.Rule((ir.L4Proto((17,)), ir.Ports("dport", ((53, 53),))), verdict=ir.ACCEPT)
        )
    out = ir.Chain("output", (ir.Rule(verdict=ir.Verdict.jump("pol")),), ir.Hook("output"))
    return ir.Table(tuple(sets), (out, ir.Chain("pol", tuple(rules))))


def test_plan_kinds() -> None:
    old = table(["192.0.2.0/24"])
    assert diff.plan(None, old).kind == "replace"
    assert diff.plan(old, table(["192.0.2.0/24"])).kind == "unchanged"
    assert diff.plan(old, table(["192.0.2.0/25"])).kind == "elements"
    assert diff.plan(old, table(["192.0.2.0/24"], extra=True)).kind == "replace"
    assert diff.plan(old, table(["192.0.2.0/24"], ["2001:db8::/32"])).kind == "replace"
    assert diff.plan(old, table(["192.0.2.0/24"])).script() == ""


def test_range_changes_are_exact_canonical_ranges() -> None:
    old = CidrSet(4, ["192.0.2.0/24", "198.51.100.0/25", "203.0.113.7/32"])
    new = CidrSet(4, ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.9/32"])
    removed, added = diff.range_changes(old, new)
    assert removed == ((0xC6336400, 0xC633647F), (0xCB007107, 0xCB007107))
    assert added == ((0xC6336400, 0xC63364FF), (0xCB007109, 0xCB007109))
    # High addresses survive the vectorised key packing.
    hi_old = CidrSet(4, ["255.255.255.0/25"])
    hi_new = CidrSet(4, ["255.255.255.0/24"])
    assert diff.range_changes(hi_old, hi_new) == (
        ((0xFFFFFF00, 0xFFFFFF7F),),
        ((0xFFFFFF00, 0xFFFFFFFF),),
    )


def test_fake_applies_a_plan_and_reads_back_the_same_state() -> None:
    fake = FakeNftables()
    old = table(["192.0.2.0/24", "203.0.113.0/28"], ["2001:db8::/48"])
    fake.apply(render.script(old))
    kernel = state.from_json(fake.list_table() or {})
    assert kernel.structure == render.structure_digest(old)
    assert kernel.sets["b4"].elements == old.sets[0].elements
    assert kernel.sets["b6"].elements == old.sets[1].elements
    new = table(["192.0.2.0/23", "203.0.113.8/29"], ["2001:db8::/48", "2001:db8:1::1/128"])
    plan = diff.plan(kernel, new)
    assert plan.kind == "elements"
    fake.update(plan)
    after = state.from_json(fake.list_table() or {})
    assert after.set_elements() == {s.name: (s.family, s.elements) for s in new.sets}
    assert fake.read_marker() == plan.marker
    assert diff.plan(after, new).kind == "unchanged"
    # The element script says the same thing as the netlink path: run it on a second fake.
    other = FakeNftables()
    other.apply(render.script(old))
    other.apply(plan.script())
    assert other.dump() == fake.dump()


def test_a_failing_script_changes_nothing() -> None:
    fake = FakeNftables()
    good = render.script(table(["192.0.2.0/24"]))
    fake.apply(good)
    before = fake.dump()
    broken = good.replace("jump pol", "jump nowhere")
    with pytest.raises(DataplaneError, match="nowhere"):
        fake.apply(broken)
    assert fake.dump() == before
    overlapping = "add element inet egressguard b4 {\n\t192.0.2.128/25\n}\n"
    with pytest.raises(DataplaneError, match="overlaps"):
        fake.apply(overlapping)
    missing = "delete element inet egressguard b4 {\n\t198.51.100.0/24\n}\n"
    with pytest.raises(DataplaneError, match="does not exist"):
        fake.apply(missing)
    assert fake.dump() == before


def test_fake_update_refuses_a_stale_plan_atomically() -> None:
    fake = FakeNftables()
    fake.apply(render.script(table(["192.0.2.0/24", "198.51.100.0/24"])))
    before = fake.dump()
    stale = diff.plan(table(["192.0.2.0/25", "198.51.100.0/24"]), table(["198.51.100.0/25"]))
    with pytest.raises(DataplaneError, match="does not exist"):
        fake.update(stale)
    assert fake.dump() == before


def test_flush_removes_only_our_table() -> None:
    fake = FakeNftables()
    fake.apply("table inet other {\n\tchain c {\n\t\taccept\n\t}\n}\n")
    fake.apply(render.script(table(["192.0.2.0/24"])))
    assert fake.flush() is True
    assert fake.flush() is False
    assert fake.list_table() is None
    assert "table inet other" in fake.dump()


def test_check_is_a_dry_run() -> None:
    fake = FakeNftables()
    fake.check(render.script(table(["192.0.2.0/24"])))
    assert fake.list_table() is None
    assert fake.applied == []


def test_the_parser_reads_back_what_render_writes() -> None:
    t = table(["192.0.2.0/24", "198.51.100.1/32"], ["2001:db8::/64"], extra=True)
    commands = parse.parse_script(render.script(t))
    assert [c.kind for c in commands] == ["add_table", "delete_table", "define_table"]
    block = commands[2]
    assert [s.name for s in block.sets] == ["b4", "b6"]
    assert block.sets[0].elements == ["192.0.2.0/24", "198.51.100.1"]
    assert [c.name for c in block.chains] == ["pol", "output", render.MARKER_CHAIN]
    assert block.chains[1].hook == "output"
    assert [text for _, text in block.chains[0].rules] == [
        render.rule_text(r) for r in t.chain("pol").rules
    ]


@pytest.mark.parametrize("bad", ["flush ruleset\n", "table inet egressguard {\n\tmap m {\n"])
def test_the_parser_refuses_other_dialects(bad: str) -> None:
    with pytest.raises(parse.ParseError):
        parse.parse_script(bad)


def test_nft_errors_name_the_line_and_its_text() -> None:
    script = "table inet egressguard {\n\tchain c {\n\t\tjump nowhere\n\t}\n}\n"
    stderr = (
        "/dev/stdin:3:8-14: Error: Could not process rule: No such file or directory\n"
        "\t\tjump nowhere\n\t\t     ^^^^^^^\n"
    )
    err = nft_error(stderr, script, action="apply")
    assert "script line 3" in err.message
    assert "jump nowhere" in err.message
    assert "No such file or directory" in err.message
    assert err.hint is not None

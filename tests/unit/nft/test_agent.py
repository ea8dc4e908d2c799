"""The agent and the apply use case against the in-package fake kernel (no root needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from egressguard.adapters.nftables import FakeNftables
from egressguard.app import agent
from egressguard.errors import DataplaneError, InputError
from egressguard.nft import compile as nft_compile
from egressguard.nft import diff, render, state

POLICIES = """\
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkPolicy
metadata: {name: block}
spec:
  order: 0
  types: [Egress]
  egress:
    - action: Log
      destination: {selector: "policy == 'block'"}
    - action: Deny
      destination: {selector: "policy == 'block'"}
---
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkPolicy
metadata: {name: allow}
spec:
  order: 1000
  types: [Egress]
  egress:
    - action: Allow
"""


def network_set(*nets: str) -> str:
    return (
        "apiVersion: crd.projectcalico.org/v1\nkind: GlobalNetworkSet\n"
        "metadata: {name: block, labels: {policy: block}}\n"
        f"spec:\n  nets: [{', '.join(nets)}]\n"
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "policies.yaml").write_text(POLICIES)
    (tmp_path / "set.yaml").write_text(network_set("203.0.113.7/32"))
    return tmp_path


def make_agent(folder: Path, fake: FakeNftables, events: list[dict[str, Any]]) -> agent.Agent:
    clock = [0.0]
    runner = agent.Agent(fake, folder, None, log=events.append, clock=lambda: clock[0])
    runner.clock_value = clock  # type: ignore[attr-defined]
    return runner


def elements(fake: FakeNftables) -> dict[str, Any]:
    return state.from_json(fake.list_table() or {}).set_elements()


def test_first_step_replaces_then_set_changes_are_element_updates(folder: Path) -> None:
    fake = FakeNftables()
    events: list[dict[str, Any]] = []
    runner = make_agent(folder, fake, events)
    first = runner.step()
    assert first is not None
    assert first["kind"] == "replace"
    assert len(fake.applied) == 1
    (folder / "set.yaml").write_text(network_set("203.0.113.7/32", "203.0.113.8/32"))
    second = runner.step()
    assert second is not None
    assert second["kind"] == "elements"
    assert second["sets"][0]["added"] == 1
    assert second["sets"][0]["removed"] == 1  # .7 became .7-.8: one range out, one in
    assert len(fake.applied) == 1  # no reload
    assert len(fake.updates) == 1
    (set_elements,) = elements(fake).values()
    assert set_elements[1].ranges() == [(0xCB007107, 0xCB007108)]
    assert runner.step() is None  # nothing changed


def test_a_restart_with_an_identical_table_sends_nothing(folder: Path) -> None:
    fake = FakeNftables()
    make_agent(folder, fake, []).step()
    events: list[dict[str, Any]] = []
    again = make_agent(folder, fake, events).step()
    assert again is not None
    assert again["kind"] == "unchanged"
    assert len(fake.applied) == 1


def test_bad_input_is_reported_and_the_previous_ruleset_stays(folder: Path) -> None:
    fake = FakeNftables()
    events: list[dict[str, Any]] = []
    runner = make_agent(folder, fake, events)
    runner.step()
    before = fake.dump()
    (folder / "set.yaml").write_text(network_set("203.0.113.300/32"))
    event = runner.step()
    assert event is not None
    assert event["event"] == "load-failed"
    assert "203.0.113.300" in event["error"]
    assert event["kept"] == "the previous ruleset"
    assert fake.dump() == before
    # Fixing the file recovers.
    (folder / "set.yaml").write_text(network_set("203.0.113.9/32"))
    fixed = runner.step()
    assert fixed is not None
    assert fixed["event"] == "applied"


def test_a_kernel_refusal_is_reported_and_the_agent_goes_on(folder: Path) -> None:
    fake = FakeNftables()
    events: list[dict[str, Any]] = []
    runner = make_agent(folder, fake, events)
    runner.step()
    before = fake.dump()
    (folder / "set.yaml").write_text(network_set("203.0.113.9/32"))
    fake.refuse = "nftables refused: Operation not permitted"
    event = runner.step()
    assert event is not None
    assert event["event"] == "apply-failed"
    assert "Operation not permitted" in event["error"]
    assert fake.dump() == before
    assert runner.failures == 1
    fake.refuse = None
    # The next change goes through.
    (folder / "set.yaml").write_text(network_set("203.0.113.10/32"))
    assert (runner.step() or {}).get("event") == "applied"


def test_a_refused_element_update_falls_back_to_a_full_replace(folder: Path) -> None:
    fake = FakeNftables()
    runner = make_agent(folder, fake, [])
    runner.step()
    (folder / "set.yaml").write_text(network_set("203.0.113.9/32"))
    fake.fail_next = "nftables refused: element does not exist"
    event = runner.step()
    assert event is not None
    assert event["kind"] == "replace"
    assert len(fake.applied) == 2


def test_a_stale_element_update_falls_back_to_a_full_replace(folder: Path) -> None:
    fake = FakeNftables()
    runner = make_agent(folder, fake, [])
    runner.step()
    # Someone removes our element behind the agent's back; the marker still says "ours".
    table = state.from_json(fake.list_table() or {})
    name = next(iter(table.sets))
    fake.tables[("inet", "egressguard")].sets[name].ranges.clear()
    (folder / "set.yaml").write_text(network_set("203.0.113.9/32"))
    event = runner.step()
    assert event is not None
    assert event["kind"] == "replace"
    assert elements(fake)[name][1].ranges() == [(0xCB007109, 0xCB007109)]


def test_verification_repairs_a_removed_table(folder: Path) -> None:
    fake = FakeNftables()
    events: list[dict[str, Any]] = []
    runner = make_agent(folder, fake, events)
    runner.step()
    fake.flush()
    assert runner.step() is None  # not yet time to verify
    runner.clock_value[0] += runner.verify_interval  # type: ignore[attr-defined]
    event = runner.step()
    assert event is not None
    assert event["event"] == "repaired"
    assert fake.list_table() is not None


def test_the_safety_check_refuses_a_default_deny_unless_forced(folder: Path) -> None:
    (folder / "policies.yaml").write_text(POLICIES.split("---", maxsplit=1)[0])  # no allow policy
    fake = FakeNftables()
    events: list[dict[str, Any]] = []
    runner = make_agent(folder, fake, events)
    event = runner.step()
    assert event is not None
    assert event["event"] == "apply-failed"
    assert "192.0.2.123" in event["error"]
    assert fake.list_table() is None
    forced = agent.Agent(fake, folder, None, log=events.append, force=True)
    assert (forced.step() or {}).get("event") == "applied"


def test_run_is_bounded_and_logs_start_and_stop(folder: Path) -> None:
    events: list[dict[str, Any]] = []
    runner = agent.Agent(FakeNftables(), folder, None, log=events.append, interval=0.2)
    runner.run(max_steps=2)
    assert [e["event"] for e in events] == ["started", "applied", "stopped"]


def test_load_inputs_lists_every_problem(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(POLICIES.replace("action: Allow", "action: allow"))
    (tmp_path / "b.yaml").write_text(network_set("not-an-address"))
    with pytest.raises(InputError) as caught:
        agent.load_inputs([tmp_path])
    assert "2 problem(s)" in caught.value.message


def test_apply_compiled_dry_run_changes_nothing(folder: Path) -> None:
    fake = FakeNftables()
    compiled = agent.compile_inputs(agent.load_inputs([folder]))
    result = agent.apply_compiled(fake, compiled.table, dry_run=True)
    assert result.kind == "check"
    assert fake.list_table() is None
    with pytest.raises(DataplaneError):
        fake.check("table inet egressguard {\n\tchain c {\n\t\tjump nowhere\n\t}\n}\n")


def test_kernel_plan_reads_the_sets_back(folder: Path) -> None:
    fake = FakeNftables()
    compiled = agent.compile_inputs(agent.load_inputs([folder]))
    assert agent.kernel_plan(fake, compiled.table).kind == "replace"
    fake.apply(render.script(compiled.table))
    assert agent.kernel_plan(fake, compiled.table).kind == "unchanged"
    (folder / "set.yaml").write_text(network_set("203.0.113.0/24"))
    newer = agent.compile_inputs(agent.load_inputs([folder]))
    plan = agent.kernel_plan(fake, newer.table)
    assert plan.kind == "elements"
    assert isinstance(plan, diff.Plan)
    assert [(c.removed, c.added) for c in plan.changes] == [
        (((0xCB007107, 0xCB007107),), ((0xCB007100, 0xCB0071FF),))
    ]
    assert nft_compile.Options().log_prefix == "calico-packet"


def test_a_reload_parses_only_the_network_sets_that_changed(folder: Path) -> None:
    nets = [f"198.51.{i}.0/28" for i in range(0, 120, 2)]  # 60 entries: cached
    (folder / "set.yaml").write_text(network_set(*nets))
    (folder / "other.yaml").write_text(
        network_set(*nets[:40]).replace("name: block,", "name: other,")
    )
    fake = FakeNftables()
    runner = make_agent(folder, fake, [])
    assert (runner.step() or {}).get("kind") == "replace"
    (folder / "set.yaml").write_text(network_set(*nets[1:], "203.0.113.0/24"))
    event = runner.step()
    assert event is not None
    assert event["kind"] == "elements"
    assert runner.cache.counts["parsed"] == 3  # both sets at first, then the changed one
    assert runner.cache.counts["reused"] == 1
    assert runner.cache.counts["same structure"] == 1
    # What the kernel holds is what a fresh compile of the files gives.
    fresh = agent.compile_inputs(agent.load_inputs([folder])).table
    assert elements(fake) == {s.name: (s.family, s.elements) for s in fresh.sets}

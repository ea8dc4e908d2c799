"""Reading probe pods' logs and judging expected against observed: good, partial and garbage
logs, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egressguard import calico
from egressguard.adapters.verify_probe import Outcome, ProbeOutcome, ProbeSpec, parse_log
from egressguard.app import verify
from egressguard.app.verify import CheckStatus, DenyAction, Verdict

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "blog"
RUN = "r9"


def start(n: int, run: str = RUN) -> str:
    return json.dumps({"egressguard-verify": "start", "run": run, "version": 1, "probes": n})


def end(n: int, run: str = RUN) -> str:
    return json.dumps({"egressguard-verify": "end", "run": run, "results": n})


def result(spec: ProbeSpec, outcome: Outcome, run: str = RUN) -> str:
    body = ProbeOutcome(spec.index, spec.proto, spec.dst, spec.port, outcome, "d", 0.25)
    return json.dumps({"egressguard-verify": "result", "run": run, **body.to_json()})


@pytest.fixture(scope="module")
def plan() -> verify.VerifyPlan:
    options = verify.VerifyOptions(allowed=("198.51.100.7",), run_id=RUN)
    return verify.make_plan(calico.load_paths([EXAMPLES]), options)


def specs(plan: verify.VerifyPlan) -> list[ProbeSpec]:
    return [p.spec for p in plan.namespaces[0].probes]


def good_log(plan: verify.VerifyPlan) -> list[str]:
    """Blocked probes time out, the allowed one connects; results in completion order."""
    lines = [start(4)]
    for p in reversed(plan.namespaces[0].probes):
        allowed = p.expected.verdict is Verdict.ALLOWED
        lines.append(result(p.spec, Outcome.CONNECTED if allowed else Outcome.TIMEOUT))
    return [*lines, end(4)]


def report(plan: verify.VerifyPlan, text: str | None, **kw: str) -> verify.NamespaceReport:
    return verify.report_namespace(
        plan,
        plan.namespaces[0],
        state=kw.get("state", "completed"),
        detail="",
        log_text=text,
        log_error=kw.get("log_error"),
    )


# --------------------------------------------------------------------------- judging

J = [
    # deny action, expected, observed, ok
    ("drop", "Blocked", "timeout", True),
    ("drop", "Blocked", "connected", False),
    ("drop", "Blocked", "refused", False),
    ("drop", "Blocked", "unreachable", False),
    ("drop", "Blocked", "error", False),
    ("drop", "Allowed", "connected", True),
    ("drop", "Allowed", "refused", True),
    ("drop", "Allowed", "timeout", False),
    ("drop", "Allowed", "unreachable", False),
    ("drop", "Allowed", "error", False),
    ("reject", "Blocked", "refused", True),
    ("reject", "Blocked", "unreachable", True),
    ("reject", "Blocked", "timeout", False),
    ("reject", "Blocked", "connected", False),
    ("reject", "Blocked", "error", False),
    ("reject", "Allowed", "connected", True),
    ("reject", "Allowed", "refused", False),
    ("reject", "Allowed", "timeout", False),
    ("reject", "Allowed", "unreachable", False),
    ("reject", "Allowed", "error", False),
]


@pytest.mark.parametrize(("action", "expected", "observed", "ok"), J)
def test_judge_table(action: str, expected: str, observed: str, ok: bool) -> None:
    got, note = verify.judge(Verdict(expected), Outcome(observed), DenyAction(action))
    assert got is ok
    assert note


def test_judge_table_covers_every_combination() -> None:
    covered = [(a, e, o) for a, e, o, _ in J]
    every = {(a.value, v.value, o.value) for a in DenyAction for v in Verdict for o in Outcome}
    assert sorted(covered) == sorted(every)


def test_judge_explains_a_refusal_when_drop_was_expected() -> None:
    ok, note = verify.judge(Verdict.BLOCKED, Outcome.REFUSED)
    assert not ok
    assert "--deny-action reject" in note


# --------------------------------------------------------------------------- good logs


def test_a_good_log_passes_every_probe(plan: verify.VerifyPlan) -> None:
    ns = report(plan, "\n".join(good_log(plan)))
    assert ns.ok
    assert ns.log is not None
    assert ns.log.complete
    assert ns.counts == {"pass": 4, "fail": 0, "missing": 0}


def test_runtime_noise_and_prefixes_do_not_matter(plan: verify.VerifyPlan) -> None:
    lines = good_log(plan)
    noisy = [
        "W1127 17:00:00.000 1 warnings.go:70] something",
        *(f"2026-11-27T17:00:00.123456789Z stdout F {line}" for line in lines),
        "",
        "   ",
    ]
    ns = report(plan, "\n".join(noisy))
    assert ns.ok
    assert ns.log is not None
    assert ns.log.other_lines == 1
    assert ns.log.other_samples == ("W1127 17:00:00.000 1 warnings.go:70] something",)


# --------------------------------------------------------------------------- partial logs


def test_a_log_cut_short_keeps_its_results(plan: verify.VerifyPlan) -> None:
    lines = good_log(plan)[:3]  # start and two results; the pod died
    ns = report(plan, "\n".join(lines), state="failed")
    statuses = [c.status for c in ns.checks]
    assert statuses.count(CheckStatus.PASS) == 2
    assert statuses.count(CheckStatus.MISSING) == 2
    missing = [c for c in ns.checks if c.status is CheckStatus.MISSING]
    assert all("cut short" in c.note for c in missing)
    assert ns.log is not None
    assert not ns.log.complete
    assert not ns.ok


def test_a_half_written_last_line_is_malformed_not_fatal(plan: verify.VerifyPlan) -> None:
    lines = good_log(plan)[:-1]
    text = "\n".join(lines) + '\n{"egressguard-verify":"end","run":"r9","res'
    ns = report(plan, text)
    assert ns.log is not None
    assert ns.log.malformed == 1
    assert not ns.log.ended
    assert ns.ok  # every probe has its result; only the end line is lost


def test_no_log_at_all(plan: verify.VerifyPlan) -> None:
    ns = report(plan, None, state="stuck", log_error="container is waiting to start")
    assert {c.status for c in ns.checks} == {CheckStatus.MISSING}
    assert all(c.note == "no log: container is waiting to start" for c in ns.checks)


def test_an_empty_log_says_the_probe_never_started(plan: verify.VerifyPlan) -> None:
    ns = report(plan, "")
    assert {c.note for c in ns.checks} == {"the probe never started (no start line in the log)"}


# --------------------------------------------------------------------------- wrong or garbage


def test_other_runs_duplicates_and_foreign_results_are_not_taken(plan: verify.VerifyPlan) -> None:
    first, *_ = specs(plan)
    lines = good_log(plan)
    lines.insert(1, result(first, Outcome.CONNECTED, run="old-run"))  # another run's line
    lines.append(result(first, Outcome.CONNECTED))  # a duplicate after the end
    parsed = parse_log("\n".join(lines), RUN)
    assert parsed.foreign_runs == 1
    assert parsed.duplicates == 1
    assert parsed.results[first.index].outcome is Outcome.TIMEOUT  # the first one counts


def test_a_result_for_another_destination_fails_that_probe(plan: verify.VerifyPlan) -> None:
    first = specs(plan)[0]
    impostor = ProbeSpec(first.index, "tcp", "192.0.2.99", first.port, 1.0)
    lines = [start(4), result(impostor, Outcome.TIMEOUT), end(1)]
    ns = report(plan, "\n".join(lines))
    check = ns.checks[0]
    assert check.status is CheckStatus.FAIL
    assert "not ours" in check.note


@pytest.mark.parametrize(
    "line",
    [
        '{"egressguard-verify": "result", "run": "r9", "index": "zero"}',
        '{"egressguard-verify": "result", "run": "r9", "index": 0, "proto": "tcp", '
        '"dst": "192.0.2.1", "port": 443, "outcome": "exploded"}',
        '{"egressguard-verify": "result", "run": "r9", "index": true, "proto": "tcp", '
        '"dst": "192.0.2.1", "port": 443, "outcome": "timeout"}',
        '{"egressguard-verify": 7, "run": "r9"}',
        '{"egressguard-verify": "dance", "run": "r9"}',
        '{"egressguard-verify": ["start"]',
        '{"egressguard-verify": "start"} trailing',
    ],
)
def test_malformed_lines_of_ours_are_counted(line: str) -> None:
    parsed = parse_log(line, RUN)
    assert parsed.malformed == 1
    assert parsed.results == {}


def test_lines_that_merely_look_like_json_are_other_lines() -> None:
    text = "\n".join(['{"level": "info"}', "[1, 2]", "null", '"egressguard-verify"', "\x00\xff"])
    parsed = parse_log(text, RUN)
    assert parsed.other_lines == 5
    assert parsed.malformed == 0


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_parse_log_never_raises(text: str) -> None:
    parsed = parse_log(text, RUN)
    assert len(parsed.results) <= text.count("egressguard-verify")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(range(12)), max_size=30), st.randoms(use_true_random=False))
def test_any_interleaving_of_good_lines_and_noise_is_read_right(
    picks: list[int], rng: object
) -> None:
    """Whatever subset and order of result lines arrive, among noise, each one is read back."""
    probes = [ProbeSpec(i, "tcp", f"192.0.2.{i + 1}", 443, 1.0) for i in range(12)]
    outcomes = list(Outcome)
    lines = [result(probes[i], outcomes[i % len(outcomes)]) for i in picks]
    lines += ["noise", "Traceback (most recent call last):", '{"x": 1}']
    rng.shuffle(lines)  # type: ignore[attr-defined]
    parsed = parse_log("\n".join(lines), RUN)
    assert set(parsed.results) == set(picks)
    for i, r in parsed.results.items():
        assert r.outcome is outcomes[i % len(outcomes)]
        assert r.dst == f"192.0.2.{i + 1}"
    assert parsed.duplicates == len(picks) - len(set(picks))


# --------------------------------------------------------------------------- output


def test_report_json_and_table_carry_the_verdicts(plan: verify.VerifyPlan) -> None:
    ns = report(plan, "\n".join(good_log(plan)))
    full = verify.VerifyReport(plan, (ns,))
    doc = verify.report_to_json(full)
    assert doc["ok"] is True
    (only,) = doc["namespaces"]
    assert {(p["expected"], p["observed"], p["status"]) for p in only["probes"]} == {
        ("Blocked", "timeout", "pass"),
        ("Allowed", "connected", "pass"),
    }
    assert json.loads(json.dumps(doc)) == doc
    table = verify.format_report_table(full)
    assert table.splitlines()[0].split() == [
        "NAMESPACE",
        "PROBE",
        "SOURCE",
        "EXPECTED",
        "OBSERVED",
        "RESULT",
        "NOTE",
    ]
    assert table.rstrip().endswith("verified: every probe as expected")
    assert "4/4 as expected" in table

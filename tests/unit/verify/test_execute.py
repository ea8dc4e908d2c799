"""``execute``: create, wait (bounded), collect, clean up — on the in-package FakeJobClient, with
a manual clock. The pod logs are written by the real line writer (``run_probes``) with scripted
outcomes; the real API path is in tests/integration/test_verify_run.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from egressguard import calico
from egressguard.adapters.kube_jobs import FakeJobClient, FakeRun
from egressguard.adapters.verify_probe import (
    PLAN_ENV,
    Outcome,
    ProbeOutcome,
    ProbeSpec,
    decode_plan,
    run_probes,
)
from egressguard.app import verify
from egressguard.app.verify import CheckStatus
from egressguard.errors import KubeError

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "blog"
ALLOWED = "198.51.100.7"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def plan() -> verify.VerifyPlan:
    options = verify.VerifyOptions(
        namespaces=("default", "web"), allowed=(ALLOWED,), run_id="t1", timeout=2.0
    )
    return verify.make_plan(calico.load_paths([EXAMPLES]), options)


def plan_of(job: dict[str, Any]) -> tuple[str, list[ProbeSpec]]:
    (c,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in c["env"]}
    return decode_plan(env[PLAN_ENV])


def log_for(job: dict[str, Any], *, block_works: bool = True, upto: int | None = None) -> str:
    """What the probe would print if the cluster drops the blocklist (or not)."""
    run, probes = plan_of(job)

    def outcome(spec: ProbeSpec) -> ProbeOutcome:
        reached = spec.dst == ALLOWED or not block_works
        kind = Outcome.CONNECTED if reached else Outcome.TIMEOUT
        return ProbeOutcome(spec.index, spec.proto, spec.dst, spec.port, kind, "", spec.timeout)

    lines: list[str] = []
    run_probes(run, probes, lines.append, max_workers=1, probe=outcome)
    if upto is not None:
        lines = lines[:upto]
    return "\n".join(lines) + "\n"


def working(job: dict[str, Any]) -> FakeRun:
    return FakeRun(log=log_for(job), polls_until_done=3)


def test_a_working_block_passes_and_the_jobs_are_deleted(plan: verify.VerifyPlan) -> None:
    client = FakeJobClient(working)
    clock = Clock()
    progress: list[str] = []
    report = verify.execute(
        plan, client, wait=60, clock=clock, sleep=clock.sleep, progress=progress.append
    )
    assert report.ok
    assert [n.state for n in report.namespaces] == ["completed", "completed"]
    assert all(n.deleted is True for n in report.namespaces)
    name = "egressguard-verify-t1"
    assert client.created == [("default", name), ("web", name)]
    assert client.deleted == [("default", name), ("web", name)]
    assert progress[0] == f"created Job default/{name} (4 probes)"
    # The wait polled with a growing, capped delay.
    assert clock.sleeps == sorted(clock.sleeps)
    assert max(clock.sleeps) <= 3.0


def test_a_block_that_does_not_hold_fails(plan: verify.VerifyPlan) -> None:
    client = FakeJobClient(lambda job: FakeRun(log=log_for(job, block_works=False)))
    report = verify.execute(plan, client, wait=60, sleep=lambda s: None)
    assert not report.ok
    for ns in report.namespaces:
        assert ns.counts == {"pass": 1, "fail": 3, "missing": 0}


def test_the_wait_is_bounded_and_partial_results_are_kept(plan: verify.VerifyPlan) -> None:
    # Still running when the wait ends: start line and two results so far.
    client = FakeJobClient(lambda job: FakeRun(log=log_for(job, upto=3), job_condition=None))
    clock = Clock()
    report = verify.execute(plan, client, wait=20, clock=clock, sleep=clock.sleep)
    assert 20 <= clock.now <= 23  # the last sleep is cut to the time left
    for ns in report.namespaces:
        assert ns.state == "timed-out"
        assert ns.counts == {"pass": 2, "fail": 0, "missing": 2}
        assert ns.deleted is True  # cleaned up all the same


def test_one_namespace_refused_the_others_run(plan: verify.VerifyPlan) -> None:
    forbidden = KubeError(
        "Kubernetes API: create Job failed: 403 Forbidden", status=403, hint="needs RBAC"
    )
    client = FakeJobClient(working, create_errors={"web": forbidden})
    report = verify.execute(plan, client, wait=60, sleep=lambda s: None)
    by_ns = {n.namespace: n for n in report.namespaces}
    assert by_ns["default"].ok
    assert by_ns["web"].state == "not-created"
    assert "403 Forbidden (needs RBAC)" in by_ns["web"].detail
    assert by_ns["web"].deleted is None  # nothing to delete
    assert client.deleted == [("default", "egressguard-verify-t1")]
    assert not report.ok


def test_an_image_pull_backoff_stops_waiting_for_that_namespace(plan: verify.VerifyPlan) -> None:
    def run(job: dict[str, Any]) -> FakeRun:
        if job["metadata"]["namespace"] == "web":
            return FakeRun(log=None, job_condition=None, waiting_reason="ImagePullBackOff")
        return working(job)

    clock = Clock()
    report = verify.execute(plan, FakeJobClient(run), wait=600, clock=clock, sleep=clock.sleep)
    by_ns = {n.namespace: n for n in report.namespaces}
    assert by_ns["web"].state == "stuck"
    assert "ImagePullBackOff" in by_ns["web"].detail
    assert "waiting to start" in (by_ns["web"].log_error or "")
    assert by_ns["default"].ok
    assert clock.now < 60  # did not sit out the 600 s


def test_a_failed_job_with_a_crash_log(plan: verify.VerifyPlan) -> None:
    def run(job: dict[str, Any]) -> FakeRun:
        log = log_for(job, upto=2) + "Killed\n"
        return FakeRun(
            log=log,
            job_condition="Failed",
            condition_reason="DeadlineExceeded",
            pod_phase="Failed",
            exit_code=137,
            terminated_reason="Error",
        )

    report = verify.execute(plan, FakeJobClient(run), wait=60, sleep=lambda s: None)
    for ns in report.namespaces:
        assert ns.state == "failed"
        assert "DeadlineExceeded" in ns.detail
        assert "exit code 137" in ns.detail
        assert ns.counts["missing"] == 3
        assert ns.log is not None
        assert ns.log.other_samples == ("Killed",)


def test_an_unreadable_log_is_reported(plan: verify.VerifyPlan) -> None:
    client = FakeJobClient(working, log_errors={"web": KubeError("log: 500", status=500)})
    report = verify.execute(plan, client, wait=60, sleep=lambda s: None)
    web = report.namespaces[1]
    assert web.log_error == "log: 500"
    assert {c.status for c in web.checks} == {CheckStatus.MISSING}


def test_keep_leaves_the_jobs(plan: verify.VerifyPlan) -> None:
    client = FakeJobClient(working)
    report = verify.execute(plan, client, wait=60, keep=True, sleep=lambda s: None)
    assert report.ok
    assert client.deleted == []
    assert all(n.deleted is None for n in report.namespaces)


def test_a_failed_delete_is_reported_beside_an_unchanged_result(
    plan: verify.VerifyPlan,
) -> None:
    class UndeletableInWeb(FakeJobClient):
        def delete_job(self, namespace: str, name: str) -> bool:
            if namespace == "web":
                raise KubeError("Kubernetes API: delete Job web/x failed: 403 Forbidden")
            return super().delete_job(namespace, name)

    clock = Clock()
    report = verify.execute(
        plan, UndeletableInWeb(working), wait=60, clock=clock, sleep=clock.sleep
    )

    by_ns = {n.namespace: n for n in report.namespaces}
    assert (by_ns["default"].deleted, by_ns["default"].delete_error) == (True, None)
    assert by_ns["web"].deleted is None
    assert by_ns["web"].delete_error == "Kubernetes API: delete Job web/x failed: 403 Forbidden"
    assert by_ns["web"].state == "completed"
    assert by_ns["web"].counts == by_ns["default"].counts  # the judging is kept whole
    assert report.ok
    assert "NOT deleted: Kubernetes API: delete Job web/x" in verify.format_report_table(report)


def test_jobs_are_deleted_even_when_interrupted(plan: verify.VerifyPlan) -> None:
    client = FakeJobClient(lambda job: FakeRun(log="", job_condition=None))

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        verify.execute(plan, client, wait=60, sleep=interrupted)
    assert sorted(client.deleted) == [
        ("default", "egressguard-verify-t1"),
        ("web", "egressguard-verify-t1"),
    ]


def test_a_failed_delete_is_reported_not_raised(plan: verify.VerifyPlan) -> None:
    class NoDelete(FakeJobClient):
        def delete_job(self, namespace: str, name: str) -> bool:
            raise KubeError(f"delete Job {namespace}/{name}: 403 Forbidden", status=403)

    report = verify.execute(plan, NoDelete(working), wait=60, sleep=lambda s: None)
    assert report.ok  # the probes proved the block; the leftover Job is a separate finding
    for ns in report.namespaces:
        assert ns.deleted is None
        assert "403" in (ns.delete_error or "")
    assert "NOT deleted" in verify.format_report_table(report)


def test_a_job_that_vanishes_is_reported(plan: verify.VerifyPlan) -> None:
    class Vanishing(FakeJobClient):
        def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
            return None

    report = verify.execute(plan, Vanishing(working), wait=60, sleep=lambda s: None)
    assert {n.state for n in report.namespaces} == {"gone"}


def test_transient_read_errors_keep_waiting(plan: verify.VerifyPlan) -> None:
    calls = {"n": 0}

    class Flaky(FakeJobClient):
        def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
            calls["n"] += 1
            if calls["n"] <= 2:
                raise KubeError("timed out", transient=True)
            return super().get_job(namespace, name)

    report = verify.execute(plan, Flaky(working), wait=60, sleep=lambda s: None)
    assert report.ok

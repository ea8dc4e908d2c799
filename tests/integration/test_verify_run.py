"""``verify --run`` end to end over real HTTP: lightkube against the test API server, whose Job
controller runs the real ``egressguard verify probe`` command (see ``verify_cluster.py``).

No cluster dataplane exists here, so the "blocked" destination is made to drop packets the way a
Calico Deny does: a TCP listener on 127.0.0.2 whose accept queue is full. Linux then drops new
SYNs (``tcp_conn_request``: accept queue full → drop, no RST), so a connect times out exactly
like a connect to a destination behind a DROP rule. The allowed destination is a listener on
127.0.0.1 that accepts. Loopback only.
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from verify_cluster import Cluster, ScriptedRun, run_cluster

from egressguard import calico, cli
from egressguard.adapters.kube import RetryPolicy
from egressguard.adapters.kube_jobs import connect_jobs
from egressguard.adapters.verify_probe import Outcome, decode_plan
from egressguard.app import verify

pytestmark = pytest.mark.integration

BLOCKED = "127.0.0.2"
ALLOWED = "127.0.0.1"


class Targets:
    """An accepting listener on ALLOWED and a dropping one (full accept queue) on BLOCKED,
    on the same port; ``blocked_accepts`` makes the blocked one accept too (a "broken" block)."""

    def __init__(self, *, blocked_accepts: bool = False) -> None:
        self.sockets: list[socket.socket] = []
        self.port = 0
        for _ in range(20):  # bounded: find a port free on both addresses
            allowed = socket.socket()
            allowed.bind((ALLOWED, 0))
            port = allowed.getsockname()[1]
            blocked = socket.socket()
            try:
                blocked.bind((BLOCKED, port))
            except OSError:
                allowed.close()
                blocked.close()
                continue
            allowed.listen(64)
            self.sockets += [allowed, blocked]
            self.port = port
            if blocked_accepts:
                blocked.listen(64)
            else:
                blocked.listen(0)
                # Fill the queue (backlog 0 holds one connection); later SYNs are dropped.
                filler = socket.create_connection((BLOCKED, port), timeout=2)
                self.sockets.append(filler)
            return
        raise RuntimeError("no port free on both loopback addresses")

    def close(self) -> None:
        for s in self.sockets:
            s.close()


@pytest.fixture
def targets() -> Iterator[Targets]:
    t = Targets()
    try:
        yield t
    finally:
        t.close()


def manifests_dir(tmp_path: Path) -> Path:
    """The reference scenario's shape with the blocked set holding BLOCKED."""
    d = tmp_path / "manifests"
    d.mkdir()
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "crd.projectcalico.org/v1",
            "kind": "GlobalNetworkSet",
            "metadata": {"name": "blocked", "labels": {"policy": "egress-traffic-blocking"}},
            "spec": {"nets": [f"{BLOCKED}/32"]},
        },
        {
            "apiVersion": "crd.projectcalico.org/v1",
            "kind": "GlobalNetworkPolicy",
            "metadata": {"name": "egress-traffic-blocking"},
            "spec": {
                "order": 0,
                "types": ["Egress"],
                "egress": [
                    {
                        "action": action,
                        "destination": {"selector": "policy == 'egress-traffic-blocking'"},
                    }
                    for action in ("Log", "Deny")
                ],
            },
        },
        {
            "apiVersion": "crd.projectcalico.org/v1",
            "kind": "GlobalNetworkPolicy",
            "metadata": {"name": "egress-traffic-allow"},
            "spec": {"order": 1000, "types": ["Egress"], "egress": [{"action": "Allow"}]},
        },
    ]
    (d / "all.yaml").write_text(yaml.safe_dump_all(docs))
    return d


def make(tmp_path: Path, port: int, **overrides: Any) -> verify.VerifyPlan:
    options = verify.VerifyOptions(
        **{
            "namespaces": ("default", "web"),
            "allowed": (ALLOWED,),
            "ports": (verify.PortSpec("tcp", port),),
            "timeout": 1.0,
            "run_id": "it1",
            **overrides,
        }
    )
    return verify.make_plan(calico.load_paths([manifests_dir(tmp_path)]), options)


def jobs_client(cluster: Cluster) -> Any:
    return connect_jobs(
        cluster.api.kubeconfig, retry=RetryPolicy(attempts=3, initial_delay=0.0, max_delay=0.0)
    )


def test_run_proves_the_block_in_every_namespace_and_cleans_up(
    tmp_path: Path, targets: Targets
) -> None:
    plan = make(tmp_path, targets.port)
    with run_cluster(tmp_path, namespaces=("default", "web")) as cluster:
        with jobs_client(cluster) as client:
            report = verify.execute(plan, client, wait=60)
        assert report.ok, verify.format_report_table(report)
        for ns_report in report.namespaces:
            assert ns_report.state == "completed"
            assert ns_report.log is not None
            assert ns_report.log.complete
            observed = {
                c.planned.spec.dst: (c.planned.expected.verdict, c.observed and c.observed.outcome)
                for c in ns_report.checks
            }
            assert observed == {
                BLOCKED: (verify.Verdict.BLOCKED, Outcome.TIMEOUT),
                ALLOWED: (verify.Verdict.ALLOWED, Outcome.CONNECTED),
            }
            assert ns_report.deleted is True
        # The Jobs are gone, and so are their pods: the delete asked for Background propagation.
        for ns in ("default", "web"):
            assert cluster.jobs(ns) == {}
            assert cluster.wait_until(lambda ns=ns: cluster.pods(ns) == {})
        deletes = [r for r in cluster.api.requests() if r.method == "DELETE"]
        assert len(deletes) == 2
        assert {r.params.get("propagationPolicy") for r in deletes} == {"Background"}


def test_the_job_the_cluster_ran_is_the_rendered_one(tmp_path: Path, targets: Targets) -> None:
    plan = make(tmp_path, targets.port, namespaces=("default",))
    with run_cluster(tmp_path) as cluster:
        with jobs_client(cluster) as client:
            report = verify.execute(plan, client, wait=60, keep=True)
        assert report.ok
        (stored,) = cluster.jobs("default").values()
        rendered = verify.render_job(plan, plan.namespaces[0])
        assert stored["spec"] == rendered["spec"]
        assert stored["metadata"]["labels"] == rendered["metadata"]["labels"]
        env = stored["spec"]["template"]["spec"]["containers"][0]["env"]
        run, probes = decode_plan(env[0]["value"])
        assert run == "it1"
        assert [p.dst for p in probes] == [BLOCKED, ALLOWED]
        # --keep: the Job and its pod stay (they carry ttlSecondsAfterFinished for the cluster).
        assert report.namespaces[0].deleted is None
        assert len(cluster.pods("default")) == 1


def test_a_block_that_does_not_hold_is_reported_and_fails_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = Targets(blocked_accepts=True)
    try:
        with run_cluster(tmp_path, namespaces=("default",)) as cluster:
            code = cli.main(
                [
                    "verify",
                    "-f",
                    str(manifests_dir(tmp_path)),
                    "--allowed",
                    ALLOWED,
                    "--port",
                    str(broken.port),
                    "--timeout",
                    "1",
                    "--run",
                    "--kubeconfig",
                    str(cluster.api.kubeconfig),
                    "--wait",
                    "60",
                    "-o",
                    "json",
                ]
            )
    finally:
        broken.close()
    assert code == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False
    (ns,) = doc["namespaces"]
    by_dst = {p["dst"]: p for p in ns["probes"]}
    assert by_dst[BLOCKED]["status"] == "fail"
    assert by_dst[BLOCKED]["observed"] == "connected"
    assert "not blocked" in by_dst[BLOCKED]["note"]
    assert by_dst[ALLOWED]["status"] == "pass"
    assert ns["deleted"] is True


def test_the_command_exits_0_when_every_probe_matches(
    tmp_path: Path, targets: Targets, capsys: pytest.CaptureFixture[str]
) -> None:
    with run_cluster(tmp_path, namespaces=("default",)) as cluster:
        code = cli.main(
            [
                "verify",
                "-f",
                str(manifests_dir(tmp_path)),
                "--allowed",
                ALLOWED,
                "--port",
                f"tcp/{targets.port}",
                "--timeout",
                "1",
                "--run",
                "--kubeconfig",
                str(cluster.api.kubeconfig),
            ]
        )
        assert cluster.jobs("default") == {}
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "verified: every probe as expected" in out
    assert "created Job default/egressguard-verify-" in err


def test_a_missing_namespace_is_reported_and_the_others_still_run(
    tmp_path: Path, targets: Targets
) -> None:
    plan = make(tmp_path, targets.port, namespaces=("default", "nowhere"))
    with run_cluster(tmp_path, namespaces=("default",)) as cluster, jobs_client(cluster) as client:
        report = verify.execute(plan, client, wait=60)
    by_ns = {n.namespace: n for n in report.namespaces}
    assert by_ns["default"].ok
    assert by_ns["nowhere"].state == "not-created"
    assert 'namespaces "nowhere" not found' in by_ns["nowhere"].detail
    assert {c.status for c in by_ns["nowhere"].checks} == {verify.CheckStatus.MISSING}
    assert not report.ok


def test_an_image_that_cannot_be_pulled_stops_the_wait_early(
    tmp_path: Path, targets: Targets
) -> None:
    image = "registry.invalid/egressguard:missing"
    plan = make(tmp_path, targets.port, namespaces=("default",), image=image)
    ticks: list[float] = []
    with run_cluster(tmp_path) as cluster:
        cluster.runtimes[image] = lambda _c: (None, "", "ImagePullBackOff")
        with jobs_client(cluster) as client:
            report = verify.execute(plan, client, wait=600, sleep=ticks.append)
        (ns,) = report.namespaces
        assert ns.state == "stuck"
        assert "ImagePullBackOff" in ns.detail
        assert "waiting to start" in (ns.log_error or "")
        assert {c.status for c in ns.checks} == {verify.CheckStatus.MISSING}
        assert ns.deleted is True
        assert cluster.wait_until(lambda: cluster.pods("default") == {})
    # It stopped as soon as the pod said why, long before the 600 s wait.
    assert sum(ticks) < 600


def crash_after_first_result(container: Any) -> ScriptedRun:
    """A container killed after one result line, with runtime noise around it."""
    env = {e["name"]: e["value"] for e in container["env"]}
    run, probes = decode_plan(env["EGRESSGUARD_VERIFY_PLAN"])
    first = probes[0]
    log = (
        "exec: starting\n"
        f'{{"egressguard-verify":"start","run":"{run}","version":1,"probes":{len(probes)}}}\n'
        f'{{"egressguard-verify":"result","run":"{run}","index":0,"proto":"{first.proto}",'
        f'"dst":"{first.dst}","port":{first.port},"outcome":"timeout","detail":"x",'
        '"elapsed":1.0}\n'
        'Traceback (most recent call last):\n  File "x", line 1\nMemoryError\n'
        '{"egressguard-verify":"result","run":"'
    )
    return (137, log, "OOMKilled")


def test_a_crashed_pod_gives_its_partial_results_and_no_traceback(
    tmp_path: Path, targets: Targets
) -> None:
    image = "example.test/crashes:1"
    plan = make(tmp_path, targets.port, namespaces=("default",), image=image)
    with run_cluster(tmp_path) as cluster:
        cluster.runtimes[image] = crash_after_first_result
        with jobs_client(cluster) as client:
            report = verify.execute(plan, client, wait=60)
    (ns,) = report.namespaces
    assert ns.state == "failed"
    assert "BackoffLimitExceeded" in ns.detail
    assert "exit code 137 (OOMKilled)" in ns.detail
    first, second = ns.checks
    assert first.status is verify.CheckStatus.PASS  # the blocked probe did time out
    assert second.status is verify.CheckStatus.MISSING
    assert "cut short" in second.note
    assert ns.log is not None
    assert ns.log.other_lines == 4  # "exec: starting" and the three lines of the traceback
    assert ns.log.malformed == 1  # the half-written last line
    assert not report.ok

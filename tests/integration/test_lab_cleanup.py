"""Lab cleanup for real: after exceptions, failed builds, interrupts, crashes, and twice over.

Every test uses its own random prefix and state directory and checks at the end that no
namespace with its prefix and no server process of it remains.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from egressguard.adapters import netns
from egressguard.app import lab
from egressguard.errors import DataplaneError, UsageError

sys.path.insert(0, str(Path(__file__).parent))
from labns import RUNNER, fresh_prefix, namespaces_with

pytestmark = [pytest.mark.root, pytest.mark.integration]


@pytest.fixture
def prefix(tmp_path: Path) -> Iterator[str]:
    """A fresh prefix; whatever a test leaves behind is removed, and leftovers fail it."""
    with fresh_prefix("t", tmp_path) as p:
        yield p


def _server_pids(state: lab.LabState) -> list[netns.ProcessRef]:
    return list(state.processes)


def test_open_lab_tears_down_when_the_body_raises(prefix: str, tmp_path: Path) -> None:
    refs: list[netns.ProcessRef] = []

    def body() -> None:
        with lab.open_lab(lab.default_topology(prefix), runner=RUNNER, state_dir=tmp_path) as built:
            refs.extend(_server_pids(built.state))
            assert len(namespaces_with(prefix)) == 4
            raise RuntimeError("test body failed")

    with pytest.raises(RuntimeError, match="test body failed"):
        body()
    assert namespaces_with(prefix) == []
    assert refs
    assert not any(netns.process_alive(r) for r in refs)
    assert not lab.state_path(tmp_path, prefix).exists()


def test_a_second_down_is_a_no_op(prefix: str, tmp_path: Path) -> None:
    lab.lab_up(lab.default_topology(prefix), runner=RUNNER, state_dir=tmp_path)
    first = lab.lab_down(prefix, runner=RUNNER, state_dir=tmp_path)
    assert sorted(first.removed_namespaces) == sorted(lab.default_topology(prefix).namespaces())
    assert len(first.stopped_pids) == 1
    assert first.errors == []
    second = lab.lab_down(prefix, runner=RUNNER, state_dir=tmp_path)
    assert second.nothing_to_do, second.to_json()


def test_down_without_a_state_file_removes_namespaces_and_their_processes(
    prefix: str, tmp_path: Path
) -> None:
    built = lab.lab_up(lab.default_topology(prefix), runner=RUNNER, state_dir=tmp_path)
    (server,) = built.state.processes
    built.state_file.remove()
    # Named with the prefix but not <prefix><word>: not the lab's, so it must survive.
    decoy = f"{prefix}keep-me"
    ip = netns.IpRoute2(RUNNER)
    ip.add_namespace(decoy)
    try:
        report = lab.lab_down(prefix, runner=RUNNER, state_dir=tmp_path)
        assert ip.namespace_exists(decoy)
    finally:
        ip.delete_namespace(decoy)
    assert not report.had_state
    assert sorted(report.removed_namespaces) == sorted(built.topology.namespaces())
    assert server.pid in report.stopped_pids, "found through `ip netns pids`, not the journal"
    assert not netns.process_alive(server)


def test_lab_up_refuses_a_prefix_that_is_in_use(prefix: str, tmp_path: Path) -> None:
    first = lab.lab_up(lab.default_topology(prefix), runner=RUNNER, state_dir=tmp_path)
    with pytest.raises(UsageError, match="exists already"):
        lab.lab_up(lab.default_topology(prefix), runner=RUNNER, state_dir=tmp_path)
    # The refused attempt did not disturb the running lab.
    assert first.status().healthy
    first.down()


class FailingRunner:
    """The real runner, except that the first command matching ``when`` raises ``error``:
    a fault injected in the middle of a real build."""

    def __init__(self, when: Sequence[str], error: BaseException) -> None:
        self.when = list(when)
        self.error: BaseException | None = error
        self.calls = 0

    def run(
        self,
        ns: str | None,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float = 30.0,
        check: bool = True,
    ) -> netns.CommandResult:
        self.calls += 1
        if self.error is not None and all(w in argv for w in self.when):
            err, self.error = self.error, None
            raise err
        return RUNNER.run(ns, argv, input=input, timeout=timeout, check=check)


@pytest.mark.parametrize(
    ("when", "error"),
    [
        # Fails after namespaces and links exist: routes are half done.
        (("route", "add", "default"), DataplaneError("injected: route add failed")),
        # SIGINT arrives while the servers start (Python turns it into KeyboardInterrupt).
        (("serve", "--daemon"), KeyboardInterrupt()),
    ],
    ids=["failure-mid-build", "interrupt-at-servers"],
)
def test_a_failed_or_interrupted_build_removes_what_it_made(
    prefix: str, tmp_path: Path, when: Sequence[str], error: BaseException
) -> None:
    runner = FailingRunner(when, error)
    with pytest.raises(type(error)):
        lab.lab_up(lab.default_topology(prefix), runner=runner, state_dir=tmp_path)
    assert runner.error is None, "the fault was injected"
    assert namespaces_with(prefix) == []
    assert not lab.state_path(tmp_path, prefix).exists()


# --------------------------------------------------------------------------- the CLI


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "egressguard", "lab", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _start_holding(prefix: str, state_dir: Path) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """``lab up --hold`` in a child process; returns once it printed what it built."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "egressguard",
            "lab",
            "up",
            "--prefix",
            prefix,
            "--state-dir",
            str(state_dir),
            "--hold",
            "120",
            "-o",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    if not ready:
        proc.kill()
        proc.communicate(timeout=10)
        pytest.fail("lab up --hold printed nothing within 60 s")
    line = proc.stdout.readline()
    try:
        return proc, json.loads(line)
    except json.JSONDecodeError:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"lab up printed {line!r}; stderr {err!r}")


def test_cli_up_status_down(prefix: str, tmp_path: Path) -> None:
    up = _cli("up", "--prefix", prefix, "--state-dir", str(tmp_path), "-o", "json")
    assert up.returncode == 0, up.stderr
    doc = json.loads(up.stdout)
    assert doc["status"] == "up"
    assert [p["interface"] for p in doc["topology"]["pods"]] == [
        "cali68caf03a5f4",
        "calic30c7db7461",
    ]
    status = _cli("status", "--prefix", prefix, "--state-dir", str(tmp_path), "-o", "json")
    assert status.returncode == 0, status.stdout
    assert json.loads(status.stdout)["healthy"] is True
    table = _cli("status", "--prefix", prefix, "--state-dir", str(tmp_path))
    assert "running" in table.stdout
    down = _cli("down", "--prefix", prefix, "--state-dir", str(tmp_path))
    assert down.returncode == 0, down.stderr
    assert "removed 4 namespace(s)" in down.stdout
    again = _cli("down", "--prefix", prefix, "--state-dir", str(tmp_path))
    assert (again.returncode, again.stdout.strip()) == (
        0,
        f"nothing to remove for prefix {prefix!r}",
    )
    gone = _cli("status", "--prefix", prefix, "--state-dir", str(tmp_path))
    assert gone.returncode == 1


def test_down_after_a_crash_removes_everything(prefix: str, tmp_path: Path) -> None:
    proc, doc = _start_holding(prefix, tmp_path)
    proc.kill()  # SIGKILL: no handler runs, nothing is cleaned up
    proc.communicate(timeout=10)
    refs = [netns.ProcessRef.from_json(p) for p in doc["processes"]]
    assert len(namespaces_with(prefix)) == 4
    assert all(netns.process_alive(r) for r in refs), "the servers outlive the crash"
    assert lab.state_path(tmp_path, prefix).exists()

    down = _cli("down", "--prefix", prefix, "--state-dir", str(tmp_path), "-o", "json")
    assert down.returncode == 0, down.stderr
    report = json.loads(down.stdout)
    assert report["had_state"] is True
    assert {r.pid for r in refs} <= set(report["stopped_pids"])
    assert namespaces_with(prefix) == []
    assert not any(netns.process_alive(r) for r in refs)
    assert not lab.state_path(tmp_path, prefix).exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_a_holding_lab_tears_it_down(
    prefix: str, tmp_path: Path, sig: signal.Signals
) -> None:
    proc, doc = _start_holding(prefix, tmp_path)
    refs = [netns.ProcessRef.from_json(p) for p in doc["processes"]]
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "removed 4 namespace(s)" in err
    assert namespaces_with(prefix) == []
    assert not any(netns.process_alive(r) for r in refs)
    assert not lab.state_path(tmp_path, prefix).exists()

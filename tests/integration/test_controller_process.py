"""``egressguard controller`` as real processes: election, HTTP endpoints, JSON logs, SIGTERM.

Two controller processes share one Lease on the kmock-based API server (real HTTP on
loopback) and read a loopback feed. The test reads their ``/healthz``, ``/readyz`` and
``/metrics`` over HTTP, sends SIGTERM to the leader and checks the clean exit (status 0, the
Lease released) and the handover. A real Prometheus scrapes a controller in the last test.
Every process is killed in ``finally``; every wait is bounded; no duration is asserted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from feedserver import FeedServer, Route, feed_server
from kubeapi import KubeApi, serve

pytestmark = [pytest.mark.integration, pytest.mark.slow]
__all__ = ["feed_server"]

FEED = ["192.0.2.0/25", "198.51.100.0/24", "2001:db8:1::/48"]


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except OSError as exc:  # not listening yet, connection reset
            last = exc
        else:
            if last:
                return last
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what} (last: {last!r})")


def free_port() -> int:
    """A free loopback port (the socket is closed before the port is handed out)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def http(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - loopback
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


class Controller:
    """A controller process whose stderr (JSON lines) is collected by a thread."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "egressguard", "controller", *argv],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def events(self, name: str) -> list[dict[str, Any]]:
        out = []
        for line in list(self.lines):
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if doc.get("event") == name:
                out.append(doc)
        return out

    @property
    def url(self) -> str:
        (started,) = wait_for(lambda: self.events("started"), "the controller to start")
        return f"http://{started['listen']}"

    def metric(self, series: str) -> float | None:
        _, text = http(self.url + "/metrics")
        for line in text.splitlines():
            if line.startswith(series + " "):
                return float(line.rsplit(" ", 1)[1])
        return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._reader.join(timeout=10)
        if self.proc.stderr is not None and not self._reader.is_alive():
            self.proc.stderr.close()


def write_config(path: Path, url: str) -> None:
    path.write_text(
        f"""\
apiVersion: egressguard.io/v1alpha1
kind: Blocklist
metadata: {{name: demo}}
spec:
  sources:
  - {{name: feed, url: "{url}", format: plain, insecure_http: true, attempts: 1,
     interval: 1h}}
  output: {{api: projectcalico.org/v3}}
"""
    )


def serve_feed(feed: FeedServer, entries: list[str]) -> None:
    feed.routes["/feed.txt"] = Route(body="".join(f"{e}\n" for e in entries).encode())


def lease(api: KubeApi) -> dict[str, Any]:
    found = api.objects("leases", group="coordination.k8s.io")
    if not found:
        return {}
    (obj,) = found.values()
    spec: dict[str, Any] = obj.get("spec") or {}
    return spec


@pytest.fixture
def cluster(tmp_path: Path, feed_server: FeedServer) -> Iterator[tuple[KubeApi, Path]]:
    serve_feed(feed_server, FEED)
    config = tmp_path / "blocklist.yaml"
    write_config(config, feed_server.url("/feed.txt"))
    with serve(tmp_path) as api:
        yield api, config


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., Controller]]:
    started: list[Controller] = []

    def start(api: KubeApi, config: Path, identity: str, *extra: str) -> Controller:
        controller = Controller(
            [
                "-c", str(config), "--kubeconfig", str(api.kubeconfig),
                "--state-dir", str(tmp_path / f"state-{identity}"),
                "--listen", "127.0.0.1:0", "--identity", identity,
                "--lease-duration", "3", "--renew-deadline", "2", "--retry-period", "0.3",
                *extra,
            ]
        )  # fmt: skip
        started.append(controller)
        return controller

    try:
        yield start
    finally:
        for controller in started:
            controller.stop()


def test_two_processes_elect_one_leader_and_sigterm_hands_over(
    cluster: tuple[KubeApi, Path],
    launch: Callable[..., Controller],
    feed_server: FeedServer,
) -> None:
    api, config = cluster
    procs = {"a": launch(api, config, "a"), "b": launch(api, config, "b")}

    holder = wait_for(lambda: lease(api).get("holderIdentity"), "a leader")
    leader = procs[holder]
    other = "b" if holder == "a" else "a"
    follower = procs[other]
    assert wait_for(lambda: http(leader.url + "/readyz")[0] == 200, "the leader's first apply")
    assert http(leader.url + "/readyz") == (200, f"leader {holder}; applied\n")
    assert wait_for(lambda: http(follower.url + "/readyz")[0] == 200, "the follower to be ready")
    assert http(follower.url + "/readyz") == (200, f"follower of {holder}\n")
    for proc in procs.values():
        assert http(proc.url + "/healthz") == (200, "ok\n")

    assert leader.metric(f'egressguard_leader{{identity="{holder}"}}') == 1
    assert follower.metric(f'egressguard_leader{{identity="{other}"}}') == 0
    calico_writes = [w for w in api.writes() if "/leases" not in w.path]
    assert leader.metric('egressguard_apply_writes_total{action="create"}') == len(calico_writes)
    assert follower.metric('egressguard_apply_writes_total{action="create"}') == 0
    assert leader.metric('egressguard_source_up{source="feed"}') == 1
    assert follower.metric('egressguard_source_up{source="feed"}') is None  # never refreshed
    serve_feed(feed_server, [*FEED, "203.0.113.0/24"])  # a new route: hits from 0
    leader.proc.send_signal(signal.SIGTERM)
    assert leader.proc.wait(timeout=30) == 0
    leader.stop()  # collect the rest of its log
    assert lease(api).get("holderIdentity") in ("", other)  # released on the way out
    (released,) = leader.events("leader.released")
    assert released["released"] is True
    assert leader.events("shutdown")[0]["signal"] == "SIGTERM"
    assert leader.events("stopped")[0]["clean"] is True

    wait_for(lambda: lease(api).get("holderIdentity") == other, "the follower to take over")
    wait_for(
        lambda: http(follower.url + "/readyz") == (200, f"leader {other}; applied\n"),
        "the new leader's first apply",
    )
    shard = api.objects("globalnetworksets")["demo-v4"]
    assert "203.0.113.0/24" in shard["spec"]["nets"]
    assert feed_server.routes["/feed.txt"].hits >= 1  # the new leader downloaded it
    assert follower.metric('egressguard_apply_writes_total{action="update"}') == 2

    follower.stop()
    assert follower.proc.returncode == 0
    assert lease(api).get("holderIdentity") == ""
    for proc in procs.values():
        docs = [json.loads(line) for line in proc.lines]  # every line is one JSON object
        assert docs
        assert all({"time", "level", "logger", "msg"} <= set(doc) for doc in docs)


def test_the_deployment_contract_pod_name_and_namespace_from_the_environment(
    cluster: tuple[KubeApi, Path], tmp_path: Path
) -> None:
    """deploy/controller passes only -c; identity and Lease namespace come from the
    downward API (POD_NAME, POD_NAMESPACE)."""
    api, config = cluster
    env = {**os.environ, "POD_NAME": "egressguard-controller-7d9f-x1", "POD_NAMESPACE": "ops"}
    controller = Controller(
        [
            "-c", str(config), "--kubeconfig", str(api.kubeconfig),
            "--state-dir", str(tmp_path / "state"), "--listen", "127.0.0.1:0",
        ],
        env=env,
    )  # fmt: skip
    try:
        wait_for(lambda: http(controller.url + "/readyz")[0] == 200, "the first apply")
        (obj,) = api.objects("leases", group="coordination.k8s.io").values()
        assert obj["metadata"]["namespace"] == "ops"
        assert obj["metadata"]["name"] == "egressguard-controller"
        assert obj["spec"]["holderIdentity"] == "egressguard-controller-7d9f-x1"
        (started,) = controller.events("started")
        assert started["state_dir"] == str(tmp_path / "state" / "demo")
    finally:
        controller.stop()
    assert controller.proc.returncode == 0


def test_a_bad_config_exits_1_with_located_problems(tmp_path: Path) -> None:
    config = tmp_path / "blocklist.yaml"
    config.write_text(
        "apiVersion: egressguard.io/v1alpha1\nkind: Blocklist\nmetadata: {name: demo}\n"
        "spec:\n  sources:\n  - {name: feed, url: 'https://x', format: plainn}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "egressguard", "controller", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert f"{config}:6 spec.sources[0].format" in done.stderr


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus is not installed")
def test_prometheus_scrapes_the_controller(
    cluster: tuple[KubeApi, Path], launch: Callable[..., Controller], tmp_path: Path
) -> None:
    api, config = cluster
    controller = launch(api, config, "solo", "--no-leader-election")
    wait_for(lambda: http(controller.url + "/readyz")[0] == 200, "the first apply")
    _, text = http(controller.url + "/metrics")
    check = subprocess.run(
        ["promtool", "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr

    target = controller.url.removeprefix("http://")
    prom_config = tmp_path / "prometheus.yml"
    prom_config.write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n  - job_name: egressguard-controller\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    web = free_port()
    prometheus = subprocess.Popen(
        [
            "prometheus", f"--config.file={prom_config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{web}", "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{web}"

        def query(promql: str) -> float | None:
            _, body = http(base + "/api/v1/query?query=" + urllib.parse.quote(promql))
            answer = json.loads(body)
            result = answer["data"]["result"]
            return float(result[0]["value"][1]) if result else None

        wait_for(lambda: http(base + "/-/ready")[0] == 200, "Prometheus to start")
        wait_for(lambda: query('up{job="egressguard-controller"}') == 1.0, "a scrape")
        assert query('egressguard_source_up{source="feed"}') == 1
        assert query('egressguard_set_entries{family="ipv4"}') == 2
        assert query('egressguard_set_entries{family="ipv6"}') == 1
        assert query('egressguard_leader{identity="solo"}') == 1
        assert query('egressguard_builds_total{result="ok"}') == 1
        assert query("egressguard_apply_errors_total") == 0
    finally:
        prometheus.terminate()
        try:
            prometheus.wait(timeout=20)
        except subprocess.TimeoutExpired:
            prometheus.kill()
            prometheus.wait(timeout=10)

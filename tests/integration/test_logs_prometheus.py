"""A real Prometheus scrapes ``logs follow --metrics-port`` and answers PromQL about it.

The follower reads a log file (some lines there before it starts, some appended after); the
exposition must pass ``promtool check metrics``; Prometheus (Debian's /usr/bin/prometheus) runs
on loopback with a temporary config and storage directory, scraping every second; the test
asks its HTTP API for the counters. Both processes are killed in ``finally``; every wait is
bounded.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus is not installed"),
]

HEAD = "2025-01-19T16:13:46.406155+00:00 aks-1 kernel: [ 6236.551431] "
TCP = (
    "calico-packet: IN=azv1 OUT=eth0 SRC=10.244.0.5 DST=203.0.113.9 LEN=60 TOS=0x00 PREC=0x00 "
    "TTL=63 ID={n} DF PROTO=TCP SPT={port} DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0 "
)
UDP = (
    "calico-packet: IN=azv1 OUT=eth0 SRC=10.244.0.5 DST=198.51.100.53 LEN=40 TOS=0x00 PREC=0x00 "
    "TTL=63 ID={n} PROTO=UDP SPT={port} DPT=53 LEN=20 "
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def get(url: str, timeout: float = 5) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310  (loopback)
        body: bytes = response.read()
    return body


def wait_until(check: object, timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()  # type: ignore[operator]
            if last:
                return last
        except OSError as exc:  # not listening yet
            last = exc
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}: {last!r}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def follower(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    log = tmp_path / "messages"
    lines = [HEAD + TCP.format(n=n, port=40000) for n in (1, 2, 3)]  # one flow, SYN retries
    lines.append(HEAD + UDP.format(n=4, port=50000))
    lines.append(HEAD.replace(" kernel: ", " root: ") + TCP.format(n=5, port=1))  # forged
    lines.append("2025-01-19T16:13:47Z aks-1 sshd[9]: Accepted publickey")  # not a packet
    log.write_text("\n".join(lines) + "\n")
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "egressguard", "logs", "follow", "--source", f"file:{log}",
            "--from-start", "--poll", "0.05", "--prefix", "calico-packet", "--metrics-port",
            str(port), "--duration", "240",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield log, port
    finally:
        stop(proc)


def test_prometheus_scrapes_the_follower(follower: tuple[Path, int], tmp_path: Path) -> None:
    log, port = follower
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    wait_until(lambda: b"egressguard_blocked_packets_total{" in get(metrics_url), 30, "metrics")
    with log.open("a") as f:  # appended while following: a second TCP flow
        f.write(HEAD + TCP.format(n=6, port=40001) + "\n")

    def appended() -> str | None:
        body = get(metrics_url).decode()
        return body if 'proto="TCP"} 4' in body else None

    text = wait_until(appended, 30, "the appended line in /metrics")
    check = subprocess.run(
        ["promtool", "check", "metrics"],
        input=str(text),
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert check.returncode == 0, check.stdout + check.stderr

    web = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: egressguard\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    )
    prometheus = subprocess.Popen(
        [
            "prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{web}", "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        api = f"http://127.0.0.1:{web}/api/v1/query?query="

        def query(promql: str) -> float | None:
            answer = json.loads(get(api + urllib.parse.quote(promql)))
            assert answer["status"] == "success"
            result = answer["data"]["result"]
            return float(result[0]["value"][1]) if result else None

        wait_until(lambda: get(f"http://127.0.0.1:{web}/-/ready"), 60, "Prometheus to start")
        wait_until(lambda: query('up{job="egressguard"}') == 1.0, 60, "a successful scrape")
        assert query('sum(egressguard_blocked_packets_total{proto="TCP"})') == 4
        assert query('sum(egressguard_blocked_flows_total{proto="TCP"})') == 2
        assert query('egressguard_blocked_packets_total{proto="UDP",set="unknown"}') == 1
        assert query('egressguard_log_parse_issues_total{code="not-kernel"}') == 1
        assert query('egressguard_log_lines_total{result="skipped"}') == 1
        assert query("sum(egressguard_blocked_packets_by_feed_total)") == 5
        lag = query("egressguard_log_lag_seconds")
        assert lag is not None
        assert lag > 0  # the lines are from January 2025
    finally:
        stop(prometheus)

"""``logs follow`` with enrichment in a real process: a file that grows, network sets and pods
from files, SYN retries folded into one event that is written once the log has been quiet for
the window, and the Prometheus labels filled with the enrichment."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LINE = (
    "{time} node-1 kernel: [ 100.000000] calico-packet: IN=cali1 OUT=eth0 "
    "SRC=10.244.0.179 DST={dst} LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID={n} DF PROTO=TCP "
    "SPT={port} DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0 "
)
PODS = {
    "apiVersion": "v1",
    "kind": "List",
    "items": [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "shop",
                "namespace": "web",
                "creationTimestamp": "2020-01-01T00:00:00Z",
            },
            "spec": {"nodeName": "node-1"},
            "status": {"phase": "Running", "podIP": "10.244.0.179"},
        }
    ],
}


def stamp(when: float) -> str:
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{int(when % 1 * 1e6):06d}+00:00"
    )


def test_follow_enriches_folds_retries_and_labels_metrics(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    log.write_text("")
    pods = tmp_path / "pods.yaml"
    pods.write_text(yaml.safe_dump(PODS))
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "egressguard", "logs", "follow", "--source", f"file:{log}",
            "--from-start", "--poll", "0.05", "--duration", "60",
            "--manifests", str(ROOT / "examples" / "blog"), "--pods", str(pods),
            "--dedup-window", "2", "--metrics-port", "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        announced = proc.stderr.readline()
        found = re.search(r"http://\S+/metrics", announced)
        assert found, announced
        url = found.group(0)
        now = time.time()
        with log.open("a") as fh:  # a SYN and its first retry, then another connection
            fh.write(LINE.format(time=stamp(now), dst="217.160.0.92", n=1, port=40001) + "\n")
            fh.write(LINE.format(time=stamp(now + 1), dst="217.160.0.92", n=2, port=40001) + "\n")
            fh.write(LINE.format(time=stamp(now + 1), dst="203.0.113.9", n=3, port=40002) + "\n")
        # nothing more is logged: the windows close on the quiet log, both events come out
        # and are counted before the follower is stopped
        deadline = time.monotonic() + 30
        text = ""
        while time.monotonic() < deadline:
            with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - loopback
                text = answer.read().decode()
            if 'set="egress-traffic-blocking"' in text and 'set="unknown"' in text:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)  # a clean stop: the follower flushes and exits 0
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    got = [
        (e["ip_id"], e["repeat_count"], e["set"], e["src_namespace"], e["src_pod"]) for e in events
    ]
    assert got == [
        (1, 2, "egress-traffic-blocking", "web", "shop"),
        (3, 1, None, "web", "shop"),
    ]
    assert (
        'egressguard_blocked_packets_total{set="egress-traffic-blocking",country="unknown",'
        'namespace="web",proto="TCP"} 2' in text
    )
    assert (
        'egressguard_blocked_flows_total{set="egress-traffic-blocking",country="unknown",'
        'namespace="web",proto="TCP"} 1' in text
    )

"""The pod watch (``adapters.kube_pods``) against a real HTTP API server on loopback.

The server is ``kubeapi`` (kmock) with pods and watch streams from ``kubepods``. The watch must
deliver a node's pods as a complete list, then their changes, resume after a dropped stream
from the last version it saw, list again after a 410, and keep a ``PodIndex`` right through all
of it; ``logs follow --kube`` attributes events to the pod that had the address at the time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from egressguard.adapters.kube_pods import KubePodWatch, PodChange, connect_pods
from egressguard.logs.enrich import PodIndex

sys.path.insert(0, str(Path(__file__).parent))
from kubeapi import KubeApi, serve
from kubepods import PodsApi, pod, pods_api

pytestmark = pytest.mark.integration


@pytest.fixture
def api(tmp_path: Path) -> Iterator[KubeApi]:
    with serve(tmp_path) as server:
        yield server


@pytest.fixture
def pods(api: KubeApi) -> Iterator[PodsApi]:
    with pods_api(api) as served:
        yield served


class Running:
    """A watch running in a thread, its changes collected."""

    def __init__(self, watch: KubePodWatch) -> None:
        self.watch = watch
        self.changes: list[PodChange] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.watch.run(self._sink, self.stop)
        except BaseException as exc:
            self.error = exc

    def _sink(self, change: PodChange) -> None:
        with self.lock:
            self.changes.append(change)

    def wait(self, predicate: Callable[[list[PodChange]], bool], timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(list(self.changes)):
                    return
            assert self.error is None, self.error
            time.sleep(0.02)
        raise AssertionError(f"not seen within {timeout}s: {[c.type for c in self.changes]}")

    def close(self) -> None:
        self.stop.set()
        self.watch.stop()
        self.thread.join(timeout=10)
        self.watch.close()
        assert not self.thread.is_alive()


@pytest.fixture
def running(api: KubeApi, pods: PodsApi) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(**kwargs: Any) -> Running:
        watch = connect_pods(api.kubeconfig, **kwargs)
        started.append(Running(watch))
        return started[-1]

    yield start
    for r in started:
        r.close()


def names(change: PodChange) -> list[str]:
    return sorted(p["metadata"]["name"] for p in change.pods)


def test_lists_the_nodes_pods_then_streams_their_changes(
    pods: PodsApi, running: Callable[..., Running]
) -> None:
    pods.create(pod("web", "10.244.1.5"))
    pods.create(pod("db", "10.244.1.6"))
    pods.create(pod("elsewhere", "10.244.2.9", node="node-2"))
    r = running(node="node-1")
    r.wait(lambda cs: any(c.type == "SYNC" for c in cs))
    assert names(r.changes[0]) == ["db", "web"]
    assert pods.list_requests[0]["fieldSelector"] == "spec.nodeName=node-1"
    r.wait(lambda cs: pods.open_watches() == 1)
    pods.create(pod("new", "10.244.1.7"))
    pods.create(pod("other-node", "10.244.2.8", node="node-2"))
    pods.delete("prod", "web")
    r.wait(lambda cs: [c.type for c in cs] == ["SYNC", "ADDED", "DELETED"])
    assert r.changes[1].pod["metadata"]["name"] == "new"
    assert r.changes[2].pod["metadata"]["name"] == "web"
    watch = pods.watch_requests[0]
    assert watch["fieldSelector"] == "spec.nodeName=node-1"
    assert watch["allowWatchBookmarks"] == "true"
    assert int(watch["resourceVersion"]) >= 3  # resumed from the list, not from scratch


def test_a_dropped_stream_resumes_from_the_last_version(
    pods: PodsApi, running: Callable[..., Running]
) -> None:
    pods.create(pod("a", "10.244.1.5"))
    r = running(node="node-1")
    r.wait(lambda cs: pods.open_watches() == 1)
    pods.create(pod("b", "10.244.1.6"))
    r.wait(lambda cs: len(cs) == 2)
    pods.drop_watches()
    pods.create(pod("c", "10.244.1.7"))  # while no watch is open
    r.wait(lambda cs: [c.type for c in cs] == ["SYNC", "ADDED", "ADDED"], timeout=20)
    assert r.changes[2].pod["metadata"]["name"] == "c"
    assert len(pods.list_requests) == 1  # no second list: the watch resumed
    assert int(pods.watch_requests[1]["resourceVersion"]) > int(
        pods.watch_requests[0]["resourceVersion"]
    )


def test_410_gone_lists_again_and_the_index_closes_what_vanished(
    pods: PodsApi, running: Callable[..., Running]
) -> None:
    pods.create(pod("a", "10.244.1.5"))
    pods.create(pod("b", "10.244.1.6"))
    r = running(node="node-1")
    r.wait(lambda cs: pods.open_watches() == 1)
    pods.compact()  # the watch's version is gone from the server's history ...
    pods.drop_watches()  # ... and the stream ends: resuming gets 410
    pods.delete("prod", "b")  # missed by the watch: only the new list shows it
    r.wait(lambda cs: [c.type for c in cs].count("SYNC") == 2, timeout=20)
    second = [c for c in r.changes if c.type == "SYNC"][1]
    assert names(second) == ["a"]
    index = PodIndex()
    t0 = time.time()
    for change in r.changes:
        if change.type == "SYNC":
            index.resync(change.pods, now=t0 + len(index))
        else:
            index.observe(change.pod, now=t0, deleted=change.type == "DELETED")
    assert index.lookup("10.244.1.5") is not None
    b = index.lookup("10.244.1.6")
    assert b is not None
    assert b.end is not None  # closed by the second list, not left running forever


def test_unauthorized_is_permanent(api: KubeApi, pods: PodsApi, tmp_path: Path) -> None:
    config = api.kubeconfig.read_text().replace("egressguard-test-token", "wrong")
    bad = tmp_path / "bad-kubeconfig"
    bad.write_text(config)
    watch = connect_pods(bad, node="node-1")
    try:
        with pytest.raises(Exception, match="401"):
            watch.run(lambda change: None, threading.Event())
    finally:
        watch.close()


LINE = (
    "{time} node-1 kernel: [ 100.000000] calico-packet: IN=cali1 OUT=eth0 "
    "SRC={src} DST=203.0.113.9 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID={n} DF PROTO=TCP "
    "SPT={port} DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0 "
)


def stamp(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + ".000000+00:00"


def test_cli_follow_kube_attributes_a_reused_address_by_time(
    api: KubeApi, pods: PodsApi, tmp_path: Path
) -> None:
    """Pod 'old' has 10.244.1.5 and is deleted; pod 'new' gets the same address. Events
    from before and after the switch name the right pod; a host-network pod is never named."""
    pods.create(pod("old", "10.244.1.5", created="2020-01-01T00:00:00Z"))
    pods.create(pod("agent", "10.244.1.99", namespace="kube-system", host_network=True))
    log = tmp_path / "messages"
    log.write_text("")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "egressguard", "logs", "follow", "--source", f"file:{log}",
            "--poll", "0.05", "--max-events", "3", "--duration", "60", "--kube",
            "--kubeconfig", str(api.kubeconfig), "--node", "node-1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while pods.open_watches() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pods.open_watches() == 1
        before = time.time()
        with log.open("a") as fh:
            fh.write(LINE.format(time=stamp(before), src="10.244.1.5", n=1, port=40001) + "\n")
            fh.write(LINE.format(time=stamp(before), src="10.244.1.99", n=2, port=40002) + "\n")
        time.sleep(1.5)
        pods.delete("prod", "old")
        time.sleep(3)  # past the old span's end and its slack
        pods.create(pod("new", "10.244.1.5"))
        time.sleep(3)  # the change reaches the follower (its watch), the clocks move on
        with log.open("a") as fh:
            fh.write(LINE.format(time=stamp(time.time()), src="10.244.1.5", n=3, port=40003) + "\n")
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [(e["ip_id"], e["src_namespace"], e["src_pod"]) for e in events] == [
        (1, "prod", "old"),
        (2, None, None),
        (3, "prod", "new"),
    ]


def test_cli_parse_kube_lists_the_pods_once(
    api: KubeApi,
    pods: PodsApi,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from egressguard.cli import main

    monkeypatch.delenv("NODE_NAME", raising=False)

    pods.create(pod("web", "10.244.1.5", created="2020-01-01T00:00:00Z"))
    pods.create(pod("far", "10.244.2.5", node="node-2", created="2020-01-01T00:00:00Z"))
    log = tmp_path / "messages"
    log.write_text(
        LINE.format(time=stamp(time.time()), src="10.244.1.5", n=1, port=1) + "\n"
        + LINE.format(time=stamp(time.time()), src="10.244.2.5", n=2, port=2) + "\n"
    )  # fmt: skip
    args = ["logs", "parse", str(log), "--kube", "--kubeconfig", str(api.kubeconfig)]
    assert main([*args, "--node", "node-1"]) == 0
    events = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [e["src_pod"] for e in events] == ["web", None]  # the other node's pod is not listed
    assert main(args) == 0  # no node: every pod of the cluster
    events = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [e["src_pod"] for e in events] == ["web", "far"]
    assert pods.watch_requests == []  # parse lists, it does not watch

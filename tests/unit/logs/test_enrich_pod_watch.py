"""The pod watch's contract as the follower uses it, on the in-package fake: changes in order,
then waiting for stop; a PodIndex fed from them; the adapter's public names; the error of
connect_pods without a configuration."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from egressguard.adapters import kube_pods
from egressguard.adapters.kube_pods import FakePodWatch, PodChange, connect_pods
from egressguard.errors import KubeError
from egressguard.logs.enrich import PodIndex, parse_time


def pod(name: str, ip: str) -> dict[str, object]:
    return {
        "metadata": {"name": name, "namespace": "prod", "uid": name,
                     "creationTimestamp": "2025-01-19T16:00:00Z"},
        "status": {"phase": "Running", "podIP": ip},
    }  # fmt: skip


def test_fake_replays_changes_then_waits_for_stop() -> None:
    changes = [
        PodChange("SYNC", pods=(pod("a", "10.0.0.1"),)),
        PodChange("ADDED", pod=pod("b", "10.0.0.2")),
        PodChange("DELETED", pod=pod("a", "10.0.0.1")),
    ]
    seen: list[PodChange] = []
    stop = threading.Event()
    watch = FakePodWatch(changes)
    thread = threading.Thread(target=watch.run, args=(seen.append, stop))
    thread.start()
    thread.join(timeout=0.3)
    assert thread.is_alive()  # replayed everything and now waits
    assert seen == changes
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()

    t = parse_time("2025-01-19T17:00:00Z")
    assert t is not None
    index = PodIndex(slack=0.0)
    for change in seen:
        if change.type == "SYNC":
            index.resync(change.pods, now=t)
        else:
            index.observe(change.pod, now=t + 60, deleted=change.type == "DELETED")
    a_then = index.lookup("10.0.0.1", t + 30)
    assert a_then is not None
    assert a_then.name == "a"
    assert index.lookup("10.0.0.1", t + 90) is None  # deleted at t + 60
    assert index.lookup("10.0.0.2", t + 90) is not None


def test_stop_from_another_thread() -> None:
    watch = FakePodWatch([])
    thread = threading.Thread(target=watch.run, args=(lambda c: None, threading.Event()))
    thread.start()
    watch.stop()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_exports() -> None:
    assert set(kube_pods.__all__) == {
        "FakePodWatch",
        "KubePodWatch",
        "PodChange",
        "PodWatch",
        "connect_pods",
    }
    for name in kube_pods.__all__:
        assert hasattr(kube_pods, name)


def test_connect_without_a_configuration_explains_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(KubeError, match="cannot load the Kubernetes configuration") as info:
        connect_pods(tmp_path / "no-kubeconfig", node="node-1")
    assert str(tmp_path / "no-kubeconfig") in info.value.message
    assert "--kubeconfig" in str(info.value.hint)

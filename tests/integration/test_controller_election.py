"""Two controllers, one Lease: only the leader refreshes and writes; a stop hands over.

Both controllers run their real threads (election and loop) in this process, against the
kmock-based API server over real HTTP, with short lease timings. Each replica fetches the feed
under its own query string, so the feed server tells who downloaded; each replica's cluster
client is wrapped in an observer that records the writes that replica sent. Every wait is
bounded; no duration is asserted.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from egressguard.adapters.http import HttpxFetcher, NullProgress
from egressguard.adapters.kube import CalicoApi, KubeClient, ObjectRef
from egressguard.adapters.records import DirectoryRecordStore
from egressguard.adapters.state import DirectoryStateStore
from egressguard.app.apply import TrackingLoader
from egressguard.app.config import parse_config
from egressguard.app.controller import Controller, ControllerSettings
from egressguard.app.leader import ElectionConfig, LeaderElector

sys.path.insert(0, str(Path(__file__).parent))
from feedserver import FeedServer, Route, feed_server
from kubeapi import KubeApi, serve

pytestmark = pytest.mark.integration
__all__ = ["feed_server"]

NS = "egressguard-system"
LEASE = "egressguard-controller"
FEED = ["192.0.2.0/25", "198.51.100.0/24"]


class WriteObserver:
    """A real cluster client, passed through; remembers the writes this replica sent."""

    def __init__(self, inner: KubeClient) -> None:
        self.inner = inner
        self.writes: list[str] = []

    def served_calico_api(self) -> CalicoApi:
        return self.inner.served_calico_api()

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        return self.inner.get(ref)

    def list_owned(
        self, api_version: str, kind: str, *, labels: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        return self.inner.list_owned(api_version, kind, labels=labels)

    def apply(self, obj: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        self.writes.append(f"apply {obj['kind']}/{obj['metadata']['name']}")
        return self.inner.apply(obj, dry_run=dry_run)

    def delete(self, ref: ObjectRef, *, dry_run: bool = False) -> None:
        self.writes.append(f"delete {ref.kind}/{ref.name}")
        self.inner.delete(ref, dry_run=dry_run)


@dataclass
class Replica:
    name: str
    controller: Controller
    observer: WriteObserver
    route: str


def wait_for(check: Callable[[], object], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def lease_spec(api: KubeApi) -> dict[str, Any]:
    leases = api.objects("leases", group="coordination.k8s.io")
    if not leases:
        return {}
    (lease,) = leases.values()
    spec: dict[str, Any] = lease.get("spec") or {}
    return spec


def serve_feed(feed: FeedServer, entries: list[str]) -> None:
    body = "".join(f"{e}\n" for e in entries).encode()
    for who in ("a", "b"):
        feed.routes[f"/feed.txt?r={who}"] = Route(body=body)


@pytest.fixture
def replicas(tmp_path: Path, feed_server: FeedServer) -> Iterator[tuple[KubeApi, list[Replica]]]:
    serve_feed(feed_server, FEED)
    made: list[Replica] = []
    clients: list[KubeClient] = []
    with serve(tmp_path) as api:
        try:
            for who in ("a", "b"):
                route = f"/feed.txt?r={who}"
                config = parse_config(
                    f"""\
apiVersion: egressguard.io/v1alpha1
kind: Blocklist
metadata: {{name: demo}}
spec:
  sources:
  - {{name: feed, url: "{feed_server.url(route)}", format: plain, insecure_http: true,
     attempts: 1, interval: 1h}}
  output: {{api: projectcalico.org/v3}}
""",
                    str(tmp_path / f"{who}.yaml"),
                )
                state = tmp_path / f"state-{who}" / "demo"
                client = api.client()
                clients.append(client)
                observer = WriteObserver(client)
                elector = LeaderElector(
                    client,
                    ElectionConfig(
                        NS, LEASE, who, lease_duration=2, renew_deadline=1.5, retry_period=0.2
                    ),
                )
                controller = Controller(
                    config,
                    loader=TrackingLoader(
                        fetcher=HttpxFetcher(progress=NullProgress(), sleep=lambda _s: None),
                        state=DirectoryStateStore(state),
                    ),
                    client=observer,
                    records=DirectoryRecordStore(state),
                    elector=elector,
                    identity=who,
                    settings=ControllerSettings(resync=600, tick=0.05),
                    rng=random.Random(who),
                )
                made.append(Replica(who, controller, observer, route))
            yield api, made
        finally:
            for replica in made:
                replica.controller.stop(grace=10)
            for client in clients:
                client.close()


def test_one_leader_writes_and_a_stop_hands_over(
    replicas: tuple[KubeApi, list[Replica]], feed_server: FeedServer
) -> None:
    api, (a, b) = replicas
    a.controller.start()
    b.controller.start()

    holder = wait_for(lambda: lease_spec(api).get("holderIdentity"), "a leader")
    leader, follower = (a, b) if holder == "a" else (b, a)
    wait_for(lambda: leader.controller.ready()[0], "the leader's first apply")
    wait_for(lambda: follower.controller.ready()[0], "the follower to see the leader")
    assert follower.controller.ready() == (True, f"follower of {leader.name}")

    calico_writes = [w for w in api.writes() if "/leases" not in w.path]
    assert len(leader.observer.writes) == len(calico_writes) == 3  # tier, shard, policy
    assert follower.observer.writes == []
    assert feed_server.routes[follower.route].hits == 0  # followers do not hit providers
    assert feed_server.routes[leader.route].hits >= 1

    serve_feed(feed_server, [*FEED, "203.0.113.0/24"])
    transitions = lease_spec(api).get("leaseTransitions", 0)
    assert leader.controller.stop(grace=10) is True
    spec = lease_spec(api)
    assert spec["holderIdentity"] in ("", follower.name)  # released, or already taken over
    written_by_old_leader = list(leader.observer.writes)

    wait_for(lambda: lease_spec(api).get("holderIdentity") == follower.name, "the follower to lead")

    def follower_applied() -> bool:
        shard = api.objects("globalnetworksets").get("demo-v4")
        return bool(shard) and "203.0.113.0/24" in shard["spec"]["nets"]

    wait_for(follower_applied, "the new leader to apply the changed feed")
    wait_for(
        lambda: follower.controller.ready() == (True, f"leader {follower.name}; applied"),
        "the new leader's apply to complete",
    )
    assert follower.observer.writes == [
        "apply GlobalNetworkSet/demo-v4",
        "apply GlobalNetworkPolicy/egressguard.demo",
    ]
    assert leader.observer.writes == written_by_old_leader
    assert feed_server.routes[follower.route].hits >= 1
    assert lease_spec(api)["leaseTransitions"] > transitions
    assert follower.controller.health() == (True, "ok")

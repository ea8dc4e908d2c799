"""The controller end to end, one cycle at a time, over real HTTP on loopback.

Real pieces: the kmock-based API server (``kubeapi.py``) reached through egressguard's
lightkube adapter, a loopback feed server (``feedserver.py``) reached through the real HTTP
fetcher, a state directory and records on disk, and the controller's HTTP endpoint
(``/healthz``, ``/readyz``, ``/metrics``) read with urllib. Time is a manual clock, so a
"day" passes without sleeping; the test drives ``cycle()`` itself.
"""

from __future__ import annotations

import json
import random
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from egressguard.adapters.http import HttpxFetcher, NullProgress
from egressguard.adapters.kube import KubeClient
from egressguard.adapters.metrics import MetricsServer
from egressguard.adapters.records import DirectoryRecordStore
from egressguard.adapters.state import DirectoryStateStore
from egressguard.app.apply import REFRESH_RECORD, TrackingLoader
from egressguard.app.config import parse_config
from egressguard.app.controller import Controller, ControllerSettings

sys.path.insert(0, str(Path(__file__).parent))
from feedserver import FeedServer, Route, feed_server
from kubeapi import KubeApi, serve

pytestmark = pytest.mark.integration
__all__ = ["feed_server"]

GNS = "/apis/projectcalico.org/v3/globalnetworksets"
GNP = "/apis/projectcalico.org/v3/globalnetworkpolicies"
FEED = ["192.0.2.0/26", "192.0.2.128/26", "198.51.100.0/25", "203.0.113.0/24"]
HOUR = 3600.0


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Running:
    api: KubeApi
    feed: FeedServer
    controller: Controller
    clock: Clock
    url: str
    state: Path

    def serve_feed(self, entries: list[str], **kw: object) -> None:
        body = "".join(f"{e}\n" for e in entries).encode()
        self.feed.routes["/feed.txt"] = Route(body=body, **kw)  # type: ignore[arg-type]

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as r:  # noqa: S310
                return int(r.status), r.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def metric(self, line_prefix: str) -> float | None:
        _, text = self.get("/metrics")
        for line in text.splitlines():
            if line.startswith(line_prefix + " "):
                return float(line.rsplit(" ", 1)[1])
        return None

    def nets(self) -> dict[str, list[str]]:
        return {n: o["spec"]["nets"] for n, o in self.api.objects("globalnetworksets").items()}

    def due(self) -> None:
        """Move the clock to when the feed is due next."""
        self.clock.t = self.controller._sources["feed"].next_due


@pytest.fixture
def running(tmp_path: Path, feed_server: FeedServer) -> Iterator[Running]:
    config = parse_config(
        f"""\
apiVersion: egressguard.io/v1alpha1
kind: Blocklist
metadata: {{name: demo}}
spec:
  sources:
  - {{name: feed, url: "{feed_server.url("/feed.txt")}", format: plain, insecure_http: true,
     attempts: 1, interval: 1h}}
  shards: {{max_entries: 2}}
  output: {{api: projectcalico.org/v3}}
""",
        str(tmp_path / "blocklist.yaml"),
        base_dir=str(tmp_path),
    )
    clock = Clock()
    state = tmp_path / "state" / "demo"
    loader = TrackingLoader(
        fetcher=HttpxFetcher(progress=NullProgress(), sleep=lambda _s: None),
        state=DirectoryStateStore(state),
        clock=clock,
    )
    with serve(tmp_path) as api:
        client: KubeClient = api.client()
        controller = Controller(
            config,
            loader=loader,
            client=client,
            records=DirectoryRecordStore(state),
            identity="replica-a",
            settings=ControllerSettings(resync=600, jitter=0.1),
            clock=clock,
            rng=random.Random(3),
        )
        server = MetricsServer(
            controller.render_metrics,
            probes={"/healthz": controller.health, "/readyz": controller.ready},
        )
        server.start()
        host, port = server.address
        run = Running(api, feed_server, controller, clock, f"http://{host}:{port}", state)
        run.serve_feed(FEED)
        try:
            yield run
        finally:
            server.stop()
            client.close()


def test_one_cycle_refreshes_builds_applies_and_reports(running: Running) -> None:
    assert running.get("/readyz") == (503, "leader replica-a; no successful build and apply yet\n")
    assert running.get("/healthz") == (200, "ok\n")

    running.controller.cycle()

    assert sorted(n for nets in running.nets().values() for n in nets) == sorted(FEED)
    assert "egressguard.demo" in running.api.objects("globalnetworkpolicies")
    assert running.get("/readyz") == (200, "leader replica-a; applied\n")
    assert running.metric('egressguard_source_up{source="feed"}') == 1
    assert running.metric('egressguard_set_entries{family="ipv4"}') == 4
    assert running.metric('egressguard_set_shards{family="ipv4"}') == len(running.nets())
    assert running.metric('egressguard_leader{identity="replica-a"}') == 1
    assert (
        running.metric('egressguard_source_last_success_timestamp_seconds{source="feed"}')
        == running.clock.t
    )
    assert running.get("/nothing") == (404, "not found\n")


def test_a_changed_feed_updates_its_shard_in_the_api_server(running: Running) -> None:
    running.controller.cycle()
    before = running.nets()
    mark = running.api.mark()

    running.serve_feed([*FEED[:3], "203.0.113.0/25"])
    running.due()
    running.controller.cycle()

    changed = [name for name, nets in running.nets().items() if before.get(name) != nets]
    assert len(changed) == 1
    assert "203.0.113.0/25" in running.nets()[changed[0]]
    written = sorted(w.path for w in running.api.writes(since=mark))
    assert written == sorted([f"{GNS}/{changed[0]}", f"{GNP}/egressguard.demo"])


def test_a_failing_feed_keeps_the_last_good_copy_and_the_metrics_say_so(
    running: Running,
) -> None:
    running.controller.cycle()
    before = running.nets()
    mark = running.api.mark()

    running.serve_feed(FEED, status=503)
    running.due()
    running.controller.cycle()

    assert running.api.writes(since=mark) == []
    assert running.nets() == before
    assert running.metric('egressguard_source_up{source="feed"}') == 0
    assert (
        running.metric(
            'egressguard_source_refreshes_total{source="feed",status="fallback-to-last-good"}'
        )
        == 1
    )
    assert running.metric('egressguard_source_consecutive_failures{source="feed"}') == 1
    last_success = running.metric(
        'egressguard_source_last_success_timestamp_seconds{source="feed"}'
    )
    assert last_success is not None
    assert last_success < running.clock.t
    assert running.metric('egressguard_set_entries{family="ipv4"}') == 4
    assert running.get("/readyz")[0] == 200  # still serving what it applied
    record = json.loads((running.state / f"{REFRESH_RECORD}.json").read_text())
    assert record["sources"]["feed"]["status"] == "fallback-to-last-good"
    assert "503" in record["sources"]["feed"]["reason"]

    retry = running.controller._sources["feed"].next_due - running.clock.t
    assert 30 <= retry <= 33  # backoff, not the hourly interval
    running.serve_feed(FEED)
    running.due()
    running.controller.cycle()
    assert running.metric('egressguard_source_up{source="feed"}') == 1
    assert running.metric('egressguard_source_consecutive_failures{source="feed"}') == 0


def test_a_source_that_is_not_due_is_not_requested(running: Running) -> None:
    running.controller.cycle()
    hits = running.feed.routes["/feed.txt"].hits

    running.clock.t += 0.9 * HOUR  # several resyncs, no refresh of the hourly feed yet
    for _ in range(3):
        running.controller.cycle()

    assert running.feed.routes["/feed.txt"].hits == hits
    running.due()
    running.controller.cycle()
    assert running.feed.routes["/feed.txt"].hits == hits + 1


def test_api_server_errors_are_counted_and_the_next_cycle_repairs(running: Running) -> None:
    running.api.inject(503, method="PATCH", plural="globalnetworksets", times=4)

    running.controller.cycle()

    assert running.metric("egressguard_apply_errors_total") == 1
    assert running.get("/readyz")[0] == 503
    running.clock.t = running.controller._next_sync
    running.controller.cycle()
    assert running.metric("egressguard_apply_errors_total") == 1
    assert running.get("/readyz")[0] == 200
    assert sorted(n for nets in running.nets().values() for n in nets) == sorted(FEED)

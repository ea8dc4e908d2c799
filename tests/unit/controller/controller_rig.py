"""Helpers for the controller's unit tests: a manual clock and a controller over fakes.

Sources are real local files in the test's directory (a file that goes missing is a failed
source); the cluster is the in-package ``FakeCluster``; time is a manual clock shared by the
controller, the source loader and the leader elector, so nothing sleeps.
"""

from __future__ import annotations

import random
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from egressguard.adapters.http import FakeFetcher
from egressguard.adapters.kube_fake import FakeCluster
from egressguard.adapters.records import MemoryRecordStore
from egressguard.adapters.state import MemoryStateStore
from egressguard.app.apply import TrackingLoader
from egressguard.app.config import BlocklistConfig, parse_config
from egressguard.app.controller import Controller, ControllerSettings
from egressguard.app.leader import LeaderElector

T0 = 1_800_000_000.0


class ManualClock:
    """Wall time (``clock()``, ``now()``) and monotonic time move together, by hand."""

    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t

    def now(self) -> datetime:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=self.t)

    def monotonic(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def write_list(path: Path, entries: list[str]) -> None:
    path.write_text("".join(f"{e}\n" for e in entries))


def blocklist(
    sources: str, *, name: str = "demo", extra: str = "", max_entries: int | None = None
) -> str:
    shards = f"\n  shards: {{max_entries: {max_entries}}}" if max_entries else ""
    return (
        "apiVersion: egressguard.io/v1alpha1\nkind: Blocklist\n"
        f"metadata: {{name: {name}}}\nspec:\n  sources:\n"
        + textwrap.indent(textwrap.dedent(sources).strip("\n"), "  ")
        + "\n  output: {api: projectcalico.org/v3}"
        + shards
        + (("\n" + textwrap.indent(textwrap.dedent(extra).strip("\n"), "  ")) if extra else "")
        + "\n"
    )


@dataclass
class Rig:
    controller: Controller
    cluster: FakeCluster
    clock: ManualClock
    loader: TrackingLoader
    records: MemoryRecordStore
    config: BlocklistConfig

    def nets(self) -> dict[str, list[str]]:
        return {
            o["metadata"]["name"]: list(o["spec"]["nets"])
            for o in self.cluster.objects("GlobalNetworkSet")
        }

    def written(self, since: int) -> list[str]:
        return [r.target for r in self.cluster.requests[since:] if r.is_write]


MakeRig = Callable[..., Rig]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def make_rig(tmp_path: Path, clock: ManualClock) -> MakeRig:
    def make(
        text: str,
        *,
        cluster: FakeCluster | None = None,
        elector: Callable[[FakeCluster], LeaderElector] | None = None,
        settings: ControllerSettings | None = None,
        seed: int = 7,
        **kw: Any,
    ) -> Rig:
        config = parse_config(text, str(tmp_path / "blocklist.yaml"), base_dir=str(tmp_path))
        cluster = cluster or FakeCluster()
        loader = TrackingLoader(fetcher=FakeFetcher({}), state=MemoryStateStore(), clock=clock)
        records = MemoryRecordStore()
        controller = Controller(
            config,
            loader=loader,
            client=cluster,
            records=records,
            elector=elector(cluster) if elector is not None else None,
            identity=kw.pop("identity", "replica-a"),
            settings=settings
            or ControllerSettings(resync=600, jitter=0.1, backoff_initial=30, backoff_max=3600),
            clock=clock,
            monotonic=clock.monotonic,
            rng=random.Random(seed),
            version="0.0.test",
        )
        return Rig(controller, cluster, clock, loader, records, config)

    return make

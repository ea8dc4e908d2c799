"""What the controller exposes: Prometheus text that promtool accepts, and JSON log lines."""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from controller_rig import MakeRig, Rig, blocklist, write_list

from egressguard.app.controller import JsonFormatter

SOURCES = """
- {name: good, file: good.txt, format: plain, interval: 1h}
- {name: flaky, file: flaky.txt, format: plain, interval: 6h}
- {name: pinned, static: [203.0.113.0/24, "2001:db8:9::/48"]}
"""
SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Parse the text format (what a scraper reads): (name, labels) → value."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m is not None, line
        labels = frozenset(re.findall(r'([a-z_]+)="([^"]*)"', m.group("labels") or ""))
        out[(m.group("name"), labels)] = float(m.group("value"))
    return out


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


@pytest.fixture
def rig(tmp_path: Path, make_rig: MakeRig) -> Rig:
    write_list(tmp_path / "good.txt", ["192.0.2.0/24", "198.51.100.0/25"])
    write_list(tmp_path / "flaky.txt", ["198.51.100.128/25", "2001:db8:1::/48"])
    rig = make_rig(blocklist(SOURCES, max_entries=1))
    rig.controller.cycle()
    (tmp_path / "flaky.txt").unlink()
    rig.clock.t = rig.controller._sources["flaky"].next_due
    rig.controller.cycle()
    return rig


def test_metrics_describe_sources_set_builds_and_leadership(rig: Rig) -> None:
    text = rig.controller.render_metrics()
    t0 = rig.clock.t
    first = rig.loader.last["good"][1]

    assert value(text, "egressguard_source_up", source="good") == 1
    assert value(text, "egressguard_source_up", source="flaky") == 0
    assert value(text, "egressguard_source_up", source="pinned") == 1
    assert value(text, "egressguard_source_last_success_timestamp_seconds", source="good") == first
    flaky_success = value(text, "egressguard_source_last_success_timestamp_seconds", source="flaky")
    flaky_attempt = value(text, "egressguard_source_last_attempt_timestamp_seconds", source="flaky")
    assert flaky_success is not None
    assert flaky_attempt == t0
    assert flaky_success < flaky_attempt
    assert value(text, "egressguard_source_consecutive_failures", source="flaky") == 1
    for status, n in (("fresh", 1), ("fallback-to-last-good", 1), ("not-modified", 0)):
        assert value(text, "egressguard_source_refreshes_total", source="flaky", status=status) == n
    # the last good copy still counts: nothing shrank
    assert value(text, "egressguard_source_cidrs", source="flaky", family="ipv6") == 1
    assert value(text, "egressguard_set_entries", family="ipv4") == 3
    assert value(text, "egressguard_set_entries", family="ipv6") == 2
    assert value(text, "egressguard_set_shards", family="ipv4") == 3  # one entry per shard
    assert value(text, "egressguard_builds_total", result="ok") == 2  # first, then resync
    assert value(text, "egressguard_apply_errors_total") == 0
    written = sum(
        value(text, "egressguard_apply_writes_total", action=a) or 0
        for a in ("create", "update", "prune")
    )
    assert written == len(rig.cluster.writes)
    assert value(text, "egressguard_leader", identity="replica-a") == 1
    assert value(text, "egressguard_ready") == 1
    assert value(
        text, "egressguard_controller_info", blocklist="demo", identity="replica-a",
        version="0.0.test",
    ) == 1  # fmt: skip
    build = value(text, "egressguard_build_duration_seconds")
    assert build is not None
    assert build >= 0


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_exposition(rig: Rig) -> None:
    check = subprocess.run(
        ["promtool", "check", "metrics"],
        input=rig.controller.render_metrics(),
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("egressguard")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def test_every_log_line_is_one_json_object_with_the_event_fields(
    tmp_path: Path, make_rig: MakeRig, json_log: io.StringIO
) -> None:
    write_list(tmp_path / "good.txt", ["192.0.2.0/24"])
    write_list(tmp_path / "flaky.txt", ["198.51.100.0/24"])
    rig = make_rig(blocklist(SOURCES))
    rig.controller.cycle()
    (tmp_path / "flaky.txt").unlink()
    rig.clock.t = rig.controller._sources["flaky"].next_due
    rig.controller.cycle()

    lines = json_log.getvalue().splitlines()
    docs = [json.loads(line) for line in lines]
    assert len(docs) == len(lines) > 0
    for doc in docs:
        assert {"time", "level", "logger", "msg"} <= set(doc)
    refreshes = [d for d in docs if d.get("event") == "source.refresh"]
    assert {(d["source"], d["status"]) for d in refreshes} == {
        ("good", "fresh"),
        ("flaky", "fresh"),
        ("pinned", "fresh"),
        ("flaky", "fallback-to-last-good"),
        ("good", "not-modified"),  # due again too: hourly
    }
    failed = next(d for d in refreshes if d["status"] == "fallback-to-last-good")
    assert failed["level"] == "warning"
    assert "flaky.txt" in failed["reason"]
    first, resync = [d for d in docs if d.get("event") == "apply.done"]
    assert first["changes"]["create"] == 4
    assert first["ipv4_cidrs"] == 3
    assert resync["changes"] == {"create": 0, "update": 0, "unchanged": 4, "prune": 0}


def test_the_formatter_survives_values_that_are_not_json() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom %s", ("!",), None)
    record.path = Path("/tmp/x")  # not JSON serialisable
    record.event = "test"
    try:
        raise ValueError("inner")
    except ValueError:
        record.exc_info = sys.exc_info()
    doc = json.loads(JsonFormatter().format(record))
    assert doc["msg"] == "boom !"
    assert doc["path"] == "/tmp/x"
    assert doc["event"] == "test"
    assert doc["level"] == "error"
    assert "ValueError: inner" in doc["exc"]
    assert doc["time"].endswith("+00:00")

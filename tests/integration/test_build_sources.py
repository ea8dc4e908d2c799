"""``egressguard build`` against a real loopback feed server: last good copies, conditional
requests, sources that never loaded, and the shrink guard, through the real command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from egressguard.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from feedserver import FeedServer, Route, feed_server

pytestmark = pytest.mark.integration
__all__ = ["feed_server"]


def config(tmp_path: Path, server: FeedServer, **extra: Any) -> Path:
    common = {"insecure_http": True, "timeout": 2, "attempts": 1, "min_interval": 0}
    sources = extra.pop(
        "sources",
        [
            {"name": "spamhaus-drop", "url": server.url("/drop.txt"), "format": "spamhaus-text"},
            {"name": "firehol-level1", "url": server.url("/level1.netset"), "format": "netset"},
        ],
    )
    doc = {
        "apiVersion": "egressguard.io/v1alpha1",
        "kind": "Blocklist",
        "metadata": {"name": "egress-blocklist"},
        "spec": {"sources": [{**common, **s} for s in sources], **extra},
    }
    path = tmp_path / "blocklist.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture
def feeds(feed_server: FeedServer, data_dir: Path) -> FeedServer:
    drop = (data_dir / "feeds/spamhaus/drop.txt.textformat-2025-03-02").read_bytes()
    level1 = (data_dir / "feeds/firehol-2022/firehol_level1.netset").read_bytes()
    feed_server.routes["/drop.txt"] = Route(drop, etag='"drop-1"')
    feed_server.routes["/level1.netset"] = Route(level1)
    return feed_server


def build(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main(["build", *argv, "-o", "json"])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else {}, err


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_a_failing_feed_builds_from_its_last_good_copy(
    tmp_path: Path, feeds: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, out, state = config(tmp_path, feeds), tmp_path / "out", str(tmp_path / "state")
    code, doc, err = build(capsys, "-c", str(cfg), "-o", str(out), "--state-dir", state)
    assert code == 0, err
    assert [s["status"] for s in doc["sources"]] == ["fresh", "fresh"]
    first = snapshot(out)

    # the next download of the conditional feed is answered 304 Not Modified
    code, doc, err = build(capsys, "-c", str(cfg), "-o", str(out), "--state-dir", state)
    assert code == 0, err
    assert doc["sources"][0]["status"] == "not-modified"
    assert feeds.seen[-2].headers.get("if-none-match") == '"drop-1"'
    assert snapshot(out) == first

    feeds.routes["/drop.txt"] = Route(b"<html><body>busy</body></html>", status=503)
    feeds.routes["/level1.netset"] = Route(b"")  # 200 with an empty body
    code, doc, err = build(capsys, "-c", str(cfg), "-o", str(out), "--state-dir", state)
    assert code == 0, err
    by_name = {s["name"]: s for s in doc["sources"]}
    assert by_name["spamhaus-drop"]["status"] == "fallback-to-last-good"
    assert "HTTP 503" in by_name["spamhaus-drop"]["reason"]
    assert by_name["firehol-level1"]["status"] == "fallback-to-last-good"
    assert "empty response body" in by_name["firehol-level1"]["reason"]
    assert any("spamhaus-drop: using the last good copy" in w for w in doc["warnings"])
    assert "source spamhaus-drop: fallback-to-last-good" in err
    assert doc["changes"] == {
        "added": [],
        "changed": [],
        "removed": [],
        "unchanged": len(first) - 1,
    }
    assert snapshot(out) == first


def test_no_copy_ever_fails_unless_optional(
    tmp_path: Path, feeds: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    feeds.routes["/drop.txt"] = Route(b"", status=500)
    cfg = config(tmp_path, feeds)
    code = main(["build", "-c", str(cfg), "--stdout", "--state-dir", str(tmp_path / "s1")])
    out, err = capsys.readouterr()
    assert code == 4
    assert out == ""
    assert "error: 1 source never loaded and has no last good copy: spamhaus-drop:" in err
    assert "HTTP 500" in err

    sources = [
        {
            "name": "spamhaus-drop",
            "url": feeds.url("/drop.txt"),
            "format": "spamhaus-text",
            "optional": True,
        },
        {"name": "firehol-level1", "url": feeds.url("/level1.netset"), "format": "netset"},
    ]
    cfg = config(tmp_path, feeds, sources=sources)
    code, doc, err = build(capsys, "-c", str(cfg), "--state-dir", str(tmp_path / "s2"))
    assert code == 0, err
    assert doc["sources"][0]["status"] == "failed-no-copy"
    assert any("spamhaus-drop (optional) contributes nothing" in w for w in doc["warnings"])


def test_shrink_through_the_real_command(tmp_path: Path, feed_server: FeedServer) -> None:
    """A feed that comes back valid but 80% shorter: exit 3 and nothing written; --force
    writes it. Runs the installed command in a child process."""
    full = [f"198.18.{i}.0/24" for i in range(0, 250, 2)]
    feed_server.routes["/list.txt"] = Route(("\n".join(full) + "\n").encode())
    sources = [{"name": "list", "url": feed_server.url("/list.txt"), "format": "plain"}]
    cfg = config(tmp_path, feed_server, sources=sources)
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "egressguard", "build", "-c", str(cfg), "-o", str(out)]
    argv += ["--state-dir", str(tmp_path / "state")]
    first = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert first.returncode == 0, first.stderr
    before = snapshot(out)
    feed_server.routes["/list.txt"] = Route(("\n".join(full[:25]) + "\n").encode())
    refused = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode == 3
    assert "would shrink by 80.0% (125 → 25 CIDRs" in refused.stderr
    assert "rerun with --force" in refused.stderr
    assert snapshot(out) == before
    forced = subprocess.run(
        [*argv, "--force"], capture_output=True, text=True, timeout=120, check=False
    )
    assert forced.returncode == 0, forced.stderr
    after = snapshot(out)
    shard = next(name for name in after if name.startswith("10-"))
    assert after[shard].count(b"\n  - ") == 25

"""``egressguard apply`` and ``egressguard status`` against an API server over real HTTP.

The API server is kmock plus the real-server behaviour egressguard relies on (``kubeapi.py``:
server-side apply, resourceVersion, dry-run, label selectors); the feed is served by a real
loopback HTTP server (``feedserver.py``). The commands run in-process through ``cli.main``
with a kubeconfig file pointing at the server, exactly as a user runs them. Every assertion on
"writes" counts the write requests the API server received.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from egressguard.adapters.state import DirectoryStateStore
from egressguard.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from feedserver import FeedServer, Route, feed_server
from kubeapi import KubeApi, serve

pytestmark = pytest.mark.integration
__all__ = ["feed_server"]

GNS = "/apis/projectcalico.org/v3/globalnetworksets"
GNP = "/apis/projectcalico.org/v3/globalnetworkpolicies"
TIERS = "/apis/projectcalico.org/v3/tiers"
FEED = [
    "192.0.2.0/26",
    "192.0.2.128/26",
    "198.51.100.0/25",
    "203.0.113.0/24",
    "2001:db8:1::/48",
]


def feed_body(entries: list[str]) -> bytes:
    return ("# test feed\n" + "".join(f"{e}\n" for e in entries)).encode()


@dataclass
class Env:
    api: KubeApi
    feed: FeedServer
    config: Path
    state: Path
    capsys: pytest.CaptureFixture[str]

    def serve_feed(self, entries: list[str], **kw: Any) -> None:
        self.feed.routes["/feed.txt"] = Route(body=feed_body(entries), **kw)

    def run(self, *argv: str, state: Path | None = None) -> tuple[int, str, str]:
        self.capsys.readouterr()
        args = [
            *argv,
            "--kubeconfig",
            str(self.api.kubeconfig),
            "--state-dir",
            str(state or self.state),
        ]
        code = main(args)
        out, err = self.capsys.readouterr()
        return code, out, err

    def apply(self, *extra: str, state: Path | None = None) -> tuple[int, str, str]:
        return self.run("apply", "-c", str(self.config), *extra, state=state)

    def nets(self) -> dict[str, list[str]]:
        return {n: o["spec"]["nets"] for n, o in self.api.objects("globalnetworksets").items()}

    def versions(self) -> dict[str, str]:
        out = {}
        for plural in ("tiers", "globalnetworksets", "globalnetworkpolicies"):
            for name, obj in self.api.objects(plural).items():
                out[name] = obj["metadata"]["resourceVersion"]
        return out


def write_config(path: Path, url: str, *, max_entries: int = 2, extra: str = "") -> None:
    path.write_text(
        f"""\
apiVersion: egressguard.io/v1alpha1
kind: Blocklist
metadata: {{name: demo}}
spec:
  sources:
  - name: feed
    url: {url}
    format: plain
    insecure_http: true
    attempts: 1
  - name: pinned
    static: ["2001:db8:9::/48"]
  shards: {{max_entries: {max_entries}}}
  output: {{api: projectcalico.org/v3}}
{extra}"""
    )


@pytest.fixture
def env(
    tmp_path: Path, feed_server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> Iterator[Env]:
    with serve(tmp_path) as api:
        config = tmp_path / "blocklist.yaml"
        write_config(config, feed_server.url("/feed.txt"))
        e = Env(api, feed_server, config, tmp_path / "state", capsys)
        e.serve_feed(FEED)
        yield e


# --------------------------------------------------------------------------------------------
# apply


def test_first_apply_creates_every_object_in_dependency_order(env: Env) -> None:
    code, out, err = env.apply()

    assert code == 0, err
    writes = env.api.writes()
    kinds = [w.path.rsplit("/", 1)[0] for w in writes]
    assert kinds[0] == TIERS
    assert kinds[-1] == GNP
    assert set(kinds[1:-1]) == {GNS}
    assert len(writes) == 1 + len(env.nets()) + 1
    assert all(
        w.method == "PATCH" and w.params.get("fieldManager") == "egressguard" for w in writes
    )
    assert sorted(n for shard in env.nets().values() for n in shard) == sorted(
        [*FEED, "2001:db8:9::/48"]
    )
    assert out.splitlines()[0] == "Tier/egressguard created"
    assert "GlobalNetworkPolicy/egressguard.demo created" in out
    assert "applied: " in err
    assert "source feed: fresh" in err


def test_reapplying_an_unchanged_build_writes_nothing(env: Env) -> None:
    assert env.apply()[0] == 0
    before = env.versions()
    mark = env.api.mark()

    code, out, err = env.apply()

    assert code == 0, err
    assert env.api.writes(since=mark) == []
    assert env.versions() == before
    assert all(line.endswith(" unchanged") for line in out.splitlines())
    assert f"0 written, {len(before)} unchanged" in err


def test_one_changed_source_writes_only_the_changed_shards(env: Env) -> None:
    assert env.apply()[0] == 0
    shards = env.nets()
    assert len(shards) >= 3  # two entries per shard
    mark = env.api.mark()

    env.serve_feed([e if e != "203.0.113.0/24" else "203.0.113.0/25" for e in FEED])
    code, out, err = env.apply()

    assert code == 0, err
    changed = sorted(name for name, nets in env.nets().items() if shards[name] != nets)
    assert len(changed) == 1
    written = sorted(w.path for w in env.api.writes(since=mark))
    # the shard holding the changed entry, and the policy that names the source versions
    assert written == sorted([f"{GNS}/{changed[0]}", f"{GNP}/egressguard.demo"])
    assert f"GlobalNetworkSet/{changed[0]} configured" in out


def test_dry_run_writes_nothing(env: Env) -> None:
    code, out, err = env.apply("--dry-run")
    assert code == 0, err
    assert env.api.writes() == []
    assert env.nets() == {}
    assert "Tier/egressguard created (dry run: client)" in out

    assert env.apply()[0] == 0
    mark = env.api.mark()
    env.serve_feed([*FEED, "198.51.100.128/25"])
    before = env.nets()
    code, out, _ = env.apply("--dry-run")
    assert code == 0
    assert env.api.writes(since=mark) == []
    assert env.nets() == before
    assert "configured (dry run: client)" in out


def test_server_dry_run_sends_writes_the_server_does_not_persist(env: Env) -> None:
    code, _, err = env.apply("--dry-run=server")

    assert code == 0, err
    writes = env.api.writes()
    assert writes
    assert all(w.params.get("dryRun") == "All" for w in writes)
    assert env.nets() == {}
    assert "dry run (server): " in err


def test_diff_shows_what_changes_line_by_line(env: Env) -> None:
    assert env.apply()[0] == 0
    env.serve_feed([e if e != "198.51.100.0/25" else "198.51.100.0/24" for e in FEED])

    code, out, _ = env.apply("--dry-run", "--diff")

    assert code == 0
    assert "-  - 198.51.100.0/25\n" in out
    assert "+  - 198.51.100.0/24\n" in out
    assert "--- live/GlobalNetworkPolicy/egressguard.demo\n" in out
    assert "Tier/egressguard" not in out.split("Tier/egressguard unchanged")[0]
    headers = [ln for ln in out.splitlines() if ln.startswith("+++ ")]
    assert len(headers) == 2  # one shard and the policy
    changed = [ln for ln in out.splitlines() if ln.startswith(("-  - ", "+  - "))]
    assert changed == ["-  - 198.51.100.0/25", "+  - 198.51.100.0/24"]


def test_json_output_has_the_plan_and_what_was_done(env: Env) -> None:
    code, out, _ = env.apply("-o", "json", "--diff")

    assert code == 0
    doc = json.loads(out)
    assert doc["ok"] is True
    assert doc["dryRun"] is False
    assert doc["summary"]["create"] == len(doc["done"]) == len(env.api.writes())
    assert doc["build"]["blocklist"] == "demo"
    assert "changes" not in doc["build"]
    assert doc["diff"].count("--- /dev/null") == len(doc["done"])


def test_a_refused_shrink_applies_nothing_until_forced(env: Env) -> None:
    assert env.apply()[0] == 0
    before = env.nets()
    mark = env.api.mark()
    env.serve_feed(FEED[:1])  # a valid feed that lost 80 % of its entries

    code, _, err = env.apply()

    assert code == 3
    assert env.api.writes(since=mark) == []
    assert env.nets() == before
    assert "REFUSED shrink:" in err
    assert "hint: nothing was written; if this is intended, rerun with --force" in err
    code, out, _ = env.run("status", "-c", str(env.config))
    assert code == 0
    assert "last build: REFUSED " in out
    held_back = out.split("(nothing was applied)\n", 1)[1].splitlines()
    assert any(line.startswith("  the IPv4 set would shrink by 87.5%") for line in held_back)

    code, _, err = env.apply("--force")
    assert code == 0, err
    assert sorted(n for s in env.nets().values() for n in s) == [FEED[0], "2001:db8:9::/48"]


def test_a_failing_feed_falls_back_to_its_last_good_copy_and_nothing_shrinks(env: Env) -> None:
    assert env.apply()[0] == 0
    before = env.nets()
    mark = env.api.mark()
    env.serve_feed(FEED, status=503)

    code, _, err = env.apply()

    assert code == 0, err
    assert env.api.writes(since=mark) == []
    assert env.nets() == before
    assert "source feed: fallback-to-last-good" in err
    assert "503" in err


def test_a_source_that_never_loaded_stops_the_apply(env: Env) -> None:
    env.serve_feed(FEED, status=503)

    code, _, err = env.apply()

    assert code == 4
    assert env.api.writes() == []
    assert "never loaded" in err


def test_context_picks_the_kubeconfig_context(env: Env, tmp_path: Path) -> None:
    config = yaml.safe_load(env.api.kubeconfig.read_text())
    config["users"].append({"name": "stranger", "user": {"token": "wrong"}})
    config["contexts"].append(
        {"name": "wrong-user", "context": {"cluster": "kmock", "user": "stranger"}}
    )
    config["current-context"] = "wrong-user"
    env.api.kubeconfig.write_text(yaml.safe_dump(config))

    code, _, err = env.apply()
    assert code == 4
    assert "401" in err

    code, _, err = env.apply("--context", "kmock")
    assert code == 0, err
    assert env.nets()


def test_an_object_egressguard_does_not_own_is_not_overwritten_without_adopt(env: Env) -> None:
    assert env.apply("--dry-run", "-o", "json")[0] == 0
    env.api.seed(
        {
            "apiVersion": "projectcalico.org/v3",
            "kind": "Tier",
            "metadata": {"name": "egressguard"},
            "spec": {"order": 50},
        }
    )

    code, _, err = env.apply()
    assert code == 3
    assert "Tier/egressguard" in err
    assert "--adopt" in err
    assert env.nets() == {}

    code, out, _ = env.apply("--adopt", "--diff")
    assert code == 0
    assert "-  order: 50\n+  order: 100\n" in out
    tier = env.api.objects("tiers")["egressguard"]
    assert tier["metadata"]["labels"]["egressguard.io/blocklist"] == "demo"


# --------------------------------------------------------------------------------------------
# status


def test_status_shows_objects_source_versions_and_last_refresh(env: Env) -> None:
    assert env.apply()[0] == 0

    code, out, err = env.run("status", "-c", str(env.config))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("blocklist demo: ")
    assert "objects applied (projectcalico.org/v3); IPv4 4 CIDRs, IPv6 2 CIDRs" in lines[0]
    for name in env.nets():
        assert any(line.startswith("GlobalNetworkSet") and f" {name} " in line for line in lines)
    feed_row = next(line for line in lines if line.startswith("feed "))
    assert " yes " in feed_row
    assert "fresh" in feed_row

    code, out, _ = env.run("status", "-c", str(env.config), "-o", "json")
    assert code == 0
    doc = json.loads(out)
    policy = env.api.objects("globalnetworkpolicies")["egressguard.demo"]
    annotated = json.loads(policy["metadata"]["annotations"]["egressguard.io/sources"])
    assert [s["applied"] for s in doc["sources"]] == annotated
    assert {(o["kind"], o["name"]) for o in doc["objects"]} == {
        ("Tier", "egressguard"),
        ("GlobalNetworkPolicy", "egressguard.demo"),
        *(("GlobalNetworkSet", n) for n in env.nets()),
    }
    shard_entries = {o["name"]: o["entries"] for o in doc["objects"] if o["entries"] is not None}
    assert shard_entries == {name: len(nets) for name, nets in env.nets().items()}
    stored = DirectoryStateStore(env.state / "demo").load("feed")
    assert stored is not None
    feed = doc["sources"][0]
    assert feed["lastRefresh"] == stored.meta.checked_at
    assert feed["lastAttempt"]["status"] == "fresh"
    assert feed["current"] is True
    assert doc["lastApply"]["identity"]


def test_status_shows_failed_refreshes_and_what_is_still_applied(env: Env) -> None:
    assert env.apply()[0] == 0
    env.serve_feed(FEED, status=503)
    assert env.apply()[0] == 0
    assert env.apply()[0] == 0

    code, out, _ = env.run("status", "-c", str(env.config), "-o", "json")

    assert code == 0
    feed = json.loads(out)["sources"][0]
    assert feed["lastAttempt"]["status"] == "fallback-to-last-good"
    assert feed["lastAttempt"]["failures"] == 2
    assert "503" in feed["lastAttempt"]["reason"]
    assert feed["lastAttempt"]["succeeded_at"] < feed["lastAttempt"]["attempted_at"]
    assert feed["current"] is True  # the applied version is the last good copy
    code, text, _ = env.run("status", "-c", str(env.config))
    assert "2 failed in a row" in text


def test_status_of_a_blocklist_by_name_reads_only_the_cluster(env: Env, tmp_path: Path) -> None:
    code, out, _ = env.run("status", "--blocklist", "demo")
    assert code == 0
    assert out == "blocklist demo: nothing applied (projectcalico.org/v3)\n"

    assert env.apply()[0] == 0
    code, out, _ = env.run("status", "--blocklist", "demo", state=tmp_path / "elsewhere")
    assert code == 0
    assert "SOURCE" in out
    assert "feed " in out
    assert "pinned " in out

"""The README's "Keep the cluster current" commands run as written against an API server.

Each ``egressguard`` line of that section runs in order through ``cli.main``, with
``--kubeconfig`` pointing at the kmock-based API server (real HTTP on loopback) and a state
directory of the test; ``examples/blocklist.yaml`` reads the shared datasets, so no network is
needed. The ``kubectl`` line is the user's, not egressguard's.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from egressguard.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from kubeapi import serve

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def readme_commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Keep the cluster current", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    commands = []
    for line in block.splitlines():
        if line.startswith("egressguard "):
            commands.append(shlex.split(line.split("#", 1)[0])[1:])
    return commands


def test_the_readme_section_runs_as_written(
    tmp_path: Path,
    data_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    commands = readme_commands()
    assert [c[0] for c in commands] == ["apply", "apply", "status"]
    monkeypatch.chdir(REPO)
    with serve(tmp_path) as api:
        outputs = []
        for argv in commands:
            code = main(
                [*argv, "--kubeconfig", str(api.kubeconfig), "--state-dir", str(tmp_path / "s")]
            )
            out, err = capsys.readouterr()
            assert code == 0, (argv, err)
            outputs.append(out)
        dry_run, applied, status = outputs
        assert "created (dry run: client)" in dry_run
        assert "+++ desired/GlobalNetworkPolicy/egressguard.egress-blocklist" in dry_run
        assert "GlobalNetworkPolicy/egressguard.egress-blocklist created" in applied
        assert status.startswith("blocklist egress-blocklist: ")
        for name in ("firehol-level1", "spamhaus-drop", "feodo", "north-korea"):
            assert any(line.startswith(f"{name} ") for line in status.splitlines()), name
        shards = api.objects("globalnetworksets", group="crd.projectcalico.org")
        assert shards
        assert all(
            s["metadata"]["labels"]["egressguard.io/blocklist"] == "egress-blocklist"
            for s in shards.values()
        )

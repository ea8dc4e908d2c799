"""``scripts/demo``, the README's main-job command, runs as a user runs it (as root, a real
process, bootstrap included) and exits 0 with the tables the README describes.

Its extra arguments go to ``lab run``: the test gives its own prefix and state directory so it
never touches a user's lab.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from labns import fresh_prefix

pytestmark = [pytest.mark.root, pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def prefix(tmp_path: Path) -> Iterator[str]:
    with fresh_prefix("d", tmp_path) as p:
        yield p


@pytest.mark.timeout(900)  # bootstrap may reinstall .venv after a pyproject.toml change
def test_scripts_demo_runs_the_main_job(prefix: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    done = subprocess.run(
        [str(REPO / "scripts" / "demo"), "--prefix", prefix, "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=880,
        check=False,
        cwd="/",
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    # The prediction ...
    assert "verdict: Deny, logged" in out
    # ... the lab copy of the addresses ...
    assert "217.160.0.92/32   →  203.0.113.92/32" in out
    assert "added for IPv6 coverage" in out
    # ... the probe table, the events, and the verdict of the run.
    assert (
        "default/web   tcp    217.160.0.92 → 203.0.113.92     443   Deny      Deny (timeout)" in out
    )
    assert "kernel log events (calico-packet lines" in out
    assert out.rstrip().splitlines()[-1].startswith("OK: 48 probes: 48 as expected")
    assert "✗" not in out
    assert f"lab '{prefix}' removed: 4 namespaces, 1 process" in done.stderr
    check_readme_sample(done.stdout, done.stderr, prefix)


CLOCK = re.compile(r"^  \d\d:\d\d:\d\d\.\d{3}  ")


def check_readme_sample(out: str, err: str, prefix: str) -> None:
    """Every line of the README's sample occurs in the real run: progress lines (ending in
    '…') on stderr, the rest on stdout; event times and the lab prefix differ per run."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- lab-run-sample", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    out_lines = {CLOCK.sub("  TIME  ", line) for line in out.splitlines()}
    checked = 0
    for line in block.splitlines():
        if not line.strip() or line.strip() == "…":
            continue
        if line.endswith("…"):
            assert line.replace("eg-lab-", prefix) in err, line
        else:
            assert CLOCK.sub("  TIME  ", line) in out_lines, line
        checked += 1
    assert checked >= 15

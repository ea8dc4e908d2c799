"""``egressguard build`` end to end in-process: outputs, exit codes, and that ``validate`` and
``lint`` accept what it writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from egressguard.cli import main

FIREHOL1 = "feeds/firehol-2022/firehol_level1.netset"
DROP = "feeds/spamhaus/drop_v4.json"
FEODO = "feeds/abusech/feodo_ipblocklist_recommended.2022-07-08.txt"


def write_config(tmp_path: Path, data_dir: Path, **spec: Any) -> Path:
    sources = spec.pop(
        "sources",
        [
            {"name": "firehol-level1", "file": str(data_dir / FIREHOL1), "format": "netset"},
            {"name": "spamhaus-drop", "file": str(data_dir / DROP), "format": "spamhaus-json"},
            {"name": "feodo", "file": str(data_dir / FEODO), "format": "abusech"},
        ],
    )
    doc = {
        "apiVersion": "egressguard.io/v1alpha1",
        "kind": "Blocklist",
        "metadata": {"name": "egress-blocklist"},
        "spec": {
            "sources": sources,
            "protect": {
                "cluster_cidrs": ["10.244.0.0/16"],
                "service_cidrs": ["10.0.0.0/16"],
                "dns": ["10.0.0.10"],
                "api_server": ["20.50.60.70"],
            },
            **spec,
        },
    }
    path = tmp_path / "blocklist.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def state(tmp_path: Path) -> str:
    return str(tmp_path / "state")


LINT_FACTS = (
    "--service-cidr",
    "10.0.0.0/16",
    "--cluster-cidr",
    "10.244.0.0/16",
    "--dns-ip",
    "10.0.0.10",
    "--apiserver-ip",
    "20.50.60.70",
)


def test_build_output_passes_validate_and_lint(
    tmp_path: Path, data_dir: Path, state: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, data_dir, shards={"max_entries": 1000})
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "build", "-c", str(cfg), "-o", str(out), "--state-dir", state)
    assert code == 0, err
    assert stdout == ""
    files = sorted(p.name for p in out.iterdir())
    assert f"wrote {len(files)} files to {out}" in err
    assert "subtracted (special-purpose): 0.0.0.0/8, 10.0.0.0/8" in err
    assert len([f for f in files if f.startswith("10-globalnetworkset-")]) >= 3
    code, _, err = run(capsys, "validate", str(out))
    assert code == 0, err
    code, stdout, err = run(capsys, "lint", "-f", str(out), *LINT_FACTS, "-o", "json")
    assert code == 0, stdout
    findings = json.loads(stdout)["findings"]
    assert [f for f in findings if f["severity"] in ("error", "warning")] == []


def test_blog_mode_output_passes_validate_and_lint_with_its_known_warning(
    tmp_path: Path, data_dir: Path, state: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, data_dir, policy={"mode": "blog"})
    out = tmp_path / "out"
    assert run(capsys, "build", "-c", str(cfg), "-o", str(out), "--state-dir", state)[0] == 0
    assert run(capsys, "validate", str(out))[0] == 0
    code, stdout, _ = run(capsys, "lint", "-f", str(out), *LINT_FACTS, "-o", "json")
    assert code == 0
    ids = {f["id"] for f in json.loads(stdout)["findings"] if f["severity"] != "info"}
    assert ids == {"allow-all-bypasses-k8s-isolation"}  # the documented cost of blog mode


def test_stdout_prints_the_same_documents_as_the_directory(
    tmp_path: Path, data_dir: Path, state: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, data_dir)
    out = tmp_path / "out"
    assert run(capsys, "build", "-c", str(cfg), "-o", str(out), "--state-dir", state, "-q")[0] == 0
    code, stdout, err = run(capsys, "build", "-c", str(cfg), "--stdout", "--state-dir", state)
    assert code == 0
    expected = "".join(p.read_text() for p in sorted(out.glob("*.yaml")))
    assert stdout == expected
    assert [d["kind"] for d in yaml.safe_load_all(stdout)] == [
        "Tier",
        "GlobalNetworkSet",
        "GlobalNetworkPolicy",
    ]
    assert "blocklist egress-blocklist: 3 sources" in err


def test_json_summary(
    tmp_path: Path, data_dir: Path, state: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, data_dir)
    out = tmp_path / "out"
    argv = ["build", "-c", str(cfg), "-o", str(out), "-o", "json", "--state-dir", state]
    code, stdout, err = run(capsys, *argv)
    assert code == 0
    doc = json.loads(stdout)
    assert doc["ok"] is True
    assert doc["written"] == str(out)
    assert doc["dry_run"] is False
    assert doc["changes"] is None
    assert [s["name"] for s in doc["sources"]] == ["firehol-level1", "spamhaus-drop", "feodo"]
    assert {s["status"] for s in doc["sources"]} == {"fresh"}
    assert doc["families"]["ipv4"]["shards"] == len(doc["shards"]) == 1
    assert doc["families"]["ipv4"]["entries"] > 3000
    assert {o["kind"] for o in doc["objects"]} == {
        "Tier",
        "GlobalNetworkSet",
        "GlobalNetworkPolicy",
    }
    assert {c["check"] for c in doc["checks"]} == {"coverage", "size"}
    cats = {s["category"] for s in doc["subtracted"]}
    assert {"special-purpose", "public-dns", "protect.cluster_cidrs"} <= cats
    assert "wrote" in err
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    code, stdout, err = run(capsys, *argv)
    assert f"{out} is up to date: nothing written" in err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes
    again = json.loads(stdout)
    assert again["written"] is None
    assert again["changes"] == {"added": [], "changed": [], "removed": [], "unchanged": 3}
    assert {s["status"] for s in again["sources"]} == {"not-modified"}  # same bytes again
    assert {c["check"] for c in again["checks"]} == {"coverage", "size", "shrink"}


def test_dry_run_shows_what_would_change_and_writes_nothing(
    tmp_path: Path, data_dir: Path, state: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, data_dir)
    out = tmp_path / "out"
    assert run(capsys, "build", "-c", str(cfg), "-o", str(out), "--state-dir", state)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    cfg = write_config(tmp_path, data_dir, allow=["1.10.16.0/20"], policy={"mode": "blog"})
    code, _, err = run(
        capsys, "build", "-c", str(cfg), "-o", str(out), "--state-dir", state, "--dry-run"
    )
    assert code == 0
    assert "dry run: nothing written; would change:" in err
    assert "  add 20-globalnetworkpolicy-egress-blocklist-allow.yaml" in err
    assert "  remove 00-tier-egressguard.yaml" in err
    assert "  change 10-globalnetworkset-egress-blocklist-v4.yaml" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_config_problems_exit_1_with_every_problem(
    tmp_path: Path, data_dir: Path, state: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(
        tmp_path,
        data_dir,
        sources=[{"name": "a", "url": "https://x.example/l", "format": "csvv"}],
        safty={},
    )
    code, stdout, err = run(
        capsys, "build", "-c", str(cfg), "-o", str(tmp_path / "o"), "--state-dir", state
    )
    assert code == 1
    assert stdout == ""
    text = cfg.read_text().splitlines()
    fmt_line = text.index("    format: csvv") + 1
    safty_line = text.index("  safty: {}") + 1
    lines = err.splitlines()
    assert lines[0].startswith(f"{cfg}:{fmt_line} spec.sources[0].format: 'csvv' is not one of")
    assert (
        lines[1] == f"{cfg}:{safty_line} spec.safty: unknown field 'safty'; did you mean 'safety'?"
    )
    assert lines[2] == f"2 problems in {cfg}"
    code, stdout, _ = run(capsys, "build", "-c", str(cfg), "-o", "json", "--state-dir", state)
    assert code == 1
    problems = json.loads(stdout)["problems"]
    assert [(p["line"], p["path"]) for p in problems] == [
        (fmt_line, "spec.sources[0].format"),
        (safty_line, "spec.safty"),
    ]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-c", "{cfg}"], "say where the manifests go"),
        (["-c", "{cfg}", "--stdout", "-o", "json"], "both write to standard output"),
        (["-c", "{cfg}", "-o", "a", "-o", "b"], "at most one directory and one format"),
        (["-c", "{missing}", "--stdout"], "no such config file"),
    ],
)
def test_usage_errors_exit_2(
    tmp_path: Path,
    data_dir: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    cfg = write_config(tmp_path, data_dir)
    state = str(tmp_path / "state")
    args = [a.format(cfg=cfg, missing=tmp_path / "missing.yaml") for a in argv]
    code, _, err = run(capsys, "build", *args, "--state-dir", state)
    assert code == 2
    assert message in err


def test_foreign_output_directory_exit_2(
    tmp_path: Path, data_dir: Path, state: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, data_dir)
    out = tmp_path / "manifests"
    out.mkdir()
    (out / "deployment.yaml").write_text("kind: Deployment\n")
    code, _, err = run(capsys, "build", "-c", str(cfg), "-o", str(out), "--state-dir", state)
    assert code == 2
    assert "holds files egressguard did not write" in err
    assert (out / "deployment.yaml").exists()


def test_shrink_exit_3_then_force(
    tmp_path: Path, data_dir: Path, state: str, capsys: pytest.CaptureFixture[str]
) -> None:
    feed = tmp_path / "feed.txt"
    lines = [f"198.18.{i}.0/24" for i in range(0, 250, 2)]
    feed.write_text("\n".join(lines) + "\n")
    sources = [{"name": "feed", "file": str(feed), "format": "plain"}]
    cfg = write_config(tmp_path, data_dir, sources=sources)
    out = tmp_path / "out"
    argv = ["build", "-c", str(cfg), "-o", str(out), "--state-dir", state]
    assert run(capsys, *argv)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    feed.write_text("\n".join(lines[: len(lines) // 5]) + "\n")
    code, _, err = run(capsys, *argv)
    assert code == 3
    assert "  REFUSED shrink: source 'feed' IPv4 would shrink by 80.0%" in err
    assert "error: build refused: source 'feed' IPv4 would shrink by 80.0% (125 → 25 CIDRs" in err
    assert "hint: nothing was written; if this is intended, rerun with --force" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    code, _, err = run(capsys, *argv, "--force")
    assert code == 0
    assert "  FORCED shrink" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} != before


def test_source_without_copy_exit_4(
    tmp_path: Path, data_dir: Path, state: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sources = [{"name": "gone", "file": str(tmp_path / "missing.txt"), "format": "plain"}]
    cfg = write_config(tmp_path, data_dir, sources=sources)
    code, _, err = run(capsys, "build", "-c", str(cfg), "--stdout", "--state-dir", state)
    assert code == 4
    assert "error: 1 source never loaded and has no last good copy: gone:" in err


def test_help_teaches(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["build", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "egressguard build -c examples/blocklist.yaml -o out/" in text
    assert "Exit status: 0 built; 1 config problems; 2 usage errors; 3 refused" in text


def test_the_example_builds_offline(
    tmp_path: Path,
    data_dir: Path,
    examples_dir: Path,
    state: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """examples/blocklist.yaml points at ../../shared/data; tests read data from data_dir."""
    text = (examples_dir / "blocklist.yaml").read_text()
    cfg = tmp_path / "blocklist.yaml"
    cfg.write_text(text.replace("../../shared/data", str(data_dir)))
    out = tmp_path / "out"
    code, _, err = run(capsys, "build", "-c", str(cfg), "-o", str(out), "--state-dir", state)
    assert code == 0, err
    assert "source north-korea: fresh" in err
    assert run(capsys, "validate", str(out))[0] == 0
    assert run(capsys, "lint", "-f", str(out), *LINT_FACTS)[0] == 0


def test_readme_build_lines_run(
    tmp_path: Path, data_dir: Path, examples_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every ``egressguard build`` line of the README runs as written (paths made local)."""
    readme = (examples_dir.parent / "README.md").read_text(encoding="utf-8")
    commands = [
        line.split("#")[0].split()
        for line in readme.splitlines()
        if line.startswith("egressguard build ")
    ]
    assert len(commands) >= 2
    cfg = tmp_path / "blocklist.yaml"
    text = (examples_dir / "blocklist.yaml").read_text()
    cfg.write_text(text.replace("../../shared/data", str(data_dir)))
    local = {"examples/blocklist.yaml": str(cfg), "out/": str(tmp_path / "out")}
    for words in commands:
        argv = [local.get(w, w) for w in words[1:]]
        code, out, err = run(capsys, *argv, "--state-dir", str(tmp_path / "state"))
        assert code == 0, err
    assert json.loads(out)["changes"]["unchanged"] == 3

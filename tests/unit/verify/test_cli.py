"""The ``verify`` command line: help, outputs, exit codes (no cluster needed here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from egressguard import cli

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "blog"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_teaches_the_caveats_and_gives_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["verify", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "TIME OUT" in out  # a blocked probe is expected to time out: Deny drops
    assert "never invents" in out  # allowed destinations come from the user only
    assert "--seed" in out
    assert "examples:" in out
    assert "egressguard verify -f examples/blog --allowed" in out


def test_json_plan_has_probes_expectations_and_jobs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "verify", "-f", str(EXAMPLES), "--allowed", "192.0.2.1", "-o", "json", "--seed", "3"
    )
    assert code == 0
    doc = json.loads(out)
    assert [s["name"] for s in doc["sources"]] == ["egress-traffic-blocking"]
    (ns,) = doc["namespaces"]
    assert {p["expected"] for p in ns["probes"]} == {"Blocked", "Allowed"}
    assert all(p["reason"] for p in ns["probes"])
    assert len(doc["jobs"]) == 1
    assert doc["jobs"][0]["metadata"]["name"] == f"egressguard-verify-{doc['run']}"


def test_table_plan(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "verify", "-f", str(EXAMPLES), "-o", "table", "-n", "a", "-n", "a")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["NAMESPACE", "PROBE", "SOURCE", "EXPECTED"]
    assert sum(line.startswith("a ") for line in lines) == 3  # "-n a" twice runs once


def test_a_port_given_twice_is_probed_once(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        *("verify", "-f", str(EXAMPLES), "-o", "json"),
        *("--port", "443", "--port", "udp/53", "--port", "tcp/443"),
    )
    assert code == 0
    assert json.loads(out)["ports"] == ["tcp/443", "udp/53"]  # "443" is "tcp/443"


def test_rendering_is_reproducible(capsys: pytest.CaptureFixture[str]) -> None:
    first = run(capsys, "verify", "-f", str(EXAMPLES), "--seed", "5")[1]
    second = run(capsys, "verify", "-f", str(EXAMPLES), "--seed", "5")[1]
    assert first == second


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["verify"], "needs the manifests"),
        (["verify", "-f", str(EXAMPLES), "--keep"], "only apply with --run"),
        (["verify", "-f", str(EXAMPLES), "--port", "icmp/1"], "tcp or udp"),
        (["verify", "-f", str(EXAMPLES), "--pod-label", "novalue"], "KEY=VALUE"),
        (["verify", "-f", str(EXAMPLES), "--allowed", "example.com"], "--allowed"),
        (["verify", "-f", "/nonexistent/path"], "no such file"),
        (["verify", "--run", "probe"], "takes no manifests or --run"),
    ],
)
def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert message in err
    assert "Traceback" not in err


def test_invalid_manifests_exit_1_with_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: crd.projectcalico.org/v1\nkind: GlobalNetworkSet\n"
        "metadata: {name: x}\nspec: {nets: ['10.0.0.300/24']}\n"
    )
    code, out, err = run(capsys, "verify", "-f", str(bad))
    assert code == 1
    assert out == ""
    assert "bad.yaml:4" in err
    assert "1 problem(s)" in err


def test_nothing_to_verify_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    only_allow = tmp_path / "allow.yaml"
    only_allow.write_text((EXAMPLES / "globalnetworkpolicies.yaml").read_text())
    code, _, err = run(capsys, "verify", "-f", str(only_allow))
    assert code == 1
    assert err.startswith("error: nothing to verify")
    assert "hint:" in err


def test_run_with_a_missing_kubeconfig_is_a_kube_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        capsys,
        "verify",
        "-f",
        str(EXAMPLES),
        "--run",
        "--kubeconfig",
        str(tmp_path / "missing"),
    )
    assert code == 4
    assert "cannot load the Kubernetes configuration" in err


def test_the_readme_examples_without_a_cluster_run(capsys: pytest.CaptureFixture[str]) -> None:
    """Every ``egressguard verify`` line of the README that needs no cluster runs as written."""
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    commands = [
        line.split("#")[0].split()
        for line in readme.splitlines()
        if line.startswith("egressguard verify ")
    ]
    offline = [c for c in commands if "--run" not in c]
    assert offline
    for words in offline:
        argv = [str(EXAMPLES) if a == "examples/blog" else a for a in words[1:]]
        code, out, err = run(capsys, *argv)
        assert code == 0, err
        assert out

"""The apply, status and controller commands: help that teaches, usage errors, defaults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from egressguard.cli import _common, blocklist, cluster, main


@pytest.mark.parametrize(
    ("command", "example"),
    [
        ("apply", "egressguard apply -c blocklist.yaml --dry-run --diff"),
        ("status", "egressguard status --blocklist egress-blocklist --context aks-prod"),
        ("controller", "egressguard controller -c /etc/egressguard/blocklist.yaml"),
    ],
)
def test_help_has_a_description_and_examples(
    command: str, example: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert example in out
    assert "Exit status" in out or command == "controller"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--listen", "localhost"], "--listen 'localhost': expected HOST:PORT"),
        (["--listen", "0.0.0.0:99999"], "expected HOST:PORT"),
        (["--resync", "often"], "'often' is not a duration"),
        (["--lease-duration", "5", "--renew-deadline", "10"], "lease_duration > renew_deadline"),
        (["--retry-period", "20"], "retry_period < renew_deadline"),
    ],
)
def test_controller_usage_errors_exit_2_before_connecting(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["controller", "-c", str(tmp_path / "missing.yaml"), *argv])
    assert code == 2
    assert message in capsys.readouterr().err


def test_status_needs_a_config_or_a_blocklist_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["status"])
    assert done.value.code == 2
    assert "one of the arguments -c/--config --blocklist is required" in capsys.readouterr().err


def test_apply_reports_config_problems_with_their_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "blocklist.yaml"
    config.write_text(
        "apiVersion: egressguard.io/v1alpha1\nkind: Blocklist\nmetadata: {name: demo}\n"
        "spec:\n  sources:\n  - {name: a, static: [192.0.2.0/24]}\n  - {name: a, static: []}\n"
    )
    assert main(["apply", "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"{config}:7 spec.sources[1].name" in err
    assert "already the name of a source" in err


def test_the_state_directory_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """build, apply and the controller resolve the state directory the same way."""
    monkeypatch.setenv("EGRESSGUARD_STATE_DIR", str(tmp_path / "env"))
    assert _common.state_root(None) == str(tmp_path / "env")
    assert _common.state_root(str(tmp_path / "given")) == str(tmp_path / "given")
    monkeypatch.delenv("EGRESSGUARD_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(_common, "POD_STATE_DIR", str(tmp_path / "pod"))
    assert _common.state_root(None) == str(tmp_path / "xdg" / "egressguard")
    (tmp_path / "pod").mkdir()  # the controller's volume in the Deployment
    assert _common.state_root(None) == str(tmp_path / "pod")
    assert cluster.state_root is blocklist.state_root is _common.state_root


def test_the_identity_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "egressguard-controller-7d9f-abcde")
    assert cluster._identity(None) == "egressguard-controller-7d9f-abcde"
    assert cluster._identity("given") == "given"
    monkeypatch.delenv("POD_NAME")
    assert cluster._identity(None).endswith(f"-{os.getpid()}")


def test_the_deployment_runs_a_command_this_cli_accepts_with_matching_ports_and_paths() -> None:
    import yaml

    from egressguard.cli import build_parser

    deployment = Path(__file__).resolve().parents[3] / "deploy" / "controller" / "deployment.yaml"
    (container,) = yaml.safe_load(deployment.read_text())["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[0] == "egressguard"
    args = build_parser().parse_args(command[1:])
    assert args.handler is cluster._run_controller
    host, port = cluster._listen_address(args.listen)
    (http_port,) = container["ports"]
    assert port == http_port["containerPort"]
    assert host == "0.0.0.0"  # kubelet probes the pod IP
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    env = {
        e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        for e in container["env"]
    }
    assert env["POD_NAME"] == "metadata.name"
    assert env["POD_NAMESPACE"] == "metadata.namespace"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert _common.POD_STATE_DIR in mounts  # the state directory is the writable volume
    assert args.lease_name == "egressguard-controller"

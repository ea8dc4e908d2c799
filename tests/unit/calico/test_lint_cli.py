"""`egressguard lint`: text and JSON output, exit codes, options, --list-rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from egressguard.calico import lint as lt
from egressguard.cli import main

REPO = Path(__file__).resolve().parents[3]
BLOG = str(REPO / "examples" / "blog")

DEFAULT_DENY = """\
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkSet
metadata: {name: blocked, labels: {policy: blocked}}
spec: {nets: [10.0.0.0/24, 198.51.100.0/24]}
---
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkPolicy
metadata: {name: block}
spec:
  order: 0
  types: [Egress]
  egress:
    - {action: Log, destination: {selector: "policy == 'blocked'", namespaceSelector: global()}}
    - {action: Deny, destination: {selector: "policy == 'blocked'", namespaceSelector: global()}}
"""


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def bad_file(tmp_path: Path) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(DEFAULT_DENY, encoding="utf-8")
    return str(path)


def test_blog_warnings_exit_zero(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["lint", "-f", BLOG], capsys)
    assert code == 0
    assert "warning allow-all-bypasses-k8s-isolation" in out
    assert "    hint: " in out
    assert "0 errors, 3 warnings, 0 infos" in err


def test_error_exits_one_with_location(bad_file: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["lint", "-f", bad_file], capsys)
    assert code == 1
    line = next(x for x in out.splitlines() if "egress-default-deny" in x)
    assert line.startswith(f"{bad_file}:12 spec.egress: error egress-default-deny:")


def test_json_output(bad_file: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["lint", "-f", bad_file, "-o", "json"], capsys)
    assert code == 1
    doc: dict[str, Any] = json.loads(out)
    assert doc["ok"] is False
    assert doc["counts"]["error"] >= 1
    finding = next(f for f in doc["findings"] if f["id"] == "egress-default-deny")
    assert set(finding) == {"id", "severity", "message", "hint", "file", "line", "path"}
    assert finding["severity"] == "error"
    assert finding["line"] == 12


def test_cluster_options(bad_file: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(["lint", "-f", bad_file, "--service-cidr", "10.0.0.0/16", "-o", "json"],
                    capsys)  # fmt: skip
    messages = [f["message"] for f in json.loads(out)["findings"]
                if f["id"] == "blocks-critical-address"]  # fmt: skip
    assert any("10.0.0.10" in m for m in messages)
    _, out, _ = run(["lint", "-f", bad_file, "--dns-ip", "198.51.100.53", "-o", "json"], capsys)
    messages = [f["message"] for f in json.loads(out)["findings"]
                if f["id"] == "blocks-critical-address"]  # fmt: skip
    assert any("198.51.100.53" in m for m in messages)


def test_disable(bad_file: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["lint", "-f", bad_file, "--disable", "egress-default-deny"], capsys)
    assert code == 0
    assert "egress-default-deny" not in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--disable", "nope"], "unknown lint id"),
        (["--dns-ip", "10.0.0.999"], "DNS address"),
        ([], "lint needs -f"),
    ],
)
def test_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    files = ["-f", BLOG] if argv else []
    code, _, err = run(["lint", *files, *argv], capsys)
    assert code == 2
    assert message in err


def test_list_rules(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["lint", "--list-rules"], capsys)
    assert code == 0
    assert len(out.splitlines()) == len(lt.RULES)
    code, out, _ = run(["lint", "--list-rules", "-o", "json"], capsys)
    assert {r["id"] for r in json.loads(out)["rules"]} == set(lt.RULES)


def test_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(DEFAULT_DENY.encode())))
    code, out, _ = run(["lint", "-f", "-"], capsys)
    assert code == 1
    assert out.startswith("<stdin>:")


def test_every_id_is_documented() -> None:
    text = (REPO / "docs" / "lint.md").read_text(encoding="utf-8")
    for rule_id, rule in lt.RULES.items():
        assert f"### `{rule_id}`" in text, rule_id
        section = text.split(f"### `{rule_id}`", 1)[1].split("\n### ", 1)[0]
        assert f"Severity: **{rule.severity}**" in section, rule_id
        assert "```yaml" in section, f"{rule_id} has no example"

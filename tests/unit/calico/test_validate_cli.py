"""`egressguard validate`: exit codes, text and JSON output, stdin, directories; plus the
located-problem API it is built on and the shipped examples."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from egressguard import yamlio
from egressguard.calico import load_documents, validate, validate_documents
from egressguard.cli import main

REPO = Path(__file__).resolve().parents[3]
SHARED = Path(os.environ.get("EGRESSGUARD_SHARED", REPO.parent / "shared"))

BAD = """\
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkPolicy
metadata:
  name: egress-traffic-blocking
spec:
  order: 0
  types: [Egress]
  egress:
    - action: Log
      destination:
        selector: policy == 'egress-traffic-blocking'
    - action: deny
      destination:
        nets:
          - 10.0.0.300/24
"""

GOOD = """\
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkSet
metadata:
  name: blocklist
  labels: {policy: egress-traffic-blocking}
spec:
  nets: [203.0.113.0/24]
"""


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_valid_files_exit_zero(examples_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["validate", str(examples_dir / "blog")], capsys)
    assert code == 0
    assert out == ""
    assert "valid: 3 documents (2 files)" in err


def test_problems_are_printed_with_file_line_and_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text(BAD)
    (tmp_path / "set.yml").write_text(GOOD)
    code, out, err = run(["validate", str(tmp_path)], capsys)
    assert code == 1
    assert out.splitlines() == [
        f"{bad}:12 spec.egress[1].action: 'deny' is not an action: Allow, Deny, Log or Pass "
        "(did you mean 'Deny'? actions are case-sensitive)",
        f"{bad}:15 spec.egress[1].destination.nets[0]: '10.0.0.300/24' is not a CIDR",
    ]
    assert "2 problems in 2 documents (2 files)" in err


def test_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text(GOOD + "---\n" + BAD)
    code, out, _ = run(["validate", "-o", "json", str(bad)], capsys)
    assert code == 1
    report = json.loads(out)
    assert report["valid"] is False
    assert report["documents"] == 2
    assert report["problems"][1] == {
        "file": str(bad),
        "line": 23,
        "document": 1,
        "path": "spec.egress[1].destination.nets[0]",
        "message": "'10.0.0.300/24' is not a CIDR",
    }


def test_json_output_when_valid(examples_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["validate", "-o", "json", str(examples_dir / "blog")], capsys)
    assert code == 0
    assert json.loads(out)["valid"] is True
    assert json.loads(out)["problems"] == []


def test_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(BAD.encode())))
    code, out, _ = run(["validate", "-"], capsys)
    assert code == 1
    assert out.startswith("<stdin>:12 spec.egress[1].action:")


def test_undecodable_inputs_are_problems_of_their_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"kind: \xff\n")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"kind: \xfe\n")))
    code, out, _ = run(["validate", "-o", "json", str(binary), "-"], capsys)
    assert code == 1
    problems = json.loads(out)["problems"]
    assert [(p["file"], p["line"], p["path"]) for p in problems] == [
        (str(binary), None, ""),
        ("<stdin>", None, ""),
    ]
    assert problems[0]["message"].startswith("not UTF-8 text (invalid start byte at byte 6")
    assert problems[1]["message"] == "not UTF-8 text (invalid start byte)"


def test_missing_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["validate", str(tmp_path / "nope.yaml")], capsys)
    assert code == 2
    assert "no such file or directory" in err


def test_no_arguments_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["validate"])
    assert exc.value.code == 2


def test_yaml_syntax_error_is_a_problem_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: v1\nkind: [unclosed\n")
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    code, out, _ = run(["validate", str(broken), str(good)], capsys)
    assert code == 1
    (line,) = out.splitlines()
    assert line.startswith(f"{broken}:")
    assert "invalid YAML" in line


def test_help_teaches_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["validate", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "egressguard validate examples/blog" in out
    assert "Exit status" in out


def test_installed_entry_point(examples_dir: Path) -> None:
    """The real process: module entry point, exit status and output streams."""
    result = subprocess.run(
        [sys.executable, "-m", "egressguard", "validate", str(examples_dir / "blog")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "valid: 3 documents" in result.stderr


# ---------------------------------------------------------------- API behind the command


def test_validate_documents_locates_every_problem() -> None:
    docs = yamlio.load_text(GOOD + "---\n" + BAD, "p.yaml")
    problems = validate_documents(docs)
    assert [(p.file, p.line, p.document, p.path) for p in problems] == [
        ("p.yaml", 20, 1, "spec.egress[1].action"),
        ("p.yaml", 23, 1, "spec.egress[1].destination.nets[0]"),
    ]


@pytest.mark.parametrize("kind", ["List", "GlobalNetworkSetList"])
def test_validate_documents_checks_list_items_like_the_loader(kind: str) -> None:
    text = (
        f"apiVersion: v1\nkind: {kind}\nitems:\n"
        "- apiVersion: crd.projectcalico.org/v1\n  kind: GlobalNetworkSet\n"
        "  metadata: {name: a}\n  spec: {nets: [192.0.2.0/24]}\n"
        "- apiVersion: crd.projectcalico.org/v1\n  kind: GlobalNetworkSet\n"
        "  metadata: {name: b}\n  spec: {nets: [bogus]}\n"
    )
    problems = validate_documents(yamlio.load_text(text, "list.yaml"))
    assert [(p.path, p.line) for p in problems] == [("items[1].spec.nets[0]", 11)]
    assert problems == list(load_documents(yamlio.load_text(text, "list.yaml")).problems)


def test_validate_documents_does_not_expand_a_list_kind_without_items() -> None:
    (doc,) = yamlio.load_text("apiVersion: v1\nkind: PodList\nitems: none\n", "x.yaml")
    (problem,) = validate_documents([doc])
    assert problem.path == "kind"
    assert "is not a kind egressguard understands" in problem.message


def test_validate_returns_unlocated_problems_with_paths() -> None:
    (doc,) = yamlio.load_text(BAD)
    problems = validate(doc.data)
    assert [(p.path, p.file, p.line) for p in problems] == [
        ("spec.egress[1].action", None, None),
        ("spec.egress[1].destination.nets[0]", None, None),
    ]


@pytest.mark.parametrize(
    "path",
    sorted((REPO / "examples").rglob("*.yaml")) + sorted((SHARED / "examples").rglob("*.yaml")),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_every_shipped_example_validates_clean(path: Path) -> None:
    """Calico manifests pass the validator; Blocklist configs pass the config checker."""
    from egressguard.app.config import check_document

    docs = yamlio.load_file(path)
    assert docs
    configs = [d for d in docs if d.data.get("kind") == "Blocklist"]
    manifests = [d for d in docs if d.data.get("kind") != "Blocklist"]
    assert validate_documents(manifests) == []
    assert [p for d in configs for p in check_document(d)] == []

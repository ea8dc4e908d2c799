from __future__ import annotations

import pathlib

import pytest

from egressguard.errors import ManifestError
from egressguard.problems import Problem
from egressguard.yamlio import dump_documents, load_file, load_text

TWO_DOCS = """\
apiVersion: v1
kind: A
spec:
  egress:
    - action: Log
    - action: Deny
      destination:
        nets: [10.0.0.0/8]
---
---
kind: B
"""


def test_lines_of_keys_and_items() -> None:
    docs = load_text(TWO_DOCS, "p.yaml")
    assert [d.index for d in docs] == [0, 1]  # the empty middle document is skipped
    first = docs[0]
    assert first.line_of(("spec", "egress", 1, "action")) == 6
    assert first.line_of(("spec", "egress", 1, "destination", "nets", 0)) == 8
    # An unknown path falls back to its nearest known ancestor.
    assert first.line_of(("spec", "egress", 1, "nope", 3)) == 6
    assert docs[1].line == 11


def test_locate_formats_like_a_compiler() -> None:
    doc = load_text(TWO_DOCS, "p.yaml")[0]
    problem = doc.locate(Problem("spec.egress[0].action", "bad"), ("spec", "egress", 0, "action"))
    assert str(problem) == "p.yaml:5 spec.egress[0].action: bad"


def test_duplicate_keys_are_rejected_with_line() -> None:
    with pytest.raises(ManifestError, match=r"x\.yaml:3: duplicate key 'a'"):
        load_text("a: 1\nb: 2\na: 3\n", "x.yaml")


def test_syntax_error_names_line() -> None:
    with pytest.raises(ManifestError, match=r"y\.yaml:2: invalid YAML"):
        load_text("a: [1, 2\nb: }\n", "y.yaml")


def test_errors_carry_source_line_and_reason(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ManifestError) as dup:
        load_text("a: 1\nb: 2\na: 3\n", "x.yaml")
    assert (dup.value.source, dup.value.line, dup.value.reason) == (
        "x.yaml",
        3,
        "duplicate key 'a'",
    )
    assert dup.value.message == "x.yaml:3: duplicate key 'a'"
    with pytest.raises(ManifestError) as syntax:
        load_text("a: [1, 2\nb: }\n", "y.yaml")
    assert (syntax.value.source, syntax.value.line) == ("y.yaml", 2)
    assert syntax.value.message == f"y.yaml:2: {syntax.value.reason}"
    assert syntax.value.reason.startswith("invalid YAML: ")
    assert syntax.value.hint == "check indentation and quoting"
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ManifestError) as unread:
        load_file(missing)
    assert (unread.value.source, unread.value.line) == (str(missing), None)
    assert unread.value.message == f"{missing}: {unread.value.reason}"
    assert unread.value.reason.startswith("cannot read: ")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"a: \xff\n")
    with pytest.raises(ManifestError) as undecodable:
        load_file(binary)
    assert undecodable.value.reason.startswith("not UTF-8 text (")
    assert undecodable.value.message == f"{binary}: {undecodable.value.reason}"


def test_errors_raised_without_a_place_keep_their_message() -> None:
    error = ManifestError("a GlobalNetworkSet manifest has no metadata.name", hint="h")
    assert (error.message, error.reason, error.source, error.line, error.hint) == (
        "a GlobalNetworkSet manifest has no metadata.name",
        "a GlobalNetworkSet manifest has no metadata.name",
        None,
        None,
        "h",
    )


def test_alias_bomb_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from egressguard import yamlio

    monkeypatch.setattr(yamlio, "NODE_BUDGET", 1000)
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    bomb += "c: [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
    with pytest.raises(ManifestError, match="node budget"):
        load_text(bomb, "bomb.yaml")


def test_timestamps_stay_strings_and_python_tags_are_refused() -> None:
    assert load_text("d: 2025-01-19\n")[0].data == {"d": "2025-01-19"}
    with pytest.raises(ManifestError):
        load_text("x: !!python/object/apply:os.system ['true']\n")


def test_dump_round_trips() -> None:
    values = [{"kind": "A", "spec": {"nets": ["10.0.0.0/8", "::/0"]}}, {"kind": "B"}]
    text = dump_documents(values)
    assert text.startswith("---\n")
    assert [d.data for d in load_text(text)] == values


def test_scalars_keep_yaml_types_and_cidrs_stay_strings() -> None:
    text = "a: 1\nb: 1.5\nc: true\nd: null\ne: 10.0.0.0/8\nf: 2001:db8::/32\ng: 0x1F\nh: '12'\n"
    data = load_text(text)[0].data
    assert data == {
        "a": 1,
        "b": 1.5,
        "c": True,
        "d": None,
        "e": "10.0.0.0/8",
        "f": "2001:db8::/32",
        "g": 31,
        "h": "12",
    }

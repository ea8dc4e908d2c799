from __future__ import annotations

import pytest

from egressguard.errors import ManifestError
from egressguard.problems import Problem
from egressguard.yamlio import dump_documents, load_text

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

"""docs/log-events.md stays true: its example parses to what it shows, every field and issue
code is documented."""

from __future__ import annotations

import json
import re
from pathlib import Path

from egressguard.logs.events import ISSUE_CODES, Event, event_to_json
from egressguard.logs.parse import LogParser

DOC = (Path(__file__).resolve().parents[3] / "docs" / "log-events.md").read_text()


def blocks(language: str) -> list[str]:
    """The fenced code blocks opened with ```language."""
    out: list[str] = []
    current: list[str] | None = None
    fence = ""
    for line in DOC.splitlines():
        if current is None and line.startswith("```"):
            fence, current = line[3:].strip(), []
        elif current is not None and line.startswith("```"):
            if fence == language:
                out.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return out


def test_the_example_line_parses_to_the_example_event() -> None:
    line = next(b for b in blocks("") if "calico-packet: IN=" in b).strip()
    shown = json.loads(blocks("json")[0])
    event = LogParser().parse(line, 1)
    assert isinstance(event, Event)
    parsed = event_to_json(event)
    parsed["source"] = shown["source"]  # added by the CLI
    assert {k: parsed[k] for k in shown} == shown
    hidden = {k: v for k, v in parsed.items() if k not in shown}
    assert all(v in (None, [], False) for v in hidden.values()), hidden


def test_every_field_and_issue_code_is_documented() -> None:
    documented = set(re.findall(r"`([a-z_0-9-]+)`", DOC))
    assert set(Event._fields) <= documented
    assert set(ISSUE_CODES) <= documented

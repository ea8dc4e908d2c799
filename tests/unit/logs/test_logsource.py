"""Log sources without waiting on the clock: spec parsing, reading files, the journalctl pipe.

Rotation while following is exercised with a live writer in
tests/integration/test_logs_follow.py.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from egressguard.adapters.logsource import (
    FileSource,
    JournaldSource,
    KmsgSource,
    LinesSource,
    open_source,
)
from egressguard.errors import EnvironmentProblem, UsageError

DATA = Path(__file__).resolve().parents[2] / "conformance" / "data"


def take(source: object, n: int) -> list[str]:
    stop = threading.Event()
    out: list[str] = []
    gen = source.lines(stop)  # type: ignore[attr-defined]
    try:
        for line in gen:
            out.append(line)
            if len(out) == n:
                break
    finally:
        stop.set()
        gen.close()
    return out


def test_open_source_specs(tmp_path: Path) -> None:
    assert isinstance(open_source("file:/var/log/syslog"), FileSource)
    assert isinstance(open_source("journald"), JournaldSource)
    assert isinstance(open_source("kmsg"), KmsgSource)
    with pytest.raises(UsageError):
        open_source("file:")
    with pytest.raises(UsageError):
        open_source("syslog")
    (tmp_path / "var" / "log").mkdir(parents=True)
    (tmp_path / "var" / "log" / "messages").write_text("")
    auto = open_source("auto", root=str(tmp_path))
    assert isinstance(auto, FileSource)
    assert auto.path == tmp_path / "var" / "log" / "messages"
    (tmp_path / "var" / "log" / "messages").unlink()
    assert isinstance(open_source("auto", root=str(tmp_path)), KmsgSource)


def test_file_source_from_start_keeps_partial_lines_for_later(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"one\ntwo\nthr")
    assert take(FileSource(path, from_start=True, poll=0.01), 2) == ["one", "two"]


def test_file_source_from_end_sees_only_new_lines(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_text("old\n")
    source = FileSource(path, poll=0.01)
    stop = threading.Event()
    gen = source.lines(stop)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.extend(gen), daemon=True)
    reader.start()
    try:
        for _ in range(500):  # bounded: 5 s
            if got:
                break
            with path.open("a") as f:
                f.write("new\n")
            threading.Event().wait(0.01)
    finally:
        stop.set()
        reader.join(timeout=5)
    assert got
    assert "old" not in got
    assert set(got) == {"new"}


def test_lines_source_is_the_fake() -> None:
    assert take(LinesSource(["a", "b", "c"]), 2) == ["a", "b"]


def test_journald_source_reads_json_lines_from_the_command() -> None:
    # journald does not run here: the real subprocess plumbing reads recorded records instead.
    command = [
        sys.executable,
        "-c",
        f"print(open({str(DATA / 'log_journald.jsonl')!r}).read(), end='')",
    ]
    lines = take(JournaldSource(command=command, poll=0.05), 100)
    assert len(lines) == len((DATA / "log_journald.jsonl").read_text().splitlines())
    assert lines[0].startswith('{"__CURSOR"')


def test_journald_source_reports_a_failing_journalctl() -> None:
    command = [
        sys.executable,
        "-c",
        "import sys; sys.stderr.write('No journal files'); sys.exit(1)",
    ]
    with pytest.raises(EnvironmentProblem, match="No journal files"):
        take(JournaldSource(command=command, poll=0.05), 1)
    with pytest.raises(EnvironmentProblem, match="not found"):
        take(JournaldSource(command=["egressguard-no-such-journalctl"]), 1)


def test_journald_default_command() -> None:
    assert JournaldSource().command == ["journalctl", "-k", "-o", "json", "-f", "-n", "0"]
    assert JournaldSource(from_start=True, directory="/host/var/log/journal").command[-3:] == [
        "all",
        "-D",
        "/host/var/log/journal",
    ]


def _lines_until(source: object, last: str, limit: int = 100) -> list[str]:
    """Lines of ``source`` up to ``last`` (at most ``limit``; stopped after 20 s at worst)."""
    stop = threading.Event()
    timer = threading.Timer(20, stop.set)
    timer.start()
    out: list[str] = []
    gen = source.lines(stop)  # type: ignore[attr-defined]
    try:
        for line in gen:
            out.append(line)
            if line == last or len(out) >= limit:
                break
    finally:
        stop.set()
        timer.cancel()
        gen.close()
    return out


@pytest.mark.parametrize("kind", ["file", "journald"])
def test_a_line_without_end_is_cut_at_the_bound(tmp_path: Path, kind: str) -> None:
    # A writer that never ends its line cannot make a follower buffer without bound: past
    # 1 MiB (plus at most one read) what it has is a line of its own, and reading goes on.
    size = 3 << 20
    if kind == "file":
        path = tmp_path / "log"
        path.write_bytes(b"x" * size + b"\nnext\n")
        source: object = FileSource(path, from_start=True, poll=0.01)
    else:
        write = f"import sys; sys.stdout.buffer.write(b'x' * {size} + b'\\nnext\\n')"
        source = JournaldSource(command=[sys.executable, "-c", write], poll=0.05)
    lines = _lines_until(source, "next")
    assert lines[-1] == "next"
    pieces = lines[:-1]
    assert len(pieces) > 1
    assert all(set(piece) == {"x"} and len(piece) <= (1 << 20) + (1 << 16) for piece in pieces)
    assert sum(map(len, pieces)) == size

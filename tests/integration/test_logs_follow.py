"""Following a real file while a writer rotates it by rename and by copytruncate.

The writer behaves like rsyslog + logrotate: lines are appended; ``rename`` rotation moves the
file away and the writer keeps appending to the old file until it reopens (HUP), then writes to
a new file; ``copytruncate`` copies and truncates in place. Every line must arrive exactly once,
in order per file. Every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from egressguard.adapters.logsource import FileSource

pytestmark = pytest.mark.integration

LINE = (
    "2025-01-19T16:13:46.406155+00:00 node-1 kernel: calico-packet: IN=cali1 OUT=eth0 "
    "SRC=10.244.0.5 DST=203.0.113.9 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID={n} DF PROTO=TCP "
    "SPT=40000 DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0 "
)


class Follower:
    """Collects a FileSource's lines on a thread."""

    def __init__(self, source: FileSource) -> None:
        self.source = source
        self.stop = threading.Event()
        self.lines: list[str] = []
        self._gen = source.lines(self.stop)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for line in self._gen:
            self.lines.append(line)

    def wait_for(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.lines) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.lines) >= count, f"got {len(self.lines)} of {count} lines: {self.lines}"

    def close(self) -> None:
        self.stop.set()
        self._thread.join(timeout=10)
        assert not self._thread.is_alive()


def write(handle: object, numbers: range) -> list[str]:
    lines = [f"line {n}" for n in numbers]
    for text in lines:
        handle.write(text + "\n")  # type: ignore[attr-defined]
        handle.flush()  # type: ignore[attr-defined]
    return lines


def test_rename_rotation_with_late_writes(tmp_path: Path) -> None:
    path = tmp_path / "messages"
    writer = path.open("w")
    expected = write(writer, range(5))
    follower = Follower(FileSource(path, from_start=True, poll=0.02, rotate_wait=30))
    try:
        follower.wait_for(5)
        os.rename(path, tmp_path / "messages.1")  # logrotate: rename ...
        expected += write(writer, range(5, 8))  # ... the writer has not reopened yet ...
        writer.close()
        writer = path.open("w")  # ... HUP: it reopens the path, a new file
        expected += write(writer, range(8, 12))
        follower.wait_for(12)
        with (tmp_path / "messages.1").open("a") as old:  # a writer still on the old file
            expected += write(old, range(12, 14))
        follower.wait_for(14)
    finally:
        writer.close()
        follower.close()
    assert sorted(follower.lines, key=lambda s: int(s.split()[1])) == expected
    assert follower.lines[:12] == expected[:12]  # in order up to the late writes
    assert follower.source.stats.rotation == 1
    assert follower.source.stats.truncation == 0


def test_copytruncate_rotation(tmp_path: Path) -> None:
    path = tmp_path / "syslog"
    writer = path.open("a")
    expected = write(writer, range(20))
    follower = Follower(FileSource(path, from_start=True, poll=0.02))
    try:
        follower.wait_for(20)
        shutil.copyfile(path, tmp_path / "syslog.1")  # logrotate copytruncate: copy ...
        os.truncate(path, 0)  # ... and truncate in place; the writer keeps its O_APPEND handle
        deadline = time.monotonic() + 10
        while follower.source.stats.truncation == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        expected += write(writer, range(20, 25))
        follower.wait_for(25)
    finally:
        writer.close()
        follower.close()
    assert follower.lines == expected
    assert follower.source.stats.truncation == 1
    assert follower.source.stats.rotation == 0


def test_file_that_appears_later(tmp_path: Path) -> None:
    path = tmp_path / "kern.log"
    follower = Follower(FileSource(path, poll=0.02))
    try:
        time.sleep(0.1)
        with path.open("w") as writer:
            expected = write(writer, range(3))
        follower.wait_for(3)
    finally:
        follower.close()
    assert follower.lines == expected
    assert follower.source.stats.reopen == 1


def test_cli_follow_prints_events_across_a_rotation(tmp_path: Path) -> None:
    path = tmp_path / "messages"
    path.write_text(LINE.format(n=1) + "\n")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "egressguard", "logs", "follow", "--source", f"file:{path}",
            "--from-start", "--poll", "0.05", "--max-events", "3", "--duration", "60",
            "--prefix", "calico-packet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert '"ip_id":1,' in first
        os.rename(path, tmp_path / "messages.1")
        path.write_text(LINE.format(n=2) + "\n" + LINE.format(n=3) + "\n")
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0, err
    assert ['"ip_id":2,' in line or '"ip_id":3,' in line for line in out.splitlines()] == [
        True,
        True,
    ]

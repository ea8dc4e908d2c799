"""Where kernel log lines come from when following: a file, journald or ``/dev/kmsg``.

Every source yields text lines (without the newline) until ``stop`` is set, waiting in bounded
steps so a caller's stop or timeout takes effect within one poll interval. Each keeps counts of
what happened to it (``stats``: rotation, truncation, reopen, lost), which the follower folds
into metrics.

- ``FileSource`` follows a path across rotations, polling (no inotify dependency): a new inode
  at the path means rename-and-create rotation (the rest of the old file is read first, and it
  stays open ``rotate_wait`` seconds for a writer that has not reopened yet), a size below the
  read offset means ``copytruncate``. A truncation followed by more than the old
  offset's worth of writes before the next poll cannot be told from appends (the limit of every
  offset-based tailer); logrotate's ``copytruncate`` leaves that window open anyway.
- ``JournaldSource`` runs ``journalctl -k -o json -f`` and yields its JSON lines; the parser
  keeps only ``_TRANSPORT=kernel`` records.
- ``reopen`` counts a file that was absent when following started and appeared later.
- ``KmsgSource`` reads ``/dev/kmsg`` records (one ``read`` each); records the ring overwrote
  before we read them are counted as ``lost``.
- ``LinesSource`` is the in-package fake: lines from memory.

``open_source("file:PATH" | "journald" | "kmsg" | "auto")`` picks one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import shutil
import subprocess
import threading
import time
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import Protocol

from egressguard.errors import EnvironmentProblem, UsageError

__all__ = [
    "AUTO_FILES",
    "FileSource",
    "JournaldSource",
    "KmsgSource",
    "LinesSource",
    "LogSource",
    "SourceStats",
    "boot_time",
    "open_source",
]

#: Files ``auto`` tries, in order: kernel-only first (Ubuntu), then the distribution's syslog
#: (Azure Linux/Mariner write /var/log/messages, Ubuntu /var/log/syslog).
AUTO_FILES = ("/var/log/kern.log", "/var/log/messages", "/var/log/syslog")
_CHUNK = 1 << 16
#: A line longer than this without a newline is emitted as is (the parser rejects it) so a
#: runaway writer cannot make the follower buffer without bound.
_MAX_PENDING = 1 << 20


class SourceStats:
    """Monotonic counts of what happened to a source."""

    __slots__ = ("lost", "reopen", "rotation", "truncation")

    def __init__(self) -> None:
        self.rotation = 0
        self.truncation = 0
        self.reopen = 0
        self.lost = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class LogSource(Protocol):
    """A stream of log lines."""

    name: str
    stats: SourceStats

    def lines(self, stop: threading.Event) -> Generator[str, None, None]:
        """Lines as they arrive, until ``stop`` is set (then return within a poll interval)."""
        ...


def boot_time() -> float:
    """Seconds since the epoch at which the kernel's monotonic clock started (the zero of
    ``[ uptime]`` stamps and kmsg timestamps), as well as this process can tell."""
    return time.time() - time.monotonic()


class LinesSource:
    """The fake: yields the given lines, then waits for ``stop`` (or returns at once)."""

    def __init__(self, lines: Iterable[str], *, name: str = "memory", wait: bool = False) -> None:
        self.name = name
        self.stats = SourceStats()
        self._lines = list(lines)
        self._wait = wait

    def lines(self, stop: threading.Event) -> Generator[str, None, None]:
        for line in self._lines:
            if stop.is_set():
                return
            yield line
        if self._wait:
            stop.wait()


class FileSource:
    """Follow ``path`` like ``tail -F``: rotation by rename and by truncation, bounded polling."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        from_start: bool = False,
        poll: float = 0.2,
        rotate_wait: float = 5.0,
    ) -> None:
        self.path = Path(path)
        self.name = f"file:{self.path}"
        self.stats = SourceStats()
        self.from_start = from_start
        self.poll = poll
        self.rotate_wait = rotate_wait

    def _open(self, *, at_end: bool) -> tuple[int, int, int] | None:
        """``(fd, inode, device)`` of the file now at ``path``, positioned; None if absent."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise EnvironmentProblem(
                f"{self.path}: cannot read: {exc.strerror or exc}",
                hint="run as root, or mount the host's /var/log read-only into the container",
            ) from exc
        st = os.fstat(fd)
        if at_end:
            os.lseek(fd, 0, os.SEEK_END)
        return fd, st.st_ino, st.st_dev

    def lines(self, stop: threading.Event) -> Generator[str, None, None]:
        opened = self._open(at_end=not self.from_start)
        while opened is None:
            if stop.wait(self.poll):
                return
            opened = self._open(at_end=False)  # created after we started: read it all
            if opened is not None:
                self.stats.reopen += 1
        fd, inode, device = opened
        pending = b""
        # After a rename rotation the old file stays open for rotate_wait seconds: a writer
        # that has not reopened yet (rsyslog before its HUP) still appends to it.
        rotated: list[tuple[int, float]] = []
        try:
            while not stop.is_set():
                chunk = os.read(fd, _CHUNK)
                if chunk:
                    complete, pending = _split(pending, chunk)
                    yield from complete
                    continue
                for old_fd, _ in rotated:
                    yield from _drain(old_fd)
                while rotated and rotated[0][1] < time.monotonic():
                    os.close(rotated.pop(0)[0])
                # At the end of what we have: has the file at the path changed under us?
                try:
                    st = os.stat(self.path)
                except FileNotFoundError:
                    st = None  # renamed away, not recreated yet: keep the old file, wait
                if st is not None and (st.st_ino, st.st_dev) != (inode, device):
                    reopened = self._open(at_end=False)
                    if reopened is not None:
                        yield from _drain(fd, pending)
                        pending = b""
                        rotated.append((fd, time.monotonic() + self.rotate_wait))
                        fd, inode, device = reopened
                        self.stats.rotation += 1
                        continue
                elif st is not None and st.st_size < os.lseek(fd, 0, os.SEEK_CUR):
                    # copytruncate: start again from the top of the same file.
                    if pending:
                        yield pending.decode("utf-8", errors="replace")
                        pending = b""
                    os.lseek(fd, 0, os.SEEK_SET)
                    self.stats.truncation += 1
                    continue
                stop.wait(self.poll)
        finally:
            os.close(fd)
            for old_fd, _ in rotated:
                os.close(old_fd)


def _split(pending: bytes, chunk: bytes) -> tuple[list[str], bytes]:
    """Complete lines of ``pending + chunk`` and the unfinished rest (emitted anyway when it
    grows past ``_MAX_PENDING``)."""
    *complete, rest = (pending + chunk).split(b"\n")
    lines = [raw.decode("utf-8", errors="replace") for raw in complete]
    if len(rest) > _MAX_PENDING:
        lines.append(rest.decode("utf-8", errors="replace"))
        rest = b""
    return lines, rest


def _drain(fd: int, pending: bytes = b"") -> Generator[str, None, None]:
    """Everything left in ``fd`` (a rotated file), the last line even without its newline."""
    while chunk := os.read(fd, _CHUNK):
        complete, pending = _split(pending, chunk)
        yield from complete
    if pending:
        yield pending.decode("utf-8", errors="replace")


class KmsgSource:
    """Records from ``/dev/kmsg`` (``prio,seq,usec,flags;message``), newest first unless
    ``from_start``. Continuation lines (`` KEY=value`` device properties) are dropped."""

    def __init__(
        self, path: str = "/dev/kmsg", *, from_start: bool = False, poll: float = 0.2
    ) -> None:
        self.path = path
        self.name = "kmsg"
        self.stats = SourceStats()
        self.from_start = from_start
        self.poll = poll

    def lines(self, stop: threading.Event) -> Generator[str, None, None]:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise EnvironmentProblem(
                f"{self.path}: cannot open: {exc.strerror or exc}",
                hint="reading /dev/kmsg needs root (CAP_SYSLOG) or kernel.dmesg_restrict=0",
            ) from exc
        try:
            if not self.from_start:
                os.lseek(fd, 0, os.SEEK_END)
            while not stop.is_set():
                try:
                    record = os.read(fd, 8192)
                except BlockingIOError:
                    select.select([fd], [], [], self.poll)
                    continue
                except OSError as exc:
                    if exc.errno == errno.EPIPE:  # the ring overwrote records we had not read
                        self.stats.lost += 1
                        continue
                    raise EnvironmentProblem(f"{self.path}: read failed: {exc}") from exc
                if not record:
                    select.select([fd], [], [], self.poll)
                    continue
                yield record.split(b"\n", 1)[0].decode("utf-8", errors="replace")
        finally:
            os.close(fd)


class JournaldSource:
    """Kernel records from journald via ``journalctl -k -o json -f`` (one JSON object a line).

    ``command`` replaces the journalctl invocation (the first element is looked up on PATH).
    """

    def __init__(
        self,
        *,
        from_start: bool = False,
        directory: str | None = None,
        command: list[str] | None = None,
        poll: float = 0.2,
    ) -> None:
        self.name = "journald"
        self.stats = SourceStats()
        self.poll = poll
        if command is None:
            command = ["journalctl", "-k", "-o", "json", "-f", "-n", "all" if from_start else "0"]
            if directory is not None:
                command += ["-D", directory]
        self.command = command

    def lines(self, stop: threading.Event) -> Generator[str, None, None]:
        exe = shutil.which(self.command[0])
        if exe is None:
            raise EnvironmentProblem(
                f"{self.command[0]}: not found",
                hint="install systemd's journalctl in the image, or follow a file or kmsg",
            )
        try:
            proc = subprocess.Popen(
                [exe, *self.command[1:]],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as exc:
            raise EnvironmentProblem(f"{self.command[0]}: cannot start: {exc}") from exc
        stdout, stderr = proc.stdout, proc.stderr
        if stdout is None or stderr is None:  # cannot happen with PIPE; keeps the types exact
            raise EnvironmentProblem("journalctl: no pipes")
        fd = stdout.fileno()
        pending = b""
        try:
            while not stop.is_set():
                ready, _, _ = select.select([fd], [], [], self.poll)
                if not ready:
                    continue
                chunk = os.read(fd, _CHUNK)
                if not chunk:
                    code = proc.wait(timeout=5)
                    if pending:
                        yield pending.decode("utf-8", errors="replace")
                    if code != 0:
                        err = stderr.read(4096).decode("utf-8", errors="replace").strip()
                        raise EnvironmentProblem(
                            f"journalctl exited with status {code}: {err or 'no message'}",
                            hint="is journald running, and is its journal mounted?",
                        )
                    return
                complete, pending = _split(pending, chunk)
                for line in complete:
                    if line:
                        yield line
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
            with contextlib.suppress(OSError):
                stdout.close()
                stderr.close()


def open_source(
    spec: str, *, from_start: bool = False, poll: float = 0.2, root: str = "/"
) -> LogSource:
    """``file:PATH``, ``journald``, ``kmsg`` or ``auto`` (the first of ``AUTO_FILES`` that
    exists under ``root``, else journald when a journal directory exists, else kmsg)."""
    if spec.startswith("file:"):
        path = spec[len("file:") :]
        if not path:
            raise UsageError("--source file: needs a path, e.g. file:/var/log/syslog")
        return FileSource(path, from_start=from_start, poll=poll)
    if spec == "journald":
        return JournaldSource(from_start=from_start, poll=poll)
    if spec == "kmsg":
        return KmsgSource(os.path.join(root, "dev/kmsg"), from_start=from_start, poll=poll)
    if spec == "auto":
        for candidate in AUTO_FILES:
            path = os.path.join(root, candidate.lstrip("/"))
            if os.path.isfile(path):
                return FileSource(path, from_start=from_start, poll=poll)
        for journal in ("var/log/journal", "run/log/journal"):
            directory = os.path.join(root, journal)
            if os.path.isdir(directory) and any(os.scandir(directory)):
                return JournaldSource(
                    from_start=from_start,
                    directory=directory if root != "/" else None,
                    poll=poll,
                )
        return KmsgSource(os.path.join(root, "dev/kmsg"), from_start=from_start, poll=poll)
    raise UsageError(
        f"--source {spec!r}: expected file:PATH, journald, kmsg or auto",
        hint="e.g. --source file:/var/log/syslog",
    )

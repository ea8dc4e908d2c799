"""The kernel log from a fixed point on: ``/dev/kmsg`` records written after a cursor opened.

``logsource.KmsgSource`` follows the log as a generator and positions itself lazily, on the
first ``next()``, which blocks until a record arrives; it suits ``logs follow``. A one-shot
measurement such as ``egressguard lab run`` needs the opposite: fix the position *before* the
probes run (synchronously, in the constructor), then collect what the probes caused with a
bounded wait and no reader thread. That is all ``KmsgCursor`` does.

Each ``/dev/kmsg`` ``read`` returns exactly one record, ``prio,seq,usec,flags;message`` plus
optional continuation lines (`` KEY=value``), which are dropped; the record text is what
``logs.LogParser`` reads as the ``kmsg`` wrapper. Records the ring overwrote before we read
them make ``read`` fail with ``EPIPE``; they are counted in ``lost`` and reading goes on.

``LinesCursor`` is the in-package fake: records from memory, handed out once.
"""

from __future__ import annotations

import errno
import os
import select
import time
from collections.abc import Iterable
from typing import Protocol

from egressguard.errors import EnvironmentProblem

__all__ = ["KernelLogCursor", "KmsgCursor", "LinesCursor"]

#: One record is at most ~8 KiB in the kernel (``PRINTK_MESSAGE_MAX`` and the dict data).
_RECORD_MAX = 8192
#: Upper bound of records one ``read`` call returns, so a flood cannot keep it busy forever.
_MAX_RECORDS = 200_000


class KernelLogCursor(Protocol):
    """Kernel log records written since the cursor was opened."""

    lost: int

    def read(self, *, wait: float = 0.0) -> list[str]:
        """Every record available now; when there is none, wait up to ``wait`` seconds for
        the first and return what then is available (possibly nothing)."""
        ...

    def close(self) -> None: ...


class KmsgCursor:
    """``/dev/kmsg`` from the moment of construction (needs root or CAP_SYSLOG)."""

    def __init__(self, path: str = "/dev/kmsg") -> None:
        self.path = path
        self.lost = 0
        try:
            self._fd: int | None = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise EnvironmentProblem(
                f"{path}: cannot open: {exc.strerror or exc}",
                hint="reading the kernel log needs root (CAP_SYSLOG) or kernel.dmesg_restrict=0",
            ) from exc
        os.lseek(self._fd, 0, os.SEEK_END)

    def _drain(self, fd: int) -> list[str]:
        out: list[str] = []
        while len(out) < _MAX_RECORDS:
            try:
                record = os.read(fd, _RECORD_MAX)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # overwritten before we read it
                    self.lost += 1
                    continue
                raise EnvironmentProblem(f"{self.path}: read failed: {exc}") from exc
            if not record:
                break
            out.append(record.split(b"\n", 1)[0].decode("utf-8", errors="replace"))
        return out

    def read(self, *, wait: float = 0.0) -> list[str]:
        if self._fd is None:
            raise EnvironmentProblem(f"{self.path}: the cursor is closed")
        out = self._drain(self._fd)
        deadline = time.monotonic() + max(0.0, wait)
        while not out and (left := deadline - time.monotonic()) > 0:
            select.select([self._fd], [], [], left)
            out = self._drain(self._fd)
        return out

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> KmsgCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LinesCursor:
    """The fake: ``read`` returns the given records the first time, nothing afterwards."""

    def __init__(self, records: Iterable[str]) -> None:
        self._records = list(records)
        self.lost = 0
        self.closed = False

    def read(self, *, wait: float = 0.0) -> list[str]:
        out, self._records = self._records, []
        return out

    def close(self) -> None:
        self.closed = True

"""The output directory of ``build``: read the previous build, replace it in one step.

A failed or interrupted build must never leave a half-written directory (a ``kubectl apply -f``
of it would apply a mix of two builds, or a subset of the shards). ``LocalManifestDir.replace``
therefore writes the new files into a fresh sibling directory, syncs them, and then swaps it
with the target:

* with ``renameat2(RENAME_EXCHANGE)`` (Linux ≥ 3.15, glibc ≥ 2.28) the swap is one atomic
  system call: at every instant the path names either the complete old or the complete new
  build;
* where that is unavailable (another OS, a filesystem without support) it falls back to two
  renames (target → ``.<name>.old-*``, new → target); a crash between them leaves the old build
  complete under the ``.old-*`` name and no target, never a mixture.

The old tree is removed afterwards. The directory holds only top-level regular files; anything
else in it is reported rather than silently destroyed (``read`` refuses subdirectories).

``MemoryManifestDir`` is the in-package fake with the same contract.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Protocol

from egressguard.adapters.state import fsync_dir
from egressguard.errors import EnvironmentProblem, UsageError

__all__ = ["LocalManifestDir", "ManifestDir", "MemoryManifestDir"]

#: Largest file ``read`` accepts; a previous build never has anything near this.
MAX_FILE_BYTES: Final = 64 * 1024 * 1024
_AT_FDCWD: Final = -100
_RENAME_EXCHANGE: Final = 2


class ManifestDir(Protocol):
    """Where a build's files live."""

    @property
    def location(self) -> str:
        """Shown in messages."""
        ...

    def read(self) -> dict[str, bytes] | None:
        """Every file by name, or ``None`` when the directory does not exist."""
        ...

    def replace(self, files: Mapping[str, bytes]) -> None:
        """Make the directory hold exactly ``files``, all at once."""
        ...


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with renameat2; False when the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    renameat2.restype = ctypes.c_int
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


class LocalManifestDir:
    """A directory on the local filesystem (symlinks are followed to the real directory)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def location(self) -> str:
        return str(self.path)

    def read(self) -> dict[str, bytes] | None:
        target = Path(os.path.realpath(self.path))
        if not target.exists():
            return None
        if not target.is_dir():
            raise UsageError(f"{self.path}: not a directory")
        out: dict[str, bytes] = {}
        try:
            for entry in sorted(target.iterdir()):
                if entry.is_dir():
                    raise UsageError(
                        f"{self.path}: holds a subdirectory {entry.name!r}; a build directory "
                        "holds only the files egressguard writes",
                        hint="write the build to an empty or new directory",
                    )
                if entry.stat().st_size > MAX_FILE_BYTES:
                    raise UsageError(f"{entry}: larger than {MAX_FILE_BYTES} bytes")
                out[entry.name] = entry.read_bytes()
        except OSError as exc:
            raise EnvironmentProblem(f"{self.path}: cannot read: {exc.strerror or exc}") from exc
        return out

    def replace(self, files: Mapping[str, bytes]) -> None:
        for name in files:
            if not name or "/" in name or name in (".", "..") or "\0" in name:
                raise ValueError(f"not a plain file name: {name!r}")
        target = Path(os.path.realpath(self.path))
        parent = target.parent
        tag = secrets.token_hex(4)
        fresh = parent / f".{target.name}.new-{tag}"
        try:
            parent.mkdir(parents=True, exist_ok=True)
            fresh.mkdir()
            for name, data in sorted(files.items()):
                with open(fresh / name, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            fsync_dir(fresh)
            if not target.exists():
                os.rename(fresh, target)
            elif _exchange(fresh, target):
                shutil.rmtree(fresh, ignore_errors=True)  # now the old build
            else:
                old = parent / f".{target.name}.old-{tag}"
                os.rename(target, old)
                os.rename(fresh, target)
                shutil.rmtree(old, ignore_errors=True)
            fsync_dir(parent)
        except OSError as exc:
            raise EnvironmentProblem(
                f"{self.path}: cannot write the build: {exc.strerror or exc}",
                hint="the previous build, if any, is unchanged",
            ) from exc
        finally:
            with contextlib.suppress(OSError):
                if fresh.exists():
                    shutil.rmtree(fresh)


class MemoryManifestDir:
    """In-memory fake: ``files`` is ``None`` until the first ``replace``."""

    def __init__(
        self, files: Mapping[str, bytes] | None = None, location: str = "<memory>"
    ) -> None:
        self.files: dict[str, bytes] | None = dict(files) if files is not None else None
        self._location = location
        self.writes = 0

    @property
    def location(self) -> str:
        return self._location

    def read(self) -> dict[str, bytes] | None:
        return dict(self.files) if self.files is not None else None

    def replace(self, files: Mapping[str, bytes]) -> None:
        self.files = dict(files)
        self.writes += 1

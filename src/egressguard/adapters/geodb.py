"""Local files for sources: feed files, geo CSVs, per-country CIDR directories and MMDB databases.

Everything here touches the file system or the ``maxminddb`` library (which reads and maps
files); the parsers in ``feeds`` only ever see bytes or plain records. Reads are bounded by a
size cap like downloads are, so a mistaken path (a disk image, ``/dev/zero``) cannot exhaust
memory.

* ``read_file(path, size_cap)`` → bytes.
* ``read_dir(path, size_cap)`` → ``Blob`` per regular file, names relative to the directory,
  recursing one level (``ipv4/de.cidr``), sorted, hidden files skipped, the cap applying to
  the total.
* ``mmdb_records(data)`` → ``MmdbContent``: every network of a MaxMind-format database as
  ``(family, first, last, record)`` plus its metadata. The database is written to a private
  temporary file and opened with the default mode, so the C extension (memory-mapped) is used
  when installed; IPv4 networks of an IPv6 tree come out as IPv4 (the reader skips the
  IPv4-mapped and 6to4 aliases).

``MemoryFiles`` is the in-package fake with the same contract.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import maxminddb

from egressguard.errors import SourceError
from egressguard.feeds.result import Blob

__all__ = ["GeoFiles", "LocalFiles", "MemoryFiles", "MmdbContent", "mmdb_records"]

_MAX_DEPTH = 2


@dataclass(frozen=True, slots=True)
class MmdbContent:
    """All networks of an MMDB and the facts from its metadata (type, build date, IP version)."""

    records: list[tuple[int, int, int, Any]]
    meta: dict[str, str] = field(default_factory=dict)


class GeoFiles(Protocol):
    """Reads source files from local storage."""

    def read_file(self, path: str, size_cap: int) -> bytes: ...

    def read_dir(self, path: str, size_cap: int) -> list[Blob]: ...

    def exists(self, path: str) -> bool: ...


def _too_large(path: str, cap: int) -> SourceError:
    return SourceError(
        f"{path}: larger than the size cap of {cap} bytes",
        hint="raise size_cap on the source if the file really is that large",
    )


class LocalFiles:
    """``GeoFiles`` on the real file system."""

    def exists(self, path: str) -> bool:
        return Path(path).is_file()

    def read_file(self, path: str, size_cap: int) -> bytes:
        try:
            with open(path, "rb") as handle:
                data = handle.read(size_cap + 1)
        except OSError as exc:
            raise SourceError(
                f"{path}: cannot read: {exc.strerror}",
                hint="check the path in the source's file/files setting",
            ) from exc
        if len(data) > size_cap:
            raise _too_large(path, size_cap)
        return data

    def read_dir(self, path: str, size_cap: int) -> list[Blob]:
        root = Path(path)
        if not root.is_dir():
            raise SourceError(
                f"{path}: not a directory",
                hint="cidr-dir expects a folder with one file per country code",
            )
        blobs: list[Blob] = []
        total = 0
        for file in self._walk(root, 1):
            data = self.read_file(str(file), size_cap - total)
            total += len(data)
            blobs.append(Blob(file.relative_to(root).as_posix(), data))
        return blobs

    def _walk(self, folder: Path, depth: int) -> Iterator[Path]:
        try:
            entries = sorted(folder.iterdir())
        except OSError as exc:
            raise SourceError(f"{folder}: cannot list: {exc.strerror}") from exc
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir() and depth < _MAX_DEPTH:
                yield from self._walk(entry, depth + 1)
            elif entry.is_file():
                yield entry


class MemoryFiles:
    """In-memory ``GeoFiles`` for unit tests: ``files`` maps paths to bytes."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        self.files = dict(files)

    def exists(self, path: str) -> bool:
        return path in self.files

    def read_file(self, path: str, size_cap: int) -> bytes:
        if path not in self.files:
            raise SourceError(f"{path}: cannot read: No such file or directory")
        data = self.files[path]
        if len(data) > size_cap:
            raise _too_large(path, size_cap)
        return data

    def read_dir(self, path: str, size_cap: int) -> list[Blob]:
        prefix = path.rstrip("/") + "/"
        blobs = [
            Blob(p[len(prefix) :], d) for p, d in sorted(self.files.items()) if p.startswith(prefix)
        ]
        if not blobs:
            raise SourceError(f"{path}: not a directory")
        if sum(len(b.data) for b in blobs) > size_cap:
            raise _too_large(path, size_cap)
        return blobs


def mmdb_records(data: bytes, *, what: str = "mmdb") -> MmdbContent:
    """Every network of a MaxMind-format database, with its record (see the module doc)."""
    fd, tmp = tempfile.mkstemp(prefix="egressguard-", suffix=".mmdb")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        try:
            reader = maxminddb.open_database(tmp)
        except (maxminddb.InvalidDatabaseError, ValueError, OSError) as exc:
            raise SourceError(
                f"{what}: not a MaxMind DB file: {exc}",
                hint="maxmind-mmdb expects a .mmdb database (GeoLite2-Country.mmdb or similar)",
            ) from exc
        try:
            md = reader.metadata()
            meta = {
                "database_type": str(md.database_type),
                "ip_version": str(md.ip_version),
                "date": datetime.fromtimestamp(int(md.build_epoch), UTC).isoformat(),
            }
            records = []
            for network, record in reader:
                first = int(network.network_address)
                last = int(network.broadcast_address)
                records.append((network.version, first, last, record))
        except (maxminddb.InvalidDatabaseError, ValueError) as exc:
            raise SourceError(f"{what}: damaged MaxMind DB: {exc}") from exc
        finally:
            reader.close()
        return MmdbContent(records, meta)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)

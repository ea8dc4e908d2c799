"""The state directory: the last good copy of every source, written so a crash cannot corrupt it.

A failed, empty, truncated or oversized feed must never shrink what is applied (DESIGN §6), so
each source part (one URL or file of a source) keeps its last *validated* download here, with
the metadata needed for the next conditional request and for status output::

    <root>/<key-dir>/meta.json               which body is current, ETag, Last-Modified, times, ...
    <root>/<key-dir>/body-<sha256>           the raw bytes as downloaded (content-addressed)
    <root>/<key-dir>/parsed-<sha256>         an optional parsed form, so a 304 needs no re-parse

Every file is written to a temporary name in the same directory, flushed with ``fsync`` and
renamed over its target, then the directory is synced. Bodies are content-addressed and written
*before* the ``meta.json`` that points at them, and old bodies are removed only after the new
``meta.json`` is in place, so after a crash at any instant ``meta.json`` names a complete body:
either the old copy or the new one. Temporary files a crash leaves behind (``.tmp-*``) are
ignored by readers and removed by the next save. A body whose hash does not match its metadata
is treated as absent rather than trusted.

``MemoryStateStore`` is the in-package fake with the same contract, for unit tests.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from egressguard.errors import SourceError

__all__ = [
    "CopyMeta",
    "DirectoryStateStore",
    "MemoryStateStore",
    "StateStore",
    "StoredCopy",
    "atomic_write",
    "fsync_dir",
]

_META = "meta.json"
_TMP_PREFIX = ".tmp-"


@dataclass(frozen=True, slots=True)
class CopyMeta:
    """What is known about a stored copy. Times are Unix seconds (UTC).

    ``fetched_at`` is when these bytes were downloaded or read; ``checked_at`` is the last time
    the provider confirmed them (a 304 or an identical download). ``location`` is the redacted
    URL or the file path. ``entries`` is the parser's entry count; ``extra`` holds anything a
    source wants to remember (the feed's own date, the checksum file's text).
    """

    sha256: str
    size: int
    fetched_at: float
    checked_at: float
    location: str = ""
    etag: str | None = None
    last_modified: str | None = None
    entries: int | None = None
    parse_key: str | None = None
    parsed_sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CopyMeta:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True, slots=True)
class StoredCopy:
    """The last good copy of one source part: its bytes and metadata."""

    key: str
    body: bytes
    meta: CopyMeta


class StateStore(Protocol):
    """Keeps the last good copy per key (``<source name>`` or ``<source name>#<part>``)."""

    def load(self, key: str) -> StoredCopy | None:
        """The stored copy, or None when there is none (or it is damaged)."""
        ...

    def save(self, key: str, body: bytes, meta: CopyMeta, parsed: bytes | None = None) -> None:
        """Replace the copy atomically. ``meta.sha256``/``size`` must describe ``body``."""
        ...

    def touch(self, key: str, **changes: Any) -> None:
        """Update metadata fields of the stored copy (e.g. ``checked_at`` after a 304)."""
        ...

    def load_parsed(self, key: str) -> bytes | None:
        """The parsed form saved with the current copy, if any and intact."""
        ...


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries to disk, so a rename or a new file in it survives a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new content, never a mix.

    Temp file in the same directory (so ``rename`` is atomic), ``fsync`` of the file, rename,
    ``fsync`` of the directory (so the rename itself survives a power cut). ``mode`` is the new
    file's permission (less the umask); the default keeps feed copies private.
    """
    tmp = path.with_name(f"{_TMP_PREFIX}{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _key_dir(key: str) -> str:
    """A file-system-safe, collision-free directory name for a key."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", key)[:80].lstrip(".") or "_"
    return f"{safe}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


class DirectoryStateStore:
    """``StateStore`` on a directory (created on first save, mode 0700)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def _dir(self, key: str) -> Path:
        return self.root / _key_dir(key)

    def _read_meta(self, key: str) -> CopyMeta | None:
        path = self._dir(key) / _META
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SourceError(
                f"{path}: cannot read state: {exc.strerror}",
                hint="check the permissions of the state directory",
            ) from exc
        try:
            data = json.loads(raw)
            return CopyMeta.from_json(data)
        except (ValueError, TypeError):
            return None

    def load(self, key: str) -> StoredCopy | None:
        meta = self._read_meta(key)
        if meta is None:
            return None
        try:
            body = (self._dir(key) / f"body-{meta.sha256}").read_bytes()
        except FileNotFoundError:
            return None
        if _sha256(body) != meta.sha256:
            return None
        return StoredCopy(key=key, body=body, meta=meta)

    def load_parsed(self, key: str) -> bytes | None:
        meta = self._read_meta(key)
        if meta is None or meta.parsed_sha256 is None:
            return None
        try:
            data = (self._dir(key) / f"parsed-{meta.parsed_sha256}").read_bytes()
        except FileNotFoundError:
            return None
        return data if _sha256(data) == meta.parsed_sha256 else None

    def save(self, key: str, body: bytes, meta: CopyMeta, parsed: bytes | None = None) -> None:
        if _sha256(body) != meta.sha256 or len(body) != meta.size:
            raise ValueError("CopyMeta.sha256/size do not describe the body")
        folder = self._dir(key)
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            keep = {_META, f"body-{meta.sha256}"}
            body_path = folder / f"body-{meta.sha256}"
            if not body_path.exists():
                atomic_write(body_path, body)
            if parsed is not None:
                psha = _sha256(parsed)
                meta = replace(meta, parsed_sha256=psha)
                keep.add(f"parsed-{psha}")
                ppath = folder / f"parsed-{psha}"
                if not ppath.exists():
                    atomic_write(ppath, parsed)
            else:
                meta = replace(meta, parsed_sha256=None)
            atomic_write(folder / _META, json.dumps(meta.to_json(), sort_keys=True).encode())
            self._sweep(folder, keep)
        except OSError as exc:
            raise SourceError(
                f"{folder}: cannot write state: {exc.strerror}",
                hint="check free space and permissions of the state directory",
            ) from exc

    def touch(self, key: str, **changes: Any) -> None:
        meta = self._read_meta(key)
        if meta is None:
            return
        new = replace(meta, **changes)
        try:
            atomic_write(self._dir(key) / _META, json.dumps(new.to_json(), sort_keys=True).encode())
        except OSError as exc:
            raise SourceError(f"{self._dir(key)}: cannot write state: {exc.strerror}") from exc

    @staticmethod
    def _sweep(folder: Path, keep: set[str]) -> None:
        """Remove superseded bodies and temp files left by crashed writers (not ours in flight)."""
        mine = f".{os.getpid()}."
        for entry in folder.iterdir():
            name = entry.name
            if name in keep:
                continue
            stale_tmp = name.startswith(_TMP_PREFIX) and mine not in name
            if stale_tmp or name.startswith(("body-", "parsed-")):
                with contextlib.suppress(OSError):
                    entry.unlink()


class MemoryStateStore:
    """In-memory ``StateStore`` with the same contract, for unit tests."""

    def __init__(self) -> None:
        self._copies: dict[str, StoredCopy] = {}
        self._parsed: dict[str, bytes] = {}

    def load(self, key: str) -> StoredCopy | None:
        return self._copies.get(key)

    def load_parsed(self, key: str) -> bytes | None:
        return self._parsed.get(key)

    def save(self, key: str, body: bytes, meta: CopyMeta, parsed: bytes | None = None) -> None:
        if _sha256(body) != meta.sha256 or len(body) != meta.size:
            raise ValueError("CopyMeta.sha256/size do not describe the body")
        if parsed is not None:
            meta = replace(meta, parsed_sha256=_sha256(parsed))
            self._parsed[key] = parsed
        else:
            meta = replace(meta, parsed_sha256=None)
            self._parsed.pop(key, None)
        self._copies[key] = StoredCopy(key=key, body=body, meta=meta)

    def touch(self, key: str, **changes: Any) -> None:
        copy = self._copies.get(key)
        if copy is not None:
            self._copies[key] = replace(copy, meta=replace(copy.meta, **changes))

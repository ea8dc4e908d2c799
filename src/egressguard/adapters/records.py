"""Small JSON records kept next to the sources' state: what was applied, how refreshes went.

The state directory (``adapters.state``) holds the last good copy of every source. Two facts
about a blocklist are not in those copies, yet ``apply``, ``status`` and the controller need
them:

``applied``
    what the last successful apply from this machine wrote (object names and content hashes)
    and the build lock of that build (per-source counts), so the next apply can check a
    source's shrink against what is in the cluster;
``refresh``
    the last *attempt* to refresh each source (status, reason, time). A failed download leaves
    the stored copy untouched, so without this record ``status`` could not say that the last
    three attempts failed.
``build``
    the outcome of the last build (ok, forced, refused by a safety check, a source without any
    copy) with its messages, so ``status`` can say that new data is being held back.

Each record is one JSON file ``<root>/<name>.json``, replaced atomically (``state.atomic_write``:
temp file, fsync, rename), so a crash leaves the old or the new record, never a mix. A record
that is missing or does not parse reads as ``None``: records are advisory, and a damaged one
must not stop an apply. ``MemoryRecordStore`` is the in-package fake.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from egressguard.adapters.state import atomic_write
from egressguard.errors import SourceError

__all__ = ["DirectoryRecordStore", "MemoryRecordStore", "RecordStore"]

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


def _check(name: str) -> None:
    if not _NAME.match(name):
        raise ValueError(f"not a record name: {name!r}")


class RecordStore(Protocol):
    """Named JSON documents (``applied``, ``refresh``, ``build``)."""

    def read(self, name: str) -> dict[str, Any] | None:
        """The record, or None when it is missing or damaged."""
        ...

    def write(self, name: str, doc: Mapping[str, Any]) -> None:
        """Replace the record atomically."""
        ...


class DirectoryRecordStore:
    """Records as ``<root>/<name>.json`` (the directory is created on the first write)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def location(self) -> str:
        return str(self.root)

    def read(self, name: str) -> dict[str, Any] | None:
        _check(name)
        path = self.root / f"{name}.json"
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SourceError(
                f"{path}: cannot read: {exc.strerror or exc}",
                hint="check the permissions of the state directory",
            ) from exc
        try:
            doc = json.loads(raw)
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None

    def write(self, name: str, doc: Mapping[str, Any]) -> None:
        _check(name)
        data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            atomic_write(self.root / f"{name}.json", data)
        except OSError as exc:
            raise SourceError(
                f"{self.root}/{name}.json: cannot write: {exc.strerror or exc}",
                hint="check free space and permissions of the state directory",
            ) from exc


class MemoryRecordStore:
    """In-memory ``RecordStore`` with the same contract, for unit tests."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.writes = 0

    @property
    def location(self) -> str:
        return "<memory>"

    def read(self, name: str) -> dict[str, Any] | None:
        _check(name)
        doc = self.docs.get(name)
        return copy.deepcopy(doc) if doc is not None else None

    def write(self, name: str, doc: Mapping[str, Any]) -> None:
        _check(name)
        # the same round trip as the directory store: what cannot be JSON fails here too
        self.docs[name] = json.loads(json.dumps(doc, sort_keys=True))
        self.writes += 1

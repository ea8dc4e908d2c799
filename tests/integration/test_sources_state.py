"""The state directory on a real file system: round trip, crash safety, damage detection."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from egressguard.adapters import state as state_mod
from egressguard.adapters.state import CopyMeta, DirectoryStateStore, MemoryStateStore

pytestmark = pytest.mark.integration


def meta_for(body: bytes, **kw: object) -> CopyMeta:
    return CopyMeta(
        sha256=hashlib.sha256(body).hexdigest(),
        size=len(body),
        fetched_at=1000.0,
        checked_at=1000.0,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("kind", ["dir", "memory"])
def test_round_trip_and_touch(tmp_path: Path, kind: str) -> None:
    store = DirectoryStateStore(tmp_path / "state") if kind == "dir" else MemoryStateStore()
    assert store.load("spamhaus") is None
    body = b"192.0.2.0/24\n"
    store.save("spamhaus", body, meta_for(body, etag='"a"', entries=1), parsed=b"P1")
    copy = store.load("spamhaus")
    assert copy is not None
    assert copy.body == body
    assert copy.meta.etag == '"a"'
    assert copy.meta.entries == 1
    assert store.load_parsed("spamhaus") == b"P1"
    store.touch("spamhaus", checked_at=2000.0)
    again = store.load("spamhaus")
    assert again is not None
    assert again.meta.checked_at == 2000.0
    assert again.meta.fetched_at == 1000.0
    assert store.load_parsed("spamhaus") == b"P1"


def test_keys_do_not_collide_and_are_safe(tmp_path: Path) -> None:
    store = DirectoryStateStore(tmp_path)
    for key in ("a/b", "a_b", "../../etc", "rir#https://x/y"):
        store.save(key, key.encode(), meta_for(key.encode()))
    for key in ("a/b", "a_b", "../../etc", "rir#https://x/y"):
        copy = store.load(key)
        assert copy is not None
        assert copy.body == key.encode()
    assert all(p.parent == tmp_path for p in tmp_path.iterdir())


def test_save_replaces_and_sweeps_old_bodies(tmp_path: Path) -> None:
    store = DirectoryStateStore(tmp_path)
    store.save("f", b"one\n", meta_for(b"one\n"), parsed=b"p-one")
    store.save("f", b"two\n", meta_for(b"two\n"))
    (folder,) = tmp_path.iterdir()
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["body-" + hashlib.sha256(b"two\n").hexdigest(), "meta.json"]
    assert store.load_parsed("f") is None


def test_meta_must_describe_body(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sha256"):
        DirectoryStateStore(tmp_path).save("f", b"x", meta_for(b"y"))


def test_crash_before_meta_rename_keeps_the_old_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DirectoryStateStore(tmp_path)
    old = b"198.51.100.0/24\n"
    store.save("f", old, meta_for(old))

    real_replace = os.replace

    def crash_on_meta(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(dst).name == "meta.json":
            raise KeyboardInterrupt("power cut")  # the process dies here
        real_replace(src, dst)

    monkeypatch.setattr(state_mod.os, "replace", crash_on_meta)
    new = b"203.0.113.0/24\n"
    with pytest.raises(KeyboardInterrupt):
        store.save("f", new, meta_for(new))
    monkeypatch.undo()

    (folder,) = tmp_path.iterdir()
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".tmp-")]
    assert leftovers, "the crash should leave a temp file behind"
    copy = DirectoryStateStore(tmp_path).load("f")
    assert copy is not None
    assert copy.body == old


def test_stray_temp_files_are_ignored_and_swept(tmp_path: Path) -> None:
    store = DirectoryStateStore(tmp_path)
    body = b"192.0.2.1\n"
    store.save("f", body, meta_for(body))
    (folder,) = tmp_path.iterdir()
    # a writer from another process died half-way through writing meta.json and a body
    (folder / ".tmp-meta.json.99999.deadbeef").write_bytes(b'{"sha256": "tru')
    (folder / ".tmp-body-x.99999.cafebabe").write_bytes(b"192.0")
    copy = store.load("f")
    assert copy is not None
    assert copy.body == body
    store.save("f", body, meta_for(body, etag='"b"'))
    assert not [p for p in folder.iterdir() if p.name.startswith(".tmp-")]


def test_damaged_body_or_meta_counts_as_no_copy(tmp_path: Path) -> None:
    store = DirectoryStateStore(tmp_path)
    body = b"192.0.2.1\n"
    store.save("f", body, meta_for(body))
    (folder,) = tmp_path.iterdir()
    body_path = folder / ("body-" + hashlib.sha256(body).hexdigest())
    body_path.write_bytes(b"192.0.2.2\n")
    assert store.load("f") is None
    store.save("g", body, meta_for(body))
    gdir = next(p for p in tmp_path.iterdir() if p.name.startswith("g-"))
    (gdir / "meta.json").write_bytes(b"{not json")
    assert store.load("g") is None

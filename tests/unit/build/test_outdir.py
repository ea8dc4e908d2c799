"""The output directory: replaced whole and atomically, never half-written, never foreign."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from egressguard.adapters import outdir
from egressguard.adapters.outdir import LocalManifestDir, MemoryManifestDir
from egressguard.errors import EnvironmentProblem, UsageError


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_first_write_creates_the_directory(tmp_path: Path) -> None:
    d = LocalManifestDir(tmp_path / "out")
    assert d.read() is None
    d.replace({"a.yaml": b"a\n", "egressguard.lock": b"{}\n"})
    assert d.read() == {"a.yaml": b"a\n", "egressguard.lock": b"{}\n"}
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_replace_swaps_everything_and_drops_stale_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool
) -> None:
    if not exchange:
        monkeypatch.setattr(outdir, "_exchange", lambda a, b: False)
    d = LocalManifestDir(tmp_path / "out")
    d.replace({"old.yaml": b"1", "keep.yaml": b"1"})
    inode = (tmp_path / "out").stat().st_ino
    d.replace({"keep.yaml": b"2", "new.yaml": b"2"})
    assert d.read() == {"keep.yaml": b"2", "new.yaml": b"2"}
    assert (tmp_path / "out").stat().st_ino != inode  # a new directory took the name
    assert leftovers(tmp_path) == []


def test_the_kernel_exchange_is_used_here(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    assert outdir._exchange(a, b)
    assert (b / "x").read_text() == "a"


def test_a_failed_write_leaves_the_previous_build_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = LocalManifestDir(tmp_path / "out")
    d.replace({"a.yaml": b"old", "b.yaml": b"old"})
    calls = {"n": 0}
    real_fsync = os.fsync

    def failing_fsync(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the second file of the new build
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(outdir.os, "fsync", failing_fsync)
    with pytest.raises(EnvironmentProblem, match="No space left on device") as info:
        d.replace({"a.yaml": b"new", "b.yaml": b"new", "c.yaml": b"new"})
    assert "previous build, if any, is unchanged" in (info.value.hint or "")
    monkeypatch.setattr(outdir.os, "fsync", real_fsync)
    assert d.read() == {"a.yaml": b"old", "b.yaml": b"old"}
    assert leftovers(tmp_path) == []


def test_symlinked_directory_is_followed(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    d = LocalManifestDir(tmp_path / "link")
    d.replace({"a.yaml": b"x"})
    assert (tmp_path / "link").is_symlink()
    assert (real / "a.yaml").read_bytes() == b"x"


def test_read_refuses_what_a_build_never_holds(tmp_path: Path) -> None:
    (tmp_path / "out" / "sub").mkdir(parents=True)
    with pytest.raises(UsageError, match="subdirectory 'sub'"):
        LocalManifestDir(tmp_path / "out").read()
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        LocalManifestDir(tmp_path / "file").read()


@pytest.mark.parametrize("name", ["", "a/b", "..", "."])
def test_file_names_must_be_plain(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="plain file name"):
        LocalManifestDir(tmp_path / "out").replace({name: b""})
    assert not (tmp_path / "out").exists()


def test_memory_fake_has_the_same_contract() -> None:
    d = MemoryManifestDir()
    assert d.read() is None
    d.replace({"a": b"1"})
    d.replace({"b": b"2"})
    assert d.read() == {"b": b"2"}
    assert d.writes == 2

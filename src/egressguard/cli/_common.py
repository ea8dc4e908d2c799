"""Helpers shared by the command modules: JSON output, reading inputs, argument types."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from egressguard.errors import UsageError

if TYPE_CHECKING:
    from egressguard.app.config import BlocklistConfig

__all__ = [
    "add_state_dir_option",
    "emit_json",
    "expand_paths",
    "load_config_or_report",
    "new_parser",
    "read_inputs",
    "state_root",
]


def new_parser(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    name: str,
    *,
    help: str,
    description: str,
    epilog: str | None = None,
) -> argparse.ArgumentParser:
    """A subcommand parser whose description and examples keep their line breaks."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def emit_json(value: Any, *, stream: Any = None) -> None:
    """Print one JSON document (sorted keys, one line) followed by a newline."""
    out = stream if stream is not None else sys.stdout
    out.write(json.dumps(value, sort_keys=True, separators=(",", ":")) + "\n")


def load_config_or_report(path: str, fmt: str) -> BlocklistConfig | None:
    """The checked Blocklist config at ``path``, or None after printing every problem (one JSON
    document when ``fmt`` is ``json``, else one line each and a count on stderr): exit 1 then.

    Other errors (a missing file: ``UsageError``) propagate to the CLI's error handler.
    """
    from egressguard.app.config import ConfigProblems, load_config

    try:
        return load_config(path)
    except ConfigProblems as exc:
        if fmt == "json":
            emit_json({"ok": False, "problems": [p.to_json() for p in exc.problems]})
        else:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            n = len(exc.problems)
            print(f"{n} problem{'s' if n != 1 else ''} in {path}", file=sys.stderr)
        return None


def expand_paths(
    paths: Sequence[str], *, suffixes: tuple[str, ...] = (".yaml", ".yml")
) -> list[Path]:
    """Files as given, directories expanded to their files with ``suffixes`` (sorted, recursive).

    Raises ``UsageError`` for a path that does not exist or a directory with no such files.
    """
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in suffixes)
            if not found:
                raise UsageError(f"{raw}: directory holds no {'/'.join(suffixes)} files")
            out.extend(found)
        elif p.exists():
            out.append(p)
        else:
            raise UsageError(f"{raw}: no such file or directory")
    return out


def read_inputs(paths: Sequence[str]) -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, content)`` for each path; ``-`` (or no paths) reads standard input."""
    if not paths or list(paths) == ["-"]:
        yield "<stdin>", sys.stdin.buffer.read()
        return
    for raw in paths:
        if raw == "-":
            yield "<stdin>", sys.stdin.buffer.read()
            continue
        try:
            yield raw, Path(raw).read_bytes()
        except OSError as exc:
            raise UsageError(f"{raw}: cannot read: {exc.strerror or exc}") from exc


#: The controller's state volume (deploy/controller); used when it exists and is writable.
POD_STATE_DIR = "/var/lib/egressguard"


def add_state_dir_option(parser: argparse.ArgumentParser) -> None:
    """``--state-dir``, resolved by ``state_root`` for build, apply, status and controller."""
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="last good copies of the sources and the apply/refresh records (default: "
        "$EGRESSGUARD_STATE_DIR, else /var/lib/egressguard when it is a writable directory, "
        "else $XDG_STATE_HOME/egressguard or ~/.local/state/egressguard); one subdirectory "
        "per blocklist, shared by build, apply, status and the controller",
    )


def state_root(given: str | None) -> str:
    """Where the sources' last good copies and records live, for build, apply and controller.

    ``--state-dir`` when given, else ``$EGRESSGUARD_STATE_DIR``, else ``/var/lib/egressguard``
    when it is a writable directory (the controller's volume), else
    ``$XDG_STATE_HOME/egressguard`` or ``~/.local/state/egressguard``.
    """
    import os

    if given:
        return given
    env = os.environ.get("EGRESSGUARD_STATE_DIR")
    if env:
        return env
    pod_volume = Path(POD_STATE_DIR)
    if pod_volume.is_dir() and os.access(pod_volume, os.W_OK | os.X_OK):
        return str(pod_volume)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(base) / "egressguard")

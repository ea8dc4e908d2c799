"""Problems found in user input, each with where it is: file, line, document and YAML path.

A ``Problem`` is a value, not an exception: validators collect every problem at once and return
them, and the caller decides whether they are fatal. ``str(problem)`` reads like a compiler
message::

    policy.yaml:14 spec.egress[1].destination.nets[0]: '10.0.0.300/24' is not a CIDR
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["Path", "Problem", "format_path"]

#: A YAML path: mapping keys and sequence indexes from the document root.
Path = tuple[str | int, ...]


def format_path(path: Sequence[str | int]) -> str:
    """``("spec", "egress", 1, "action")`` → ``spec.egress[1].action``."""
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif out:
            out.append(f".{part}")
        else:
            out.append(part)
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem in one document.

    ``path`` is the formatted YAML path (``spec.egress[1].action``; empty for the whole
    document), ``message`` says what is wrong. ``file``/``line``/``document`` locate it when
    known (``line`` is 1-based, ``document`` is the 0-based index in a multi-document file).
    """

    path: str
    message: str
    file: str | None = None
    line: int | None = None
    document: int | None = None

    def located(self, *, file: str | None, line: int | None, document: int | None) -> Problem:
        return replace(self, file=file, line=line, document=document)

    def where(self) -> str:
        if self.file is None:
            return ""
        return f"{self.file}:{self.line}" if self.line is not None else self.file

    def __str__(self) -> str:
        head = " ".join(part for part in (self.where(), self.path) if part)
        return f"{head}: {self.message}" if head else self.message

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "document": self.document,
            "path": self.path,
            "message": self.message,
        }

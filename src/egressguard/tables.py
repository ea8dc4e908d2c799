"""Plain-text tables for people: columns padded to their widest cell, two spaces apart.

Shared by every command that prints a table (``lab run``, ``lab status``, ``verify``,
``status``), so they all look alike.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["align"]


def align(rows: Sequence[Sequence[str]]) -> list[str]:
    """``rows`` (a header row first, usually) as lines with every column left-aligned to its
    widest cell; trailing blanks are stripped. All rows must have the same length."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]

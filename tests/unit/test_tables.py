from __future__ import annotations

from egressguard.tables import align


def test_columns_are_padded_to_their_widest_cell_and_lines_stripped() -> None:
    rows = [("POD", "PROTO", "DST"), ("default/web", "tcp", "203.0.113.92"), ("a", "icmp", "")]
    assert align(rows) == [
        "POD          PROTO  DST",
        "default/web  tcp    203.0.113.92",
        "a            icmp",
    ]


def test_no_rows_no_lines() -> None:
    assert align([]) == []

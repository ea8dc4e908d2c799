"""The statuses a source load ends in."""

from __future__ import annotations

from egressguard.app.sources import Status


def test_status_refreshed_is_fresh_or_not_modified() -> None:
    assert {s for s in Status if s.refreshed} == {Status.FRESH, Status.NOT_MODIFIED}

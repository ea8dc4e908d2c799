"""Shared test fixtures: where the real datasets live, and the privilege gate for kernel tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("EGRESSGUARD_SHARED", REPO.parent / "shared"))
DATA = SHARED / "data"
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``../shared/data``: real feeds, country sets, RIR files and log lines (see SOURCES.md).

    A missing directory is a broken checkout, not a reason to skip: the test fails.
    """
    if not (DATA / "SOURCES.md").is_file():
        pytest.fail(f"shared datasets not found at {DATA} (set EGRESSGUARD_SHARED)")
    return DATA


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    return EXAMPLES


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``root`` need root for network namespaces and nftables."""
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (network namespaces, nftables); CI runs as root")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)

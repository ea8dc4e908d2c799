"""Fixtures of the controller's unit tests (defined in ``controller_rig``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from controller_rig import clock, make_rig

__all__ = ["clock", "make_rig"]

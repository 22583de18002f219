"""Where things are, independent of how deep a test file sits."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
TEST_DATA = REPO / "tests" / "data"

"""Location of the shared real-DFT fixtures (``../shared/fixtures`` next to the project root)."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def shared_fixtures_dir() -> Path | None:
    """``$NEXTHAM_FIXTURES`` or ``<project>/../shared/fixtures``; None where absent."""
    env = os.environ.get("NEXTHAM_FIXTURES")
    path = Path(env) if env else PROJECT_ROOT.parent / "shared" / "fixtures"
    return path if path.is_dir() else None


def require_fixtures(*parts: str) -> Path:
    """Path of a fixture; skip the test with a reason where the folder is absent (a user's clone),
    but fail in CI (``CI`` set), where the fixtures must be present."""
    import pytest

    root = shared_fixtures_dir()
    if root is None:
        msg = "../shared/fixtures is absent (a user's clone); set NEXTHAM_FIXTURES to run fixture tests"
        if os.environ.get("CI"):
            pytest.fail("CI run without ../shared/fixtures: " + msg)
        pytest.skip(msg)
    path = root.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"fixture {path} is missing")
    return path

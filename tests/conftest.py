"""Shared pytest fixtures. Keep this small and generic; module-specific fixtures live in their test files."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `pytest` run without installing the package
    sys.path.insert(0, str(ROOT))


def _on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def glue_dir() -> Path:
    """The shared GLUE folder: $ADDROP_GLUE_DIR, else ../shared/data/glue beside the project root.

    Skips when it is missing, except on CI (CI=true), where a missing folder fails the test.
    """
    env = os.environ.get("ADDROP_GLUE_DIR")
    path = Path(env).expanduser() if env else ROOT.parent / "shared" / "data" / "glue"
    if not path.is_dir():
        msg = f"GLUE folder not found at {path} (set ADDROP_GLUE_DIR)"
        if _on_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    return path

"""Shared fixtures: where the real data is, and small deterministic settings for every test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def real_data_root() -> Path | None:
    """The folder holding fashion-mnist/ and mnist/ (CNNLAB_DATA, else ../shared/data), or None."""
    for root in (os.environ.get("CNNLAB_DATA"), SHARED_DATA):
        if root and (Path(root) / "fashion-mnist").is_dir():
            return Path(root)
    return None


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real datasets' folder; tests that need it are skipped, with the reason, when absent."""
    root = real_data_root()
    if root is None:
        pytest.skip(f"real data not found (set CNNLAB_DATA or place it at {SHARED_DATA})")
    return root

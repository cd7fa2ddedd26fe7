"""Locate the shared real-data fixtures (published predictions, ChEBI-20) for tests and benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"


def fixture_root() -> Path:
    """``$MOLMIX_FIXTURES`` if set, else ``../shared/fixtures`` beside the repository."""
    return Path(os.environ.get("MOLMIX_FIXTURES", DEFAULT))


def fixture_path(relative: str) -> Path:
    """Path of one fixture; under pytest, skips the test with the reason when it is absent."""
    path = fixture_root() / relative
    if not path.exists():
        import pytest

        pytest.skip(f"fixture {relative} not found under {fixture_root()} (set MOLMIX_FIXTURES)")
    return path

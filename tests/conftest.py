"""Shared fixtures. Test data from ../shared is read in place; tests that need it skip with a
clear reason when it is absent (an outside user's clone)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CSADETECT_SHARED", REPO.parent / "shared"))
THREATEXCHANGE = SHARED / "testdata" / "threatexchange"

# Beam's default runner would try to download Prism: tests always pin theirs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def need_shared(*parts: str) -> Path:
    path = THREATEXCHANGE.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data not found at {path} (clone without ../shared)")
    return path


@pytest.fixture
def te_dir():
    return need_shared()

"""Shared fixtures: the real third-party media in ../shared/data (skipped when absent) and settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("VESTIS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def shared_videos(shared_data: Path) -> Path:
    folder = shared_data / "videos"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    return folder

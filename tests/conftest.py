"""Shared fixtures: the real media in ../shared/data (skipped when absent) and the CLI as tests read it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("VESTIS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture
def plain_cli(monkeypatch):
    """The CLI as tests read it: a wide console (table cells not wrapped or cut), no colours, and no
    VESTIS_* settings leaking in from the environment."""
    import vestis.cli as cli
    from rich.console import Console

    monkeypatch.setattr(cli, "console", Console(width=250, color_system=None, force_terminal=False))
    for name in list(os.environ):
        if name.startswith("VESTIS_"):
            monkeypatch.delenv(name)


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

"""Shared fixtures: the real media in ../shared/data (skipped when absent) and the CLI as tests read it."""

from __future__ import annotations

import os
import random
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


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread for a module's tests: the machine has two cores shared with other work (and
    Dask tests), where more threads only contend. The vision and search API tests use it throughout."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def garbage_video_bytes() -> bytes:
    """64 KiB that no demuxer reads as video. Fixed, not os.urandom: about 1 in 300 random buffers sniff
    as a subtitle format, which fails as "no video stream" instead and made CI flaky."""
    return random.Random(0).randbytes(64 * 1024)


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


# Elasticsearch stand-in: the helpers are imported inside the fixtures so that everything else still runs
# where the `elasticsearch` client or `osmem-server` is not installed (these then skip).
@pytest.fixture(scope="session")
def es_server():
    """URL of an osmem-server standing in for Elasticsearch; skips when it cannot be had."""
    from tests.indexer.backends import start_osmem_or_skip

    server = start_osmem_or_skip()
    yield server.url
    server.stop()


@pytest.fixture
def es_client(es_server):
    """The official client on osmem; every index, alias and template is removed afterwards."""
    from tests.indexer.elasticsearch_server import client_for, wipe

    client = client_for(es_server)
    yield client
    wipe(client)
    client.close()

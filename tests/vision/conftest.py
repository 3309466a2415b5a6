"""Vision tests run torch on one thread: the machine has two cores and Dask tests may share them."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    yield

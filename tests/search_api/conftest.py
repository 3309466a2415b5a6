"""The API tests run torch on one thread: the app loads the MiniLM text model in the background."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    yield

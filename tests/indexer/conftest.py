"""Fixtures for the store tests: `backend`/`store` run a test once per backend; the Elasticsearch
one uses `es_server`/`es_client` (tests/conftest.py) and skips where those cannot be had."""

from __future__ import annotations

import pytest

from tests.indexer.backends import ElasticsearchBackend, EmbeddedBackend


@pytest.fixture(params=["embedded", "elasticsearch"])
def backend(request, tmp_path):
    if request.param == "embedded":
        chosen = EmbeddedBackend(tmp_path / "data")
    else:
        request.getfixturevalue("es_client")  # a clean cluster, wiped after the test
        chosen = ElasticsearchBackend(request.getfixturevalue("es_server"))
    yield chosen
    chosen.close()


@pytest.fixture
def store(backend):
    """A fresh, empty store of each backend in turn."""
    return backend.open()


@pytest.fixture
def embedded(tmp_path):
    """The SQLite store alone, for what only it has (its tables, old databases, its processes)."""
    chosen = EmbeddedBackend(tmp_path / "data")
    yield chosen.open()
    chosen.close()

"""Fixtures for the store tests: `backend`/`store` run a test once per backend; the Elasticsearch
one talks to one osmem-server per session, with a clean cluster per test.

The Elasticsearch helpers are imported inside the fixtures so that the embedded-store tests still
run where the `elasticsearch` client or `osmem-server` is not installed (those cases skip).
"""

from __future__ import annotations

import pytest

from tests.indexer.backends import ElasticsearchBackend, EmbeddedBackend


@pytest.fixture(scope="session")
def es_server():
    """URL of an osmem-server standing in for Elasticsearch; skips when it cannot be had."""
    pytest.importorskip("elasticsearch", reason="the elasticsearch client is not installed")
    from tests.indexer.elasticsearch_server import OsmemProcess, OsmemUnavailable

    try:
        server = OsmemProcess.start()
    except OsmemUnavailable as exc:
        pytest.skip(str(exc))
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

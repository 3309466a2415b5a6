"""Fixtures for the Elasticsearch backend: one osmem-server per session, a clean cluster per test.

The helper is imported inside the fixtures so that the embedded-store tests beside these still
run where the `elasticsearch` client or `osmem-server` is not installed.
"""

from __future__ import annotations

import pytest


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

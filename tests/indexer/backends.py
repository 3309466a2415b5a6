"""The two store backends behind one test interface, so one suite runs against both.

`open()` gives a store object over the backend's data (a second call: another process's view of the
same data, as after a restart); `stored_frames` reads what is physically kept, visible or not, to
check that deletes really happen.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from indexer.embedded import EmbeddedStore
from indexer.store import LabelStore


def start_osmem_or_skip():
    """An osmem-server of the caller's own (tests/indexer/elasticsearch_server.py), or a skip of the
    test where the `elasticsearch` client or the server cannot be had. The caller stops it."""
    pytest.importorskip("elasticsearch", reason="the elasticsearch client is not installed")
    from tests.indexer.elasticsearch_server import OsmemProcess, OsmemUnavailable

    try:
        return OsmemProcess.start()
    except OsmemUnavailable as exc:
        pytest.skip(str(exc))


class EmbeddedBackend:
    name = "embedded"

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self._opened: list[EmbeddedStore] = []

    def open(self) -> EmbeddedStore:
        store = EmbeddedStore(self.data_dir)
        self._opened.append(store)
        return store

    def stored_frames(self, media_id: str) -> list[tuple[str, str]]:
        with sqlite3.connect(self.data_dir / "vestis.sqlite3") as db:
            return db.execute("SELECT frame_id, run_id FROM frames WHERE media_id = ? ORDER BY frame_id, run_id",
                              (media_id,)).fetchall()

    def close(self) -> None:
        for store in self._opened:
            store.close()


class ElasticsearchBackend:
    name = "elasticsearch"

    def __init__(self, url: str, index_prefix: str = "vestis"):
        from tests.indexer.elasticsearch_server import client_for

        self._client_for = client_for
        self.url = url
        self.index_prefix = index_prefix
        self._opened: list[LabelStore] = []

    def open(self, **kwargs) -> LabelStore:
        from indexer.elasticsearch import ElasticsearchStore

        store = ElasticsearchStore(self._client_for(self.url), self.index_prefix, **kwargs)
        self._opened.append(store)
        return store

    def stored_frames(self, media_id: str) -> list[tuple[str, str]]:
        client = self._client_for(self.url)
        try:
            alias = f"{self.index_prefix}-frames"
            client.indices.refresh(index=alias)
            response = client.search(index=alias, query={"term": {"media_id": media_id}}, size=10_000,
                                     sort=[{"frame_id": "asc"}, {"run_id": "asc"}], _source=["frame_id", "run_id"])
            return [(h["_source"]["frame_id"], h["_source"]["run_id"]) for h in response["hits"]["hits"]]
        finally:
            client.close()

    def close(self) -> None:
        for store in self._opened:
            store.close()

"""Search by example with the cluster's own kNN (indexer/cluster_vectors.py).

osmem-server, the stand-in the tests run on, has no `dense_vector` and no `knn` search, so here the
store is made to believe its cluster has them: the vectors are mapped as plain float arrays (which osmem
keeps) and the `knn` section of a search is answered by an exact search over the stored vectors, as the
cluster's would be at full recall. What runs for real: the mapping choice, the documents' vectors
through ingest, reruns and deletes, the request, and the ranking of what comes back. What does not: the
cluster's HNSW search itself (its recall is the cluster's: `num_candidates`).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("elasticsearch", reason="the elasticsearch client is not installed")

from indexer import cluster_vectors
from indexer.elasticsearch import ElasticsearchStore
from indexer.search import SearchRequest
from tests.indexer.test_search import black_jacket_blue_jeans, frames, red_striped_dress
from tests.indexer.test_similar import PARSER, embedded, like
from tests.indexer.test_store_search import index


def test_only_elasticsearch_8_11_and_later_gets_knn(es_client):
    assert cluster_vectors.supports_knn({"version": {"number": "8.15.1", "build_flavor": "default"}})
    assert cluster_vectors.supports_knn({"version": {"number": "9.0.0"}})
    assert not cluster_vectors.supports_knn({"version": {"number": "8.10.4"}})
    assert not cluster_vectors.supports_knn({"version": {"number": "2.19.0", "distribution": "opensearch"}})
    assert not cluster_vectors.supports_knn(es_client.info().body)  # osmem: an exact scan
    assert cluster_vectors.FIELD not in ElasticsearchStore(es_client)._mapping("moments")["properties"]


def _answer_knn(store: ElasticsearchStore, sent: list[dict], monkeypatch) -> None:
    """The cluster's `knn` search, done exactly: the k documents (among those the filter allows) whose
    nearest nested vector has the largest dot product with the query, scored (1 + dot) / 2."""
    search = store.client.search

    def searching(**kwargs):
        if "knn" not in kwargs:
            return search(**kwargs)
        sent.append(kwargs)
        knn = kwargs["knn"]
        hits = search(index=kwargs["index"], query=knn["filter"], size=10_000)["hits"]["hits"]
        query = np.asarray(knn["query_vector"])
        for h in hits:
            h["_score"] = (1 + max(float(np.dot(v["vector"], query)) for v in h["_source"][cluster_vectors.FIELD])) / 2
        hits.sort(key=lambda h: -h["_score"])
        return {"hits": {"hits": hits[:knn["k"]]}}

    monkeypatch.setattr(store.client, "search", searching)


@pytest.fixture
def knn_store(es_client, monkeypatch):
    monkeypatch.setattr(cluster_vectors, "supports_knn", lambda info: True)
    fields = cluster_vectors.mapping()
    fields[cluster_vectors.FIELD]["properties"]["vector"] = {"type": "float"}  # what osmem can hold
    monkeypatch.setattr(cluster_vectors, "mapping", lambda: fields)
    return ElasticsearchStore(es_client)


def test_the_cluster_finds_the_nearest_moments_and_they_rank_as_the_scan_ranks(knn_store, monkeypatch):
    index(knn_store, "catwalk", embedded(frames("catwalk", [0.0, 1.0], red_striped_dress()), [1]))
    index(knn_store, "street", embedded(frames("street", [0.0, 1.0], black_jacket_blue_jeans()), [2, 3]))
    index(knn_store, "park", embedded(frames("park", [0.0, 1.0], black_jacket_blue_jeans()), [2, 30]))
    sent: list[dict] = []
    _answer_knn(knn_store, sent, monkeypatch)
    assert knn_store._moments_have_vectors()
    for request in (like(3), like(2), like(1, filters=SearchRequest(query=PARSER.parse("dress"))),
                    like(2, filters=SearchRequest(media_ids=["park"])), like(3, limit=1)):
        found = knn_store.similar(request)
        monkeypatch.setattr(knn_store, "_knn_cluster", False)  # the same store, scanned
        expected = knn_store.similar(request)
        monkeypatch.setattr(knn_store, "_knn_cluster", True)
        assert found.hits and [(h.moment.moment_id, h.person_index, h.score) for h in found.hits] == \
            [(h.moment.moment_id, h.person_index, h.score) for h in expected.hits]
    assert len(sent) == 5
    # the request as a contract: the nested vectors, the pool, candidates, the space and the filters
    knn = sent[-1]["knn"]
    assert knn["field"] == "garment_vectors.vector" and knn["k"] == sent[-1]["size"] == like(3, limit=1).pool(10_000)
    assert knn["num_candidates"] == min(10_000, 4 * knn["k"])
    assert knn["filter"]["bool"]["filter"][0] == {"term": {"vector_space": cluster_vectors.space(like(3).embedding)}}
    assert {"terms": {"media_ids": ["park"]}} not in knn["filter"]["bool"]["filter"]
    assert {"terms": {"media_id": ["park"]}} in sent[3]["knn"]["filter"]["bool"]["filter"]


def test_a_rerun_replaces_the_vectors_the_cluster_searches(knn_store, monkeypatch):
    index(knn_store, "street", embedded(frames("street", [0.0, 1.0], black_jacket_blue_jeans()), [2, 3]))
    index(knn_store, "street", embedded(frames("street", [0.0, 1.0], black_jacket_blue_jeans()), [7, 8]))
    sent: list[dict] = []
    _answer_knn(knn_store, sent, monkeypatch)
    [hit] = knn_store.similar(like(7)).hits
    assert hit.score > 0.95 and knn_store.similar(like(2)).hits[0].score < 0.9
    [doc] = knn_store.client.search(index=knn_store.aliases["moments"], query={"match_all": {}})["hits"]["hits"]
    assert len(doc["_source"][cluster_vectors.FIELD]) == 2  # the jacket's and the jeans', of the new run only

"""Search by example in Elasticsearch: the garment vectors a moment document carries for the cluster's
own nearest-neighbour search, and the `knn` request that finds the moments nearest to a garment.

Each moment document gets `garment_vectors`, nested: one entry per summarised garment with an embedding
(`person`, `garment`, `vector` as a `dense_vector`, indexed for `dot_product`: the embeddings are unit
vectors, so it ranks by cosine), and `vector_space` (model, version and dimension of its embeddings:
only vectors of one space compare). The `knn` search on the nested field returns the moments whose best
garment is nearest (`k` of them, from `num_candidates` per shard), filtered to the query's space; the
store then computes each returned moment's similarities from its stored embeddings, exactly as the scan
does, and ranks them with indexer.similar.rank_similar.

Nested `dense_vector` kNN needs Elasticsearch 8.11 or later; OpenSearch (and the osmem-server stand-in
the tests run on) has no `dense_vector`, so a store on such a cluster keeps the exact scan
(`supports_knn`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from indexer.moments import Moment
from indexer.similar import moment_vectors
from labels import Embedding

FIELD = "garment_vectors"
# Candidates per shard the cluster's HNSW graph looks at per wanted moment (recall against speed), at most
# the 10,000 Elasticsearch allows.
CANDIDATES_PER_HIT = 4
MAX_CANDIDATES = 10_000


def space(embedding: Embedding) -> str:
    """What makes two embeddings comparable: the model, its version and the dimension."""
    return f"{embedding.model}:{embedding.model_version}:{embedding.dim}"


def supports_knn(info: Mapping[str, Any]) -> bool:
    """Whether the cluster (its `GET /` answer) is Elasticsearch 8.11 or later: nested dense_vector kNN."""
    version = info.get("version") or {}
    if version.get("distribution", "elasticsearch") != "elasticsearch":
        return False  # OpenSearch and the osmem stand-in name their distribution
    try:
        major, minor = (int(part) for part in str(version.get("number", "0.0")).split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (8, 11)


def mapping() -> dict[str, Any]:
    """The fields added to the moments mapping where the cluster supports kNN."""
    return {
        "vector_space": {"type": "keyword"},
        FIELD: {"type": "nested", "properties": {
            "person": {"type": "integer"}, "garment": {"type": "integer"},
            "vector": {"type": "dense_vector", "index": True, "similarity": "dot_product"}}},
    }


def vector_fields(moment: Moment) -> dict[str, Any]:
    """The moment document's `vector_space` and `garment_vectors`: its garments' unit vectors of its
    first garment's space (a moment's garments come from one ingest, so one space)."""
    found = moment_vectors(moment)
    if not found:
        return {}
    first = space(found[0][2])
    return {"vector_space": first,
            FIELD: [{"person": p, "garment": g, "vector": [round(float(x), 6) for x in v.unit()]}
                    for p, g, v in found if space(v) == first]}


def knn_body(embedding: Embedding, k: int, filters: list[dict]) -> dict[str, Any]:
    """The `knn` section of the search: the k moments whose nearest garment (of the same space) is nearest
    to the embedding, among the moments `filters` allow."""
    return {"field": f"{FIELD}.vector", "query_vector": [float(x) for x in embedding.unit()], "k": k,
            "num_candidates": min(MAX_CANDIDATES, max(k, CANDIDATES_PER_HIT * k)),
            "filter": {"bool": {"filter": [{"term": {"vector_space": space(embedding)}}, *filters]}}}

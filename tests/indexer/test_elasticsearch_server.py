"""The features the Elasticsearch backend relies on, proved through the official client against
osmem-server, so that a backend test failing later points at the backend and not the stand-in.

What osmem-server 0.1.6 (OpenSearch API 3.8.0) does not do, or does differently, found here:
- Rejects the client's compatibility mimetypes (`application/vnd.elasticsearch+json;
  compatible-with=N`) with 406 on any request with a body; GETs without one pass. The tests'
  `PlainJsonNode` sends `application/json` instead (see `test_unmodified_client_is_rejected`).
- No point in time: `open_point_in_time` (`POST /<index>/_pit`) is 400 "no handler found".
  Paginate with `search_after` on a sort that ends in a unique keyword (`frame_id`); it is stable
  while nothing writes, which is what the backend can promise on either store.
- No kNN: a top-level `knn` search is a 400 parsing_exception.
- `GET /` answers as OpenSearch (`distribution: opensearch`, `number: 3.8.0`) while sending
  `X-Elastic-Product: Elasticsearch`, so the client's product check passes; the backend must not
  branch on the reported version.
- Scores are BM25 like Elasticsearch's, but not guaranteed to be the same numbers: assert order
  and confidence-derived scores, never text-relevance values.
Everything else used below behaves as Elasticsearch 8/9 documents it: explicit nested mappings,
composable index templates, aliases with atomic swap, bulk with explicit ids, nested queries with
inner_hits, function_score with field_value_factor, search_after, if_seq_no/if_primary_term,
delete_by_query, terms/nested/reverse_nested aggregations, highlight, _reindex.
"""

from __future__ import annotations

import pytest

pytest.importorskip("elasticsearch", reason="the elasticsearch client is not installed")

from elasticsearch import ApiError, ConflictError, Elasticsearch

from tests.indexer.elasticsearch_server import plain_mimetype

FRAMES = "vestis-frames-v1"

GARMENT = {
    "type": "nested",
    "properties": {
        "category": {"type": "keyword"},
        "color": {"type": "keyword"},
        "pattern": {"type": "keyword"},
        "sleeve": {"type": "keyword"},
        "confidence": {"type": "float"},
    },
}
MAPPING = {
    "dynamic": "strict",
    "properties": {
        "frame_id": {"type": "keyword"},
        "media_id": {"type": "keyword"},
        "timestamp": {"type": "float"},
        "caption": {"type": "text"},
        "persons": {
            "type": "nested",
            "properties": {"person_id": {"type": "keyword"}, "confidence": {"type": "float"}, "garments": GARMENT},
        },
    },
}
SETTINGS = {"number_of_shards": 1, "number_of_replicas": 0}


def garment(category: str, color: str, confidence: float = 0.9, pattern: str = "plain", sleeve: str = "none") -> dict:
    return {"category": category, "color": color, "pattern": pattern, "sleeve": sleeve, "confidence": confidence}


def frame(frame_id: str, *persons: list[dict], media_id: str = "m1", timestamp: float = 0.0, caption: str = "") -> dict:
    return {
        "frame_id": frame_id,
        "media_id": media_id,
        "timestamp": timestamp,
        "caption": caption,
        "persons": [{"person_id": f"{frame_id}-p{i}", "confidence": 0.9, "garments": g} for i, g in enumerate(persons)],
    }


def bulk_index(client: Elasticsearch, index: str, docs: list[dict]) -> dict:
    operations = []
    for doc in docs:
        operations += [{"index": {"_index": index, "_id": doc["frame_id"]}}, doc]
    response = client.bulk(operations=operations, refresh=True)
    assert not response["errors"], response
    return response


def same_garment(inner_hits: dict | None = None, **fields: str) -> dict:
    """All `fields` on one garment of one person: the query shape the backend's parser produces."""
    filters = [{"term": {f"persons.garments.{name}": value}} for name, value in fields.items()]
    garments = {"path": "persons.garments", "score_mode": "max", "query": {"bool": {"filter": filters}}}
    if inner_hits:
        garments["inner_hits"] = inner_hits
    return {"nested": {"path": "persons", "score_mode": "max", "query": {"nested": garments}}}


@pytest.fixture
def frames(es_client: Elasticsearch) -> Elasticsearch:
    es_client.indices.create(index=FRAMES, mappings=MAPPING, settings=SETTINGS)
    return es_client


def ids(response: dict) -> list[str]:
    return [hit["_id"] for hit in response["hits"]["hits"]]


def test_plain_mimetype_keeps_the_format_and_drops_compatibility():
    assert plain_mimetype("application/vnd.elasticsearch+json; compatible-with=9") == "application/json"
    assert plain_mimetype("application/vnd.elasticsearch+x-ndjson; compatible-with=8") == "application/x-ndjson"
    assert plain_mimetype("application/json") == "application/json"


def test_unmodified_client_is_rejected(es_server, es_client):
    # The reason PlainJsonNode exists; when this starts passing the node can go.
    with pytest.raises(ApiError) as raised:
        Elasticsearch(es_server).index(index="probe", id="1", document={"a": 1})
    assert raised.value.meta.status == 406


def test_explicit_nested_mapping_is_kept(frames):
    properties = frames.indices.get_mapping(index=FRAMES)[FRAMES]["mappings"]["properties"]
    assert properties["persons"]["type"] == "nested"
    garments = properties["persons"]["properties"]["garments"]
    assert garments["type"] == "nested"
    assert {name: field["type"] for name, field in garments["properties"].items()} == {
        "category": "keyword", "color": "keyword", "pattern": "keyword", "sleeve": "keyword", "confidence": "float"}


def test_strict_mapping_rejects_unknown_fields(frames):
    # Typos in the backend's document builder should fail loudly, not grow the mapping.
    with pytest.raises(ApiError) as raised:
        frames.index(index=FRAMES, id="x", document={"frame_id": "x", "colour": "red"})
    assert raised.value.meta.status == 400


def test_index_template_shapes_new_versioned_indices(es_client):
    es_client.indices.put_index_template(
        name="vestis-frames", index_patterns=["vestis-frames-*"], priority=100,
        template={"settings": SETTINGS, "mappings": MAPPING})
    es_client.indices.create(index="vestis-frames-v7")
    properties = es_client.indices.get_mapping(index="vestis-frames-v7")["vestis-frames-v7"]["mappings"]["properties"]
    assert properties["persons"]["properties"]["garments"]["type"] == "nested"
    es_client.indices.create(index="other")
    assert "persons" not in es_client.indices.get_mapping(index="other")["other"]["mappings"].get("properties", {})


def test_alias_swaps_atomically_to_the_new_version(es_client):
    for version in ("v1", "v2"):
        es_client.indices.create(index=f"vestis-frames-{version}", mappings=MAPPING, settings=SETTINGS)
        bulk_index(es_client, f"vestis-frames-{version}", [frame(f"from-{version}")])
    es_client.indices.put_alias(index="vestis-frames-v1", name="vestis-frames")
    assert ids(es_client.search(index="vestis-frames")) == ["from-v1"]

    es_client.indices.update_aliases(actions=[
        {"remove": {"index": "vestis-frames-v1", "alias": "vestis-frames"}},
        {"add": {"index": "vestis-frames-v2", "alias": "vestis-frames", "is_write_index": True}},
    ])
    assert ids(es_client.search(index="vestis-frames")) == ["from-v2"]
    assert list(es_client.indices.get_alias(name="vestis-frames")) == ["vestis-frames-v2"]
    # Writes through the alias land in the new version only.
    es_client.index(index="vestis-frames", id="late", document=frame("late"), refresh=True)
    assert es_client.count(index="vestis-frames-v2")["count"] == 2
    assert es_client.count(index="vestis-frames-v1")["count"] == 1


def test_reindex_copies_into_the_next_version(frames):
    bulk_index(frames, FRAMES, [frame(f"f{i}") for i in range(3)])
    frames.indices.create(index="vestis-frames-v2", mappings=MAPPING, settings=SETTINGS)
    response = frames.reindex(source={"index": FRAMES}, dest={"index": "vestis-frames-v2"}, refresh=True)
    assert response["created"] == 3 and not response["failures"]
    assert frames.count(index="vestis-frames-v2")["count"] == 3


def test_bulk_with_explicit_ids_is_idempotent(frames):
    docs = [frame(f"f{i}", [garment("dress", "red")]) for i in range(3)]
    first = bulk_index(frames, FRAMES, docs)
    again = bulk_index(frames, FRAMES, docs)
    assert [item["index"]["result"] for item in first["items"]] == ["created"] * 3
    assert [item["index"]["result"] for item in again["items"]] == ["updated"] * 3
    assert [item["index"]["_version"] for item in again["items"]] == [2] * 3
    assert frames.count(index=FRAMES)["count"] == 3


def test_red_and_dress_must_hold_on_the_same_garment(frames):
    bulk_index(frames, FRAMES, [
        frame("red-dress", [garment("dress", "red"), garment("shoes", "black")]),
        frame("red-shirt-blue-dress", [garment("shirt", "red"), garment("dress", "blue")]),
        # Across persons too: one in a red shirt, another in a blue dress.
        frame("two-persons", [garment("shirt", "red")], [garment("dress", "blue")]),
    ])
    response = frames.search(index=FRAMES, query=same_garment(
        color="red", category="dress", inner_hits={"name": "garment"}))
    assert ids(response) == ["red-dress"]

    hit = response["hits"]["hits"][0]
    matched = hit["inner_hits"]["garment"]["hits"]["hits"]
    assert [g["_source"]["category"] for g in matched] == ["dress"]
    # The offset of the garment within its person is what the backend uses to find its box.
    assert matched[0]["_nested"]["field"] == "persons"
    assert matched[0]["_nested"]["_nested"] == {"field": "garments", "offset": 0}


def test_inner_hits_on_both_levels_name_the_person_and_the_garment(frames):
    bulk_index(frames, FRAMES, [
        frame("f", [garment("shirt", "red")], [garment("hat", "black"), garment("dress", "red")]),
    ])
    query = same_garment(color="red", category="dress", inner_hits={"name": "garment"})
    query["nested"]["inner_hits"] = {"name": "person", "_source": ["persons.person_id"]}
    hit = frames.search(index=FRAMES, query=query)["hits"]["hits"][0]
    person = hit["inner_hits"]["person"]["hits"]["hits"]
    assert [p["_nested"]["offset"] for p in person] == [1]
    garments = person[0]["inner_hits"]["garment"]["hits"]["hits"]
    assert [g["_nested"]["_nested"]["offset"] for g in garments] == [1]


def test_garment_confidence_ranks_without_scripts(frames):
    bulk_index(frames, FRAMES, [
        frame("low", [garment("dress", "red", 0.3)]),
        frame("high", [garment("dress", "red", 0.9), garment("dress", "red", 0.2)]),
        frame("mid", [garment("dress", "red", 0.6)]),
        frame("other", [garment("shirt", "red", 1.0)]),
    ])
    query = same_garment(color="red", category="dress")
    inner = query["nested"]["query"]["nested"]
    inner["query"] = {"function_score": {
        "query": inner["query"], "boost_mode": "replace",
        "field_value_factor": {"field": "persons.garments.confidence", "missing": 0}}}
    response = frames.search(index=FRAMES, query=query)
    assert ids(response) == ["high", "mid", "low"]
    assert [round(hit["_score"], 3) for hit in response["hits"]["hits"]] == [0.9, 0.6, 0.3]


def test_search_after_pages_through_ties_without_gaps_or_repeats(frames):
    times = [1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
    docs = [frame(f"f{i}", timestamp=t) for i, t in reversed(list(enumerate(times)))]
    bulk_index(frames, FRAMES, docs)
    sort = [{"timestamp": "asc"}, {"frame_id": "asc"}]
    seen, after = [], None
    for _ in range(10):
        page = frames.search(index=FRAMES, sort=sort, size=2, **({"search_after": after} if after else {}))
        hits = page["hits"]["hits"]
        if not hits:
            break
        seen += [hit["_id"] for hit in hits]
        after = hits[-1]["sort"]
    assert seen == [f"f{i}" for i in range(len(times))]


def test_update_with_stale_seq_no_conflicts(frames):
    created = frames.index(index=FRAMES, id="f", document=frame("f", [garment("dress", "red")]), refresh=True)
    edit = {"persons": [{"person_id": "f-p0", "confidence": 1.0, "garments": [garment("dress", "blue", 1.0)]}]}
    updated = frames.update(index=FRAMES, id="f", doc=edit, refresh=True,
                            if_seq_no=created["_seq_no"], if_primary_term=created["_primary_term"])
    assert updated["result"] == "updated" and updated["_seq_no"] > created["_seq_no"]

    with pytest.raises(ConflictError) as raised:
        frames.update(index=FRAMES, id="f", doc={"caption": "late edit"},
                      if_seq_no=created["_seq_no"], if_primary_term=created["_primary_term"])
    assert raised.value.meta.status == 409
    current = frames.get(index=FRAMES, id="f")
    assert current["_seq_no"] == updated["_seq_no"]
    assert current["_source"]["persons"][0]["garments"][0]["color"] == "blue"


def test_delete_by_query_removes_one_media(frames):
    bulk_index(frames, FRAMES, [frame(f"a{i}", media_id="a") for i in range(3)] + [frame("b0", media_id="b")])
    response = frames.delete_by_query(index=FRAMES, query={"term": {"media_id": "a"}}, refresh=True)
    assert response["deleted"] == 3
    assert ids(frames.search(index=FRAMES)) == ["b0"]


def test_terms_aggregations_count_frames_and_garment_colours(frames):
    bulk_index(frames, FRAMES, [
        frame("a0", [garment("dress", "red"), garment("shoes", "red")], media_id="a"),
        frame("a1", [garment("shirt", "blue")], media_id="a"),
        frame("b0", [garment("dress", "red")], media_id="b"),
    ])
    response = frames.search(index=FRAMES, size=0, aggs={
        "media": {"terms": {"field": "media_id"}},
        "persons": {"nested": {"path": "persons"}, "aggs": {"garments": {
            "nested": {"path": "persons.garments"},
            "aggs": {"colors": {"terms": {"field": "persons.garments.color"},
                                "aggs": {"frames": {"reverse_nested": {}}}}}}}},
    })
    aggs = response["aggregations"]
    assert {b["key"]: b["doc_count"] for b in aggs["media"]["buckets"]} == {"a": 2, "b": 1}
    colors = aggs["persons"]["garments"]["colors"]["buckets"]
    # Garments per colour, and (through reverse_nested) frames per colour.
    assert {b["key"]: b["doc_count"] for b in colors} == {"red": 3, "blue": 1}
    assert {b["key"]: b["frames"]["doc_count"] for b in colors} == {"red": 2, "blue": 1}


def test_caption_highlight(frames):
    bulk_index(frames, FRAMES, [frame("f", caption="a woman in a floral skirt"), frame("g", caption="a man")])
    response = frames.search(index=FRAMES, query={"match": {"caption": "floral"}},
                             highlight={"fields": {"caption": {}}})
    assert ids(response) == ["f"]
    assert response["hits"]["hits"][0]["highlight"]["caption"] == ["a woman in a <em>floral</em> skirt"]

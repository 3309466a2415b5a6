"""What only the Elasticsearch backend has: versioned indices behind aliases, the alias swap of a
rebuild, a run switch without transactions, retries when the cluster drops requests, and its query.
Everything both backends share runs in test_store_runs.py and test_store_search.py.

Against osmem-server (tests/indexer/elasticsearch_server.py), through the official client.
"""

from __future__ import annotations

import math

import pytest

pytest.importorskip("elasticsearch", reason="the elasticsearch client is not installed")

from elastic_transport import ConnectionError as TransportConnectionError

import indexer.elasticsearch as es_backend
from indexer.elasticsearch import ElasticsearchStore
from indexer.moments import build_moments
from indexer.review import SetValue, edit_frame
from indexer.cluster_scoring import OFFSET, score_body
from indexer.query import AttributeTerm, GarmentConstraint, ParsedQuery
from indexer.search import (
    SearchRequest,
    rank_moments,
    score_document,
    scoring_view,
)
from indexer.store import MediaRecord, MediaStatus, StoreUnavailable
from tests.indexer.elasticsearch_server import PlainJsonNode
from tests.indexer.test_search import (
    black_jacket_blue_jeans,
    frame_id,
    frames,
    garment,
    person,
    red_shirt_blue_jacket,
    red_striped_dress,
)
from tests.indexer.test_store_runs import labels, record
from tests.indexer.test_store_search import (
    PARSER,
    catwalk,
    index,
    random_outfits,
    search,
    spans,
    store_view,
    street,
)

S = es_backend.SCHEMA_VERSION  # index names carry it: vestis-moments-s2-0001


@pytest.fixture
def es(es_client) -> ElasticsearchStore:
    store = ElasticsearchStore(es_client)
    yield store


def aliases(client) -> dict[str, str]:
    return {alias: index for index, body in client.indices.get_alias(name="vestis-*").items() for alias in body["aliases"]}


def stored_moment_runs(client, media_id: str) -> list[str]:
    client.indices.refresh(index="vestis-moments")
    hits = client.search(index="vestis-moments", query={"term": {"media_id": media_id}}, size=1000)["hits"]["hits"]
    return sorted(h["_source"]["run_id"] for h in hits)


def test_indices_are_versioned_behind_aliases_and_shaped_by_templates(es, es_client):
    kinds = ("frames", "media", "moments", "reviews", "audit")
    assert aliases(es_client) == {f"vestis-{kind}": f"vestis-{kind}-s{S}-0001" for kind in kinds}
    templates = {t["name"]: t for t in es_client.indices.get_index_template()["index_templates"]}
    assert templates["vestis-moments"]["index_template"]["index_patterns"] == ["vestis-moments-*"]
    mapping = es_client.indices.get_mapping(index="vestis-moments")[f"vestis-moments-s{S}-0001"]["mappings"]
    persons = mapping["properties"]["persons"]
    assert persons["type"] == "nested" and persons["properties"]["garments"]["type"] == "nested"
    assert persons["properties"]["garments"]["properties"]["color"]["properties"]["value"]["type"] == "keyword"
    assert mapping["properties"]["caption"]["type"] == "text"
    # a second store object (another worker) finds the layout and changes nothing
    ElasticsearchStore(es_client)
    assert aliases(es_client)["vestis-moments"] == f"vestis-moments-s{S}-0001"


def test_rebuild_fills_a_new_index_and_swaps_the_alias(es, es_client):
    index(es, "catwalk", catwalk())
    index(es, "street", street())
    before = {text: store_view(search(es, text)) for text in ("red dress", "", "happy", "not black")}
    assert es.rebuild_moments() == 2
    assert aliases(es_client)["vestis-moments"] == f"vestis-moments-s{S}-0002"
    assert not es_client.indices.exists(index=f"vestis-moments-s{S}-0001")  # the old one is gone
    assert aliases(es_client)["vestis-frames"] == f"vestis-frames-s{S}-0001"  # frames did not need it
    assert {text: store_view(search(es, text)) for text in before} == before


def test_moments_from_before_ranking_in_the_cluster_are_searched_by_reading_them_all(es_client, monkeypatch):
    monkeypatch.setattr(es_backend, "SCHEMA_VERSION", 2)  # the layout the bound lists' version named
    old = ElasticsearchStore(es_client)
    index(old, "catwalk", catwalk())
    monkeypatch.setattr(es_backend, "SCHEMA_VERSION", S)
    newer = ElasticsearchStore(es_client)
    assert "moments" in newer.outdated() and not newer._moments_scored_in_cluster()
    everything = newer.moments_of("catwalk")
    for text in ("red dress", "", "not black"):
        req = SearchRequest(query=PARSER.parse(text), limit=2)
        found = newer.search_counted(req)
        assert store_view(found.page) == store_view(rank_moments(everything, req)) and found.read == 2
    newer.rebuild_moments()
    assert newer._moments_scored_in_cluster()


def test_a_search_asks_the_cluster_for_its_best_page(es, monkeypatch):
    """The request bodies as a contract: the cluster scores each moment in log space (nested persons,
    nested garments, the best of each) and returns them sorted by it, a page and two at a time, those
    under the threshold left out by min_score; never a scan of every candidate."""
    index(es, "catwalk", catwalk())
    index(es, "street", street())
    sent: list[dict] = []
    search_ = es.client.search

    def recording(**kwargs):
        sent.append(kwargs)
        return search_(**kwargs)

    monkeypatch.setattr(es.client, "search", recording)
    es.search(SearchRequest(query=PARSER.parse("black"), limit=5))
    ranked = [body for body in sent if "sort" in body and body["sort"][0] == {"_score": "desc"}]
    assert ranked and ranked[0]["size"] == 5 + 2 and "from_" not in ranked[0] and "search_after" not in ranked[0]
    assert ranked[0]["sort"] == [{"_score": "desc"}, {"moment_id": "asc"}, {"run_id": "asc"}]
    # two factors (salience, black), each offset by OFFSET: the threshold 0.01 in log space
    assert ranked[0]["min_score"] == pytest.approx(2 * OFFSET + math.log(0.01), abs=1e-3)
    [person] = ranked[0]["query"]["bool"]["must"]
    assert person["nested"]["path"] == "scoring" and person["nested"]["score_mode"] == "max"
    salience, garment = person["nested"]["query"]["bool"]["must"]
    assert salience["function_score"]["functions"] == [{"field_value_factor": {"field": "scoring.lp.salience"}}]
    # black as the primary or the secondary colour, whichever is likelier: the garment's stored lp
    assert garment["nested"] == {"path": "scoring.garments", "score_mode": "max", "query": {"function_score": {
        "query": {"bool": {"filter": [{"exists": {"field": "scoring.garments.lp.color_black"}}]}},
        "functions": [{"field_value_factor": {"field": "scoring.garments.lp.color_black"}}],
        "score_mode": "sum", "boost_mode": "replace"}}}
    pages = [body for body in sent if body not in ranked]
    assert len(pages) == 1 and pages[0]["query"] == {"terms": {"moment_id": pages[0]["query"]["terms"]["moment_id"]}}


def _clauses(body: dict) -> list[dict]:
    return body["nested"]["query"]["bool"]["must"]


def test_negations_strict_mode_and_min_confidence_in_the_cluster_body():
    """The parts of the body that are more than sums of stored logs: a negated term takes the least lq of
    the labels sure enough (1 - 0 where the colour cannot be it); a negated constraint sums -ln(1 - p)
    over the garments and turns that back into OFFSET + ln of the product with a script, OFFSET for a
    person with no garment that may meet it; strict mode scores the top labels' confidence and excludes
    a person with a garment meeting a negated constraint; min_confidence tests the labels' `conf`."""
    body, clauses, _ = score_body(SearchRequest(query=PARSER.parse("dress not black")))
    dress = _clauses(body)[1]["nested"]["query"]["function_score"]
    assert clauses == 3 and {"field_value_factor": {"field": "scoring.garments.lq.color_black", "missing": OFFSET}} \
        in dress["functions"]
    assert {"bool": {"should": [{"exists": {"field": "scoring.garments.label.color.conf"}},
                                {"exists": {"field": "scoring.garments.label.secondary_color.conf"}}],
                     "minimum_should_match": 1}} in dress["query"]["bool"]["filter"]  # a labelled colour
    # under a min_confidence, each colour label on its own: the least lq of those sure enough
    body, _, _ = score_body(SearchRequest(query=PARSER.parse("dress not black"), min_confidence=0.5))
    not_black = [t["function_score"] for t in _clauses(body)[1]["nested"]["query"]["bool"]["must"]
                 if t["function_score"]["score_mode"] == "min"][0]
    assert not_black["functions"] == [
        {"filter": {"range": {"scoring.garments.label.color.conf": {"gte": 0.5}}},
         "field_value_factor": {"field": "scoring.garments.lq1.color_black", "missing": OFFSET}},
        {"filter": {"range": {"scoring.garments.label.secondary_color.conf": {"gte": 0.5}}},
         "field_value_factor": {"field": "scoring.garments.lq2.color_black", "missing": OFFSET}}]

    body, clauses, _ = score_body(SearchRequest(query=PARSER.parse("white t-shirt without a hat"), min_confidence=0.7))
    salience, shirt, hat = _clauses(body)
    assert clauses == 4 and {"range": {"scoring.label.detection.conf": {"gte": 0.7}}} in \
        salience["function_score"]["query"]["bool"]["filter"]
    assert shirt["nested"]["query"]["bool"]["filter"] == [{"range": {"scoring.garments.label.category.conf": {"gte": 0.7}}}]
    product, none = hat["bool"]["should"]
    assert product["function_score"]["query"]["nested"]["score_mode"] == "sum"
    assert product["function_score"]["functions"][0]["script_score"]["script"]["params"] == {"o": OFFSET}
    assert none["constant_score"]["boost"] == OFFSET

    body, clauses, _ = score_body(SearchRequest(query=PARSER.parse("red dress without a hat"), strict=True))
    person = body["nested"]["query"]["bool"]
    assert clauses == 3 and len(person["must"]) == 2 and person["must_not"][0]["nested"]["path"] == "scoring.garments"
    terms = [t["function_score"] for t in person["must"][1]["nested"]["query"]["bool"]["must"]]
    assert sorted([f["field_value_factor"]["field"] for f in t["functions"]] for t in terms) == [
        ["scoring.garments.label.category.lc"],
        ["scoring.garments.label.color.lc", "scoring.garments.label.secondary_color.lc"]]


QUERIES = ["black", "red dress", "without a hat", "no dress", "blue pants without a hat", "dress not black",
           "happy in red", "not sad", "without red", "without a red dress", "without a black coat/jacket",
           "red striped dress", "not red t-shirt", "happy in a floral dress without a hat", "striped", ""]


def _meaning(field: str, value: str, similarity: float, negated: bool = False) -> AttributeTerm:
    return AttributeTerm(field=field, value=value, negated=negated, source="x", via="semantic", similarity=similarity)


# Terms mapped by meaning weigh P by their similarity: outside a negated constraint a constant factor (the
# body's scale), inside one a part of each garment's p.
SEMANTIC = [
    ParsedQuery(garments=[GarmentConstraint(terms=[_meaning("category", "dress", 0.8)])]),
    ParsedQuery(garments=[GarmentConstraint(terms=[_meaning("color", "red", 0.7, negated=True),
                                                   AttributeTerm(field="category", value="dress", source="dress")])]),
    ParsedQuery(garments=[GarmentConstraint(terms=[_meaning("category", "hat", 0.6)], negated=True)]),
    ParsedQuery(garments=[GarmentConstraint(terms=[AttributeTerm(field="color", value="black", source="black"),
                                                   _meaning("category", "coat/jacket", 0.9)], negated=True)],
                person=[_meaning("expression", "happy", 0.75)]),
]


def test_the_cluster_scores_each_moment_as_the_reference_does(es):
    """The cluster's score of every moment the body matches is the reference's score (indexer.search) in
    log space, within float32 rounding and never under it (a score under e^-OFFSET: under 1e-3), and it
    matches every moment the reference does (and some the reference scores 0, a factor of 1 - P with P
    = 1, under 1e-3): negations, strict mode, min_confidence and terms mapped by meaning included."""
    media = random_outfits(5)
    for name, labels in media.items():
        index(es, name, labels)
    everything = [m for name in media for m in es.moments_of(name)]
    for query in [PARSER.parse(text) for text in QUERIES] + SEMANTIC:
        for kw in ({}, {"min_confidence": 0.6}, {"strict": True}, {"strict": True, "min_confidence": 0.6}):
            request = SearchRequest(query=query, **kw)
            text = query.interpretation
            body, clauses, scale = score_body(request)
            hits = es.client.search(index=es.aliases["moments"], query=body, size=1000,
                                    _source=["summary"])["hits"]["hits"]
            if not kw:
                assert hits, text  # every query matches some of the random outfits
            unfiltered = request.model_copy(update={"threshold": 0.0})  # every score above 0, whatever the threshold
            scores = {m.moment_id: score_document(scoring_view(m), unfiltered) or 0.0 for m in everything}
            assert {h["_source"]["summary"]["moment_id"] for h in hits} >= \
                {m for m, score in scores.items() if score > 0}, (text, kw)
            for h in hits:
                expected = scores[h["_source"]["summary"]["moment_id"]]
                found = math.exp(h["_score"] - OFFSET * clauses) * scale
                assert found >= expected * (1 - 1e-5), (text, kw)
                if expected >= 1e-4:
                    assert found == pytest.approx(expected, rel=1e-5), (text, kw)
                else:
                    assert found < 1e-3, (text, kw)


def test_a_page_reads_the_page_and_a_bounded_look_ahead(es):
    """The cluster's score being the score, a page reads its hits, one more and the moments tied with the
    last, whatever the query (negations, strict mode, min_confidence, review state); a later page its own,
    starting at its cursor's score."""
    for m in range(30):
        index(es, f"v{m}", [f for i in range(4) for f in frames(
            f"v{m}", [10.0 * i], black_jacket_blue_jeans(confidence=0.5 + 0.01 * m + 0.001 * i), reason="shot")])
    everything = [moment for m in range(30) for moment in es.moments_of(f"v{m}")]
    for text in ("black", "", "black jacket", "black long-sleeve jacket", "black jacket and blue jeans",
                 "blue jeans", "happy in black", "without a hat", "no jacket", "black jeans without a jacket",
                 "without a black jacket", "jacket not red", "not happy"):
        for kw in ({}, {"strict": True}, {"min_confidence": 0.52}, {"review_status": ["unreviewed"]}):
            req = SearchRequest(query=PARSER.parse(text), limit=5, **kw)
            found = es.search_counted(req)
            assert store_view(found.page) == store_view(rank_moments(everything, req)), (text, kw)
            assert found.read <= 5 + 2, (text, kw, found.read)
            for n in (2, 3, 4):
                if found.page.next_cursor is None:
                    break
                req = req.model_copy(update={"cursor": found.page.next_cursor})
                found = es.search_counted(req)
                assert store_view(found.page) == store_view(rank_moments(everything, req)), (text, kw, n)
                assert found.read <= 5 + 3, (text, kw, n, found.read)


def test_a_walk_resumes_with_search_after_never_from(es, monkeypatch):
    """The batches of a ranked walk after the first resume with search_after a hair (RESUME_SLACK) above
    the last hit's score and no ids, never with a from/size offset, so no result window (10,000 on a
    cluster) caps a walk. osmem reports float32 scores but compares unrounded ones: resuming from the hit's
    own sort values would skip or repeat its ties there, so the walk reads the last hit's ties again."""
    for m in range(30):
        index(es, f"v{m}", [f for i in range(4) for f in frames(
            f"v{m}", [10.0 * i], black_jacket_blue_jeans(confidence=0.5 + 0.01 * m + 0.001 * i), reason="shot")])
    everything = [moment for m in range(30) for moment in es.moments_of(f"v{m}")]
    sent: list[tuple[dict, list]] = []
    search_ = es.client.search

    def recording(**kwargs):
        response = search_(**kwargs)
        sent.append((kwargs, response["hits"]["hits"]))
        return response

    monkeypatch.setattr(es.client, "search", recording)
    # a walk that cannot stop early: each hit's score taken as twice what the cluster says
    monkeypatch.setattr(es_backend, "TIGHT_SLACK", 1.0)
    req = SearchRequest(query=PARSER.parse("black jacket"), limit=5)
    assert store_view(es.search(req)) == store_view(rank_moments(everything, req))
    ranked = [(body, hits) for body, hits in sent if "sort" in body and body["sort"][0] == {"_score": "desc"}]
    assert len(ranked) >= 3  # it read on past the first batches
    assert "search_after" not in ranked[0][0]
    for (_, hits), (body, _) in zip(ranked, ranked[1:]):
        assert "from_" not in body and body["search_after"][1:] == ["", ""]
        assert body["search_after"][0] == pytest.approx(hits[-1]["sort"][0] + es_backend.RESUME_SLACK, abs=1e-9)


def test_a_schema_change_moves_every_index_through_reindex(es, es_client, monkeypatch):
    index(es, "catwalk", catwalk())
    es.record_failure("/videos/broken.mp4", "video", "empty file (0 bytes)")
    dress = frame_id("catwalk", 2.0)
    edit_frame(es, dress, SetValue(path="persons.0.garments.0.color", value="blue"), "0", "alice")
    monkeypatch.setattr(es_backend, "SCHEMA_VERSION", S + 1)
    newer = ElasticsearchStore(es_client)
    kinds = {"media", "frames", "moments", "reviews", "audit"}
    assert set(newer.outdated()) == kinds
    assert spans(search(newer, "blue dress")) == [("catwalk", 0.0, 4.0)]  # the old indices keep serving
    newer.rebuild_moments()
    assert aliases(es_client) == {f"vestis-{k}": f"vestis-{k}-s{S + 1}-0002" for k in kinds}
    assert newer.outdated() == ()
    assert spans(search(newer, "blue dress")) == [("catwalk", 0.0, 4.0)]  # the review came along
    assert [e.action for e in newer.audit_log(frame_id=dress)] == ["set"]
    assert len(newer.frames_of("catwalk")) == 14
    assert sorted(m.status.value for m in newer.list_media()) == ["done", "failed"]


def test_a_crash_before_the_switch_shows_the_old_run_and_the_next_run_clears_it(es, es_client, monkeypatch):
    index(es, "catwalk", catwalk())
    before = es.moments_of("catwalk")
    es.begin_run(MediaRecord(media_id="catwalk", path="/videos/catwalk.mp4", kind="video",
                             status=MediaStatus.PENDING, run_id="run-2"))
    es.write_frames("run-2", frames("catwalk", [0.0, 1.0], red_shirt_blue_jacket()))
    put_media = ElasticsearchStore._put_media

    def die_at_the_switch(self, doc, expected=None):
        if expected is not None:
            raise OSError("killed")  # the moments of run-2 are written, the media still points at run-1
        return put_media(self, doc, expected)

    monkeypatch.setattr(ElasticsearchStore, "_put_media", die_at_the_switch)
    with pytest.raises(OSError):
        es.finish_run("catwalk", "run-2", 2, 2, 4, 0.1)
    monkeypatch.undo()
    assert "run-2" in stored_moment_runs(es_client, "catwalk")  # written, but nobody sees them
    assert es.moments_of("catwalk") == before
    assert spans(search(es, "red shirt")) == [] and spans(search(es, "red dress")) == [("catwalk", 0.0, 4.0)]
    assert es.moment(before[0].moment_id) == before[0]

    es.begin_run(MediaRecord(media_id="catwalk", path="/videos/catwalk.mp4", kind="video",
                             status=MediaStatus.PENDING, run_id="run-3"))
    assert set(stored_moment_runs(es_client, "catwalk")) == {"run-1"}  # the crash's leftovers are gone


def test_a_run_begun_meanwhile_makes_the_finish_fail_instead_of_overwriting(es, es_client, monkeypatch):
    index(es, "catwalk", catwalk())
    es.begin_run(record("catwalk", "run-2", path="/videos/catwalk.mp4"))
    es.write_frames("run-2", frames("catwalk", [0.0], red_shirt_blue_jacket()))
    other = ElasticsearchStore(es_client)
    run_frames = ElasticsearchStore._run_frames

    def and_meanwhile(self, media_id, run_id):
        found = run_frames(self, media_id, run_id)
        if run_id == "run-2":  # after finish_run read the media document, before it flips it
            other.begin_run(record("catwalk", "run-3", path="/videos/catwalk.mp4"))
        return found

    monkeypatch.setattr(ElasticsearchStore, "_run_frames", and_meanwhile)
    with pytest.raises(RuntimeError, match="newer run began"):
        es.finish_run("catwalk", "run-2", 1, 1, 2, 0.1)
    media = es.get_media("catwalk")
    assert (media.run_id, media.visible_run_id, media.status) == ("run-3", "run-1", MediaStatus.PENDING)
    assert spans(search(es, "red dress")) == [("catwalk", 0.0, 4.0)]


class FlakyNode(PlainJsonNode):
    """Drops the first `failures` bulk requests as if the connection broke."""

    failures = 0

    def perform_request(self, method, target, body=None, headers=None, **kwargs):
        if target.endswith("/_bulk") or "/_bulk?" in target:
            if FlakyNode.failures > 0:
                FlakyNode.failures -= 1
                raise TransportConnectionError("connection reset by peer (injected)")
        return super().perform_request(method, target, body=body, headers=headers, **kwargs)


def flaky_store(es_server, failures: int, attempts: int = 4) -> ElasticsearchStore:
    from elasticsearch import Elasticsearch

    FlakyNode.failures = failures
    client = Elasticsearch(es_server, node_class=FlakyNode, request_timeout=10, max_retries=0)
    return ElasticsearchStore(client, attempts=attempts, backoff_s=0.01)


def test_bulk_writes_retry_through_dropped_connections_without_duplicates(es_client, es_server):
    store = flaky_store(es_server, failures=3)
    store.begin_run(record("m1", "run-a"))
    store.write_frames("run-a", labels("m1", [0.0, 1.0, 2.0]))
    assert FlakyNode.failures == 0  # all three drops were met and retried
    store.finish_run("m1", "run-a", 3, 0, 0, 0.1)
    es_client.indices.refresh(index="vestis-frames")
    assert es_client.count(index="vestis-frames")["count"] == 3
    assert [f.timestamp for f in store.frames_of("m1")] == [0.0, 1.0, 2.0]


def test_a_cluster_that_stays_away_is_a_clear_error_and_keeps_the_visible_run(es_client, es_server):
    store = flaky_store(es_server, failures=0)
    index(store, "catwalk", catwalk())
    store.begin_run(record("catwalk", "run-2", path="/videos/catwalk.mp4"))
    FlakyNode.failures = 100
    with pytest.raises(StoreUnavailable, match=f"unreachable after 4 tries at {es_server.rstrip('/')}"):
        store.write_frames("run-2", frames("catwalk", [0.0], red_shirt_blue_jacket()))  # the URL: issue 19
    FlakyNode.failures = 0
    store.fail_run("catwalk", "run-2", "Elasticsearch unreachable")
    assert spans(search(store, "red dress")) == [("catwalk", 0.0, 4.0)]


def test_an_unreachable_url_fails_at_start_naming_the_setting():
    with pytest.raises(StoreUnavailable, match=r"store.elasticsearch_url http://127.0.0.1:9.*2 tries"):
        ElasticsearchStore.connect("http://127.0.0.1:9", attempts=2, backoff_s=0.01)


def test_moments_with_several_persons_are_narrowed_per_person(es):
    """build_moments makes one person per moment, but a Moment may hold several: per-person conditions
    (negation, expression, same-person garments) must be checked on the right person."""
    index(es, "pair", frames("pair", [0.0, 1.0], red_striped_dress()))
    [single] = es.moments_of("pair")
    hatted = person(garment("hat", "black"), garment("coat/jacket", "blue"), expression="angry")
    [other] = build_moments(frames("pair", [0.0], hatted))[0].persons
    pair = single.model_copy(update={"persons": [*single.persons, other]})
    es._bulk(es._moment_actions(es.aliases["moments"], "run-1", [pair], "pair.mp4"), refresh=True)
    assert es.moments_of("pair") == [pair]
    for text in ("without a hat", "red dress", "black hat", "angry", "not angry", "red dress without a hat",
                 "blue jacket", "red jacket", "angry red dress", "dress not red", ""):
        req = SearchRequest(query=PARSER.parse(text), limit=200)
        assert store_view(es.search(req)) == store_view(rank_moments([pair], req)), text
    assert search(es, "angry").hits[0].person_index == 1


def test_the_caption_serves_full_text_tools(es, es_client):
    index(es, "catwalk", catwalk())
    es_client.indices.refresh(index="vestis-moments")
    hits = es_client.search(index="vestis-moments", query={"match": {"caption": "striped"}})["hits"]["hits"]
    assert [h["_source"]["start"] for h in hits] == [0.0]
    assert "red striped dress" in hits[0]["_source"]["caption"]


# --- a cluster that restarted empty (issue 19, finding 8) ----------------------------------------------


def _restart_empty(client) -> None:
    from tests.indexer.elasticsearch_server import wipe

    wipe(client)


def test_writes_after_the_cluster_restarted_empty_fail_clearly_and_create_no_plain_index(es, es_client):
    es.begin_run(record("m1", "run-a"))
    _restart_empty(es_client)
    with pytest.raises(StoreUnavailable, match="no index alias 'vestis-frames' any more"):
        es.write_frames("run-a", labels("m1", [0.0, 1.0]))
    with pytest.raises(StoreUnavailable, match="no index alias 'vestis-media' any more"):
        es.begin_run(record("m2", "run-b"))
    assert not es_client.indices.exists(index="vestis-frames")
    assert not es_client.indices.exists(index="vestis-media")
    again = ElasticsearchStore(es_client)  # the next command recreates the layout
    again.begin_run(record("m1", "run-c"))
    again.write_frames("run-c", labels("m1", [0.0]))
    again.finish_run("m1", "run-c", 1, 0, 0, 0.1)
    assert [f.frame_id for f in again.frames_of("m1")] == ["m1-000000000"]


def test_a_plain_index_where_the_alias_belongs_is_repaired_on_open(es_client):
    """What an older version left behind: every status, ingest and serve failed until it was deleted by hand."""
    es_client.index(index="vestis-frames", id="run-x:m1-000000000", refresh=True, document={
        **labels("m1", [0.0])[0].model_dump(mode="json"), "run_id": "run-x"})
    store = ElasticsearchStore(es_client)
    found = aliases(es_client)
    assert set(found) >= {"vestis-media", "vestis-frames", "vestis-moments"}
    assert found["vestis-frames"].startswith("vestis-frames-s")
    assert es_client.count(index="vestis-frames")["count"] == 1  # its document moved with it
    store.begin_run(record("m2", "run-b"))
    store.write_frames("run-b", labels("m2", [0.0, 1.0]))
    store.finish_run("m2", "run-b", 2, 0, 0, 0.1)
    assert len(store.frames_of("m2")) == 2


def test_a_plain_index_that_cannot_be_moved_names_the_command_that_clears_it(es_client):
    es_client.indices.create(index="vestis-media", mappings={"properties": {"media_id": {"type": "integer"}}})
    es_client.index(index="vestis-media", id="x", refresh=True, document={"media_id": 7, "unexpected": "field"})
    from indexer.store import StoreInconsistent

    with pytest.raises(StoreInconsistent, match=r"plain index named 'vestis-media' .*strict.* curl -X DELETE "
                                                r"'<store.elasticsearch_url>/vestis-media'"):
        ElasticsearchStore(es_client)

"""Similar-garment search on the embedded store: nearest moments, filters, runs and the index file."""

from __future__ import annotations

import numpy as np
import pytest

from indexer import vector_index
from indexer.embedded import EmbeddedStore
from indexer.query_parser import QueryParser
from indexer.search import SearchRequest
from indexer.similar import SimilarRequest, UnknownGarment, garment_embedding, parse_reference
from labels import Embedding, FrameLabels, RuleSet
from tests.indexer.test_search import black_jacket_blue_jeans, frames, red_striped_dress
from tests.indexer.test_store_search import index

SPACE = RuleSet("garment-embedding", "test-1")
PARSER = QueryParser()


def _direction(seed: int, dim: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(dim)


def embedded(labels: list[FrameLabels], seeds: list[int], noise: float = 0.05) -> list[FrameLabels]:
    """Give the k-th garment of every person the embedding _direction(seeds[k]) plus a little noise."""
    rng = np.random.default_rng(99)
    for frame in labels:
        for person in frame.persons:
            for k, garment in enumerate(person.garments):
                v = _direction(seeds[k]) + noise * rng.standard_normal(16)
                garment.embedding = Embedding.made_by(SPACE, v)
    return labels



def index_three_videos(settings) -> None:
    """Into the store `settings` name: a red striped dress (catwalk) and black jackets with blue
    jeans (street, park), embedded so that street's and park's jackets look alike: the scene the API
    and page tests search."""
    from indexer import open_store
    from tests.indexer.test_store_search import index

    store = open_store(settings)
    try:
        index(store, "catwalk", embedded(frames("catwalk", [0.0, 1.0], red_striped_dress()), [1]))
        index(store, "street", embedded(frames("street", [0.0, 1.0], black_jacket_blue_jeans()), [2, 3]))
        index(store, "park", embedded(frames("park", [0.0], black_jacket_blue_jeans()), [2, 30]))
    finally:
        store.close()

@pytest.fixture
def scene(tmp_path) -> EmbeddedStore:
    store = EmbeddedStore(tmp_path)
    index(store, "catwalk", embedded(frames("catwalk", [0.0, 1.0, 2.0], red_striped_dress()), [1]))
    index(store, "street", embedded(frames("street", [0.0, 1.0], black_jacket_blue_jeans()), [2, 3]))
    index(store, "park", embedded(frames("park", [0.0, 1.0], red_striped_dress()), [4]))
    yield store
    store.close()


def like(seed: int, **kw) -> SimilarRequest:
    return SimilarRequest(embedding=Embedding.made_by(SPACE, _direction(seed)), **kw)


def test_the_nearest_garment_s_moment_comes_first(scene):
    page = scene.similar(like(3))  # the jeans of the street video
    assert page.hits[0].moment.media_id == "street"
    assert page.hits[0].score > 0.95
    assert [h.score for h in page.hits] == sorted((h.score for h in page.hits), reverse=True)
    assert {h.moment.media_id for h in page.hits} == {"catwalk", "street", "park"}
    assert page.hits[-1].score < 0.9


def test_text_filters_narrow_like_search(scene):
    request = like(3, filters=SearchRequest(query=PARSER.parse("dress")))
    page = scene.similar(request)
    assert {h.moment.media_id for h in page.hits} == {"catwalk", "park"}  # the jeans' moment has no dress
    assert page.hits[0].matched, "the filter's evidence is kept"


def test_only_vectors_of_the_same_space_compare(scene):
    other = SimilarRequest(embedding=Embedding.made_by(RuleSet("garment-embedding", "test-2"), _direction(3)))
    assert scene.similar(other).hits == []


def test_a_new_run_replaces_its_vectors_and_the_index_follows(scene, tmp_path):
    assert scene.similar(like(1)).hits[0].moment.media_id == "catwalk"
    # catwalk is re-ingested with other garments: its old vectors go, the index catches up
    index(scene, "catwalk", embedded(frames("catwalk", [0.0, 1.0], red_striped_dress()), [5]), run_id="run-2")
    page = scene.similar(like(1))
    assert page.hits[0].moment.media_id != "catwalk" or page.hits[0].score < 0.9
    assert scene.similar(like(5)).hits[0].moment.media_id == "catwalk"
    # another process (a restarted server) reads the index file and agrees
    reopened = EmbeddedStore(tmp_path)
    try:
        assert (tmp_path / "garment-vectors.faiss").is_file()
        assert [h.moment.moment_id for h in reopened.similar(like(5)).hits] == \
            [h.moment.moment_id for h in scene.similar(like(5)).hits]
    finally:
        reopened.close()


def test_a_damaged_index_file_is_rebuilt(scene, tmp_path):
    expected = [h.moment.moment_id for h in scene.similar(like(2)).hits]
    (tmp_path / "garment-vectors.faiss").write_bytes(b"not an index")
    reopened = EmbeddedStore(tmp_path)
    try:
        assert [h.moment.moment_id for h in reopened.similar(like(2)).hits] == expected
    finally:
        reopened.close()


def test_the_ivf_index_finds_what_the_exact_one_finds(tmp_path, monkeypatch):
    monkeypatch.setattr(vector_index, "EXACT_BELOW", 50)
    store = EmbeddedStore(tmp_path)
    try:
        for m in range(30):
            index(store, f"video-{m}", embedded(frames(f"video-{m}", [0.0], black_jacket_blue_jeans()),
                                               [100 + 2 * m, 101 + 2 * m]))
        page = store.similar(like(100 + 2 * 17))
        assert store._vectors._meta["kind"] == "ivf"
        assert page.hits[0].moment.media_id == "video-17"
    finally:
        store.close()


def test_references_name_a_moment_s_or_a_frame_s_garment(scene):
    moment = scene.similar(like(2)).hits[0].moment
    embedding, owner = garment_embedding(scene, f"{moment.moment_id}/0/0")
    assert owner == moment.moment_id and embedding.same_space(moment.persons[0].garments[0].embedding)
    frame_embedding, owner = garment_embedding(scene, f"{moment.frame_ids[0]}/0/1")
    assert owner is None and float(frame_embedding.unit() @ _direction(3) / np.linalg.norm(_direction(3))) > 0.95
    with pytest.raises(UnknownGarment, match="no visible moment or frame"):
        garment_embedding(scene, "nothing/0/0")
    with pytest.raises(UnknownGarment, match="no garment 7"):
        garment_embedding(scene, f"{moment.moment_id}/0/7")
    with pytest.raises(ValueError, match="<moment or frame id>/<person>/<garment>"):
        parse_reference("abc/x/1")


def test_every_backend_answers_the_same(store):
    """The `store` fixture: embedded and Elasticsearch (osmem-server, an exact scan there)."""
    index(store, "catwalk", embedded(frames("catwalk", [0.0, 1.0], red_striped_dress()), [1]))
    index(store, "street", embedded(frames("street", [0.0, 1.0], black_jacket_blue_jeans()), [2, 3]))
    page = store.similar(like(3))
    assert [h.moment.media_id for h in page.hits] == ["street", "catwalk"]
    assert page.hits[0].score > 0.95
    filtered = store.similar(like(3, filters=SearchRequest(query=PARSER.parse("dress"))))
    assert [h.moment.media_id for h in filtered.hits] == ["catwalk"]

"""Search through a store: frames go in through runs, moments come out of `search`.

Every test here runs on both backends (the `store` fixture, tests/indexer/conftest.py) through the
LabelStore protocol alone; what only one backend has is tested in test_embedded.py and
test_elasticsearch.py.
"""

from __future__ import annotations

import random

import pytest

from indexer.embedded import EmbeddedStore
from indexer.search import InvalidCursor, SearchPage, SearchRequest, driver_keys, rank_moments
from indexer.store import LabelStore, MediaRecord, MediaStatus
from indexer.query_parser import QueryParser
from tests.indexer.test_search import (
    black_jacket_blue_jeans,
    frame_id,
    frames,
    garment,
    person,
    red_shirt_blue_jacket,
    red_striped_dress,
)
from labels import FrameLabels, Garment, Label, RuleSet
from labels.vocabulary import LABEL_VOCABULARY

PARSER = QueryParser()


def index(store: LabelStore, media_id: str, labels: list[FrameLabels], run_id: str = "run-1",
          path: str | None = None) -> None:
    store.begin_run(MediaRecord(media_id=media_id, path=path or f"/videos/{media_id}.mp4", kind="video",
                                status=MediaStatus.PENDING, pipeline_version="v1", run_id=run_id))
    store.write_frames(run_id, labels)
    store.finish_run(media_id, run_id, len(labels), sum(len(f.persons) for f in labels),
                     sum(f.garment_count for f in labels), 0.1)


def search(store: LabelStore, text: str, **kw) -> SearchPage:
    return store.search(SearchRequest(query=PARSER.parse(text), **kw))


def spans(page: SearchPage) -> list[tuple[str, float, float]]:
    return [(h.moment.media_id, h.moment.start, h.moment.end) for h in page.hits]


def catwalk() -> list[FrameLabels]:
    """A red striped dress for 5 s (0-4), a frame with nobody, then a man in a black jacket and blue
    jeans for 8 s (6-13); the dress's clearest view is at 2 s, where she is largest."""
    dress = frames("catwalk", [0.0, 1.0, 3.0, 4.0], red_striped_dress())
    closest = frames("catwalk", [2.0], red_striped_dress())[0]
    closest.persons[0].box.y2 = 500  # a larger box: the best frame
    nobody = frames("catwalk", [5.0])
    man = frames("catwalk", [6.0 + i for i in range(8)], black_jacket_blue_jeans(x=200))
    return sorted([*dress, closest, *nobody, *man], key=lambda f: f.timestamp)


def street() -> list[FrameLabels]:
    """A sad face over a red shirt under a blue jacket (0-3), then a smiling face over a white dress
    with a black hat (10-12)."""
    hat = person(garment("dress", "white"), garment("hat", "black", confidence=0.6), expression="happy")
    return [
        *frames("street", [0.0, 1.0, 2.0, 3.0], red_shirt_blue_jacket(expression="sad", expression_confidence=0.6)),
        *frames("street", [10.0, 11.0, 12.0], hat),
    ]


@pytest.fixture
def scene(store: LabelStore) -> LabelStore:
    index(store, "catwalk", catwalk())
    index(store, "street", street())
    return store


# --- what matches -------------------------------------------------------------------------------


def test_red_dress_finds_the_dress_moment_first(scene):
    page = search(scene, "red dress")
    assert spans(page) == [("catwalk", 0.0, 4.0)] and page.total == 1
    [hit] = page.hits
    assert hit.moment.best_frame_id == frame_id("catwalk", 2.0) and hit.moment.best_timestamp == 2.0
    assert hit.matched[0].category == "dress" and hit.score > 0.5
    assert spans(search(scene, "red striped dress")) == [("catwalk", 0.0, 4.0)]
    assert spans(search(scene, "dress")) == [("catwalk", 0.0, 4.0), ("street", 10.0, 12.0)]  # surer first


def test_terms_on_different_garments_do_not_match(scene):
    assert search(scene, "red jacket").hits == [] and search(scene, "red jacket").total == 0
    assert spans(search(scene, "red shirt")) == [("street", 0.0, 3.0)]
    assert spans(search(scene, "blue jacket", strict=True)) == [("street", 0.0, 3.0)]
    # the namer's neighbour: a black jacket might be called blue, far less likely
    assert spans(search(scene, "blue jacket")) == [("street", 0.0, 3.0), ("catwalk", 6.0, 13.0)]
    assert spans(search(scene, "man in a black jacket", strict=True)) == [("catwalk", 6.0, 13.0)]
    assert spans(search(scene, "man in a black jacket"))[0] == ("catwalk", 6.0, 13.0)


def test_negation(scene):
    assert spans(search(scene, "dress without a hat", strict=True)) == [("catwalk", 0.0, 4.0)]
    # with probabilities, the hat (0.6 sure) leaves a 0.4 chance that there is none
    assert spans(search(scene, "dress without a hat")) == [("catwalk", 0.0, 4.0), ("street", 10.0, 12.0)]
    assert sorted(spans(search(scene, "without a hat", strict=True))) == [
        ("catwalk", 0.0, 4.0), ("catwalk", 6.0, 13.0), ("street", 0.0, 3.0)]
    assert spans(search(scene, "jacket not black", strict=True)) == [("street", 0.0, 3.0)]
    assert spans(search(scene, "jacket not black")) == [("street", 0.0, 3.0), ("catwalk", 6.0, 13.0)]
    # "not black": any garment with a colour other than black (the man's jeans count)
    assert len(search(scene, "not black", strict=True).hits) == 4
    assert search(scene, "not black", strict=True).total == 4


def test_expression(scene):
    assert spans(search(scene, "smiling woman in a dress")) == [("street", 10.0, 12.0)]
    # faces without expression: unknown
    assert spans(search(scene, "not smiling", strict=True)) == [("street", 0.0, 3.0)]
    assert spans(search(scene, "not smiling")) == [("street", 0.0, 3.0), ("street", 10.0, 12.0)]  # 1.0, then 0.2
    assert search(scene, "not smiling", min_confidence=0.7, strict=True).total == 0


def test_media_and_time_range_filters(scene):
    assert spans(search(scene, "jacket", media_ids=["catwalk"])) == [("catwalk", 6.0, 13.0)]
    assert search(scene, "jacket", media_ids=[]).total == 0
    assert sorted(spans(search(scene, "", start=3.0, end=6.0))) == [
        ("catwalk", 0.0, 4.0), ("catwalk", 6.0, 13.0), ("street", 0.0, 3.0)]  # overlaps, bounds included
    assert spans(search(scene, "", media_ids=["street"], start=3.5)) == [("street", 10.0, 12.0)]
    assert search(scene, "", start=12.5, end=20.0).total == 1  # only the man, 6-13


def test_min_confidence(scene):
    # the hat's category confidence is 0.6: under a floor of 0.7 it is not there
    assert spans(search(scene, "black hat")) == [("street", 10.0, 12.0)]
    assert search(scene, "black hat", min_confidence=0.7).total == 0
    assert ("street", 10.0, 12.0) in spans(search(scene, "without a hat", min_confidence=0.7))
    # colours are 0.8 sure, secondary colours 0.6
    assert search(scene, "red dress", min_confidence=0.8).total == 1
    assert search(scene, "red dress", min_confidence=0.85).total == 0


def test_empty_query_returns_every_moment(scene):
    page = search(scene, "")
    assert page.total == 4 and len({h.moment.moment_id for h in page.hits}) == 4
    assert [h.score for h in page.hits] == sorted((h.score for h in page.hits), reverse=True)


def test_words_it_does_not_label_are_not_searched(scene):
    assert spans(search(scene, "dress catwalk")) == spans(search(scene, "dress"))
    for nothing_usable in ("zzzz qqqq", "someone with sunglasses", "street"):
        assert search(scene, nothing_usable) == SearchPage(hits=[], total=0)


def test_search_equals_the_reference_ranking_over_all_moments(scene):
    """The store's narrowing may only save work: every query gives what ranking all moments gives."""
    everything = [m for media in ("catwalk", "street") for m in scene.moments_of(media)]
    queries = ["red dress", "red jacket", "not black", "without a hat", "jacket not black", "no red hat", "",
               "black", "white dress with a black hat", "long sleeve", "striped", "smiling", "not smiling",
               "blue and not black", "shirt catwalk", "zzzz"]
    for text in queries:
        for kw in ({}, {"min_confidence": 0.65}, {"start": 3.0, "end": 10.0}, {"media_ids": ["street"]},
                   {"strict": True}, {"threshold": 0.3}, {"threshold": 0.0}):
            req = SearchRequest(query=PARSER.parse(text), limit=200, **kw)
            assert store_view(scene.search(req)) == store_view(rank_moments(everything, req)), (text, kw)


def with_alternatives(rng: random.Random, g: Garment) -> Garment:
    """The garment with random second and third guesses on its labels, as the garment stage keeps them."""
    for name, values in LABEL_VOCABULARY.items():
        current = getattr(g, name, None) if name != "expression" else None
        if current is None or rng.random() < 0.25:
            continue
        others = rng.sample([v for v in values if v != current.value], 2)
        rest = 1.0 - current.confidence
        alternatives = [(current.value, current.confidence), (others[0], round(rest * rng.uniform(0.3, 1.0), 3)),
                        (others[1], round(rest * rng.uniform(0.0, 0.3), 3))]
        setattr(g, name, Label.made_by(RuleSet("test", "1"), current.value, current.confidence, alternatives))
    return g


def random_outfits(seed: int, media_count: int = 6) -> dict[str, list[FrameLabels]]:
    """Media with people in random outfits of random confidences, for the randomised comparison."""
    rng = random.Random(seed)
    colors, categories = ["red", "black", "blue", "white", "gray"], ["dress", "t-shirt", "pants", "coat/jacket", "hat"]
    media: dict[str, list[FrameLabels]] = {}
    for m in range(media_count):
        name, shots, t = f"media{m}", [], 0.0
        for _ in range(rng.randint(1, 4)):
            outfit = [
                with_alternatives(rng, garment(
                    rng.choice(categories), rng.choice(colors), secondary=rng.choice([None, *colors]),
                    pattern=rng.choice([None, "solid", "striped", "floral"]), sleeve=rng.choice([None, "long", "short"]),
                    confidence=round(rng.uniform(0.3, 1.0), 3), color_confidence=round(rng.uniform(0.3, 1.0), 3)))
                for _ in range(rng.randint(1, 3))
            ]
            who = [person(*outfit, confidence=round(rng.uniform(0.3, 1.0), 3),
                          expression=rng.choice([None, "happy", "sad", "neutral"]),
                          expression_confidence=round(rng.uniform(0.3, 1.0), 3))]
            if rng.random() < 0.3:  # a second person beside the first
                who.append(person(garment(rng.choice(categories), rng.choice(colors)), x=50))
            count = rng.randint(1, 4)
            shots += frames(name, [t + i for i in range(count)], *who)
            t += count + rng.choice([0.0, 5.0])  # sometimes a gap: a new moment even for the same outfit
        media[name] = shots
    return media


@pytest.mark.parametrize("seed", [1, 2])
def test_random_outfits_rank_as_the_reference_ranks_them(store, seed):
    media = random_outfits(seed)
    for name, labels in media.items():
        index(store, name, labels)
    everything = [m for name in media for m in store.moments_of(name)]
    queries = ["red dress", "black hat", "not red", "dress not black", "blue pants without a hat", "striped",
               "long sleeve black jacket", "white t-shirt and blue pants", "happy", "not sad", "happy in red", "",
               "gray", "floral dress", "no dress", "red media3", "red striped dress", "happy in a floral dress",
               "sad in a long sleeve t-shirt", "happy in a red striped dress"]
    for text in queries:
        for kw in ({}, {"min_confidence": 0.6}, {"start": 2.0, "end": 6.0}, {"media_ids": ["media1", "media4"]},
                   {"strict": True}, {"threshold": 0.2}, {"threshold": 0.0}):
            req = SearchRequest(query=PARSER.parse(text), limit=200, **kw)
            assert store_view(store.search(req)) == store_view(rank_moments(everything, req)), (text, kw)


@pytest.mark.parametrize("seed", [3, 4])
def test_random_outfits_page_by_page_as_the_reference(store, seed):
    """Small pages walk the backend's bound lists page after page; pages and totals must agree with the
    reference (a total the backend did not count in full is marked, and is a lower bound)."""
    media = random_outfits(seed, media_count=8)
    for name, labels in media.items():
        index(store, name, labels)
    everything = [m for name in media for m in store.moments_of(name)]
    for text in ["black", "", "red dress", "not red", "without a hat", "happy in red", "white t-shirt and blue pants",
                 "long sleeve black jacket", "gray"]:
        for kw in ({}, {"min_confidence": 0.5}, {"strict": True}, {"start": 2.0, "end": 9.0}, {"threshold": 0.2}):
            reference = rank_moments(everything, SearchRequest(query=PARSER.parse(text), limit=200, **kw))
            pages, cursor = [], None
            while True:
                page = store.search(SearchRequest(query=PARSER.parse(text), limit=3, cursor=cursor, **kw))
                pages += store_view(page)
                if page.total_exact:
                    assert page.total == reference.total, (text, kw)
                else:
                    assert len(page.hits) <= page.total <= reference.total, (text, kw)
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert pages == store_view(reference), (text, kw)


def store_view(page: SearchPage) -> list[tuple[str, float]]:
    return [(h.moment.moment_id, round(h.score, 9)) for h in page.hits]


def test_a_broad_search_reads_about_a_page_not_every_moment(store):
    for m in range(30):
        index(store, f"v{m}", [f for i in range(4) for f in frames(
            f"v{m}", [10.0 * i], black_jacket_blue_jeans(confidence=0.5 + 0.01 * m + 0.001 * i), reason="shot")])
    everything = [moment for m in range(30) for moment in store.moments_of(f"v{m}")]
    assert len(everything) == 120
    for text, exact in (("black", True), ("", True), ("black jacket", True), ("without a hat", False)):
        req = SearchRequest(query=PARSER.parse(text), limit=5)
        found = store.search_counted(req)
        reference = rank_moments(everything, req)
        assert store_view(found.page) == store_view(reference), text
        assert found.read <= 12 * len(driver_keys(req.query, req.threshold)), (text, found.read)  # a first batch
        if found.page.total_exact:
            assert found.page.total == reference.total, text
        else:
            assert len(found.page.hits) <= found.page.total <= reference.total, text
        # the embedded store counts from its index when the bound is the score (Elasticsearch cannot tell
        # an older run's leftovers apart in a count, so it does not)
        assert found.page.total_exact is (exact and isinstance(store, EmbeddedStore)), text
    # the same outfit everywhere is the worst case of a three-term query (scores are the bounds x 0.7):
    # the lists are read further, never past their end
    req = SearchRequest(query=PARSER.parse("black long-sleeve jacket"), limit=5)
    found = store.search_counted(req)
    assert store_view(found.page) == store_view(rank_moments(everything, req)) and found.read <= 2 * 120
    # a threshold under what the embedded store's lists keep reads every candidate there; the cluster
    # ranks whatever the threshold
    req = SearchRequest(query=PARSER.parse("black"), threshold=0.0)
    found = store.search_counted(req)
    assert store_view(found.page) == store_view(rank_moments(everything, req))
    assert found.read == (120 if isinstance(store, EmbeddedStore) else req.limit + 2)


# --- pages --------------------------------------------------------------------------------------


def test_pagination_over_tied_scores_returns_each_moment_once(store):
    # 50 identical shots over two media: every moment scores the same
    for media, count in (("left", 25), ("right", 25)):
        index(store, media, frames(media, [float(i) for i in range(count)], red_striped_dress(), reason="shot"))
    seen, cursor = [], None
    for _ in range(10):
        page = search(store, "red dress", limit=6, cursor=cursor)
        assert page.total == 50 and len(page.hits) <= 6
        seen += [h.moment.moment_id for h in page.hits]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == 50 and len(set(seen)) == 50
    assert seen == [h.moment.moment_id for h in search(store, "red dress", limit=200).hits]
    assert len({h.score for h in search(store, "red dress", limit=200).hits}) == 1
    with pytest.raises(InvalidCursor):
        search(store, "blue dress", cursor=search(store, "red dress", limit=6).next_cursor)


# --- runs and moments ---------------------------------------------------------------------------


def test_moments_are_read_back(scene):
    moments = scene.moments_of("catwalk")
    assert [(m.start, m.end) for m in moments] == [(0.0, 4.0), (6.0, 13.0)]
    assert scene.moment(moments[1].moment_id) == moments[1]
    assert scene.moment("no-such-moment") is None
    assert scene.moments_of("no-such-media") == []


def test_moments_are_invisible_until_the_run_finishes(store):
    store.begin_run(MediaRecord(media_id="m", path="/videos/m.mp4", kind="video", status=MediaStatus.PENDING,
                                run_id="run-1"))
    store.write_frames("run-1", frames("m", [0.0, 1.0], red_striped_dress()))
    assert search(store, "red dress").total == 0 and store.moments_of("m") == []
    store.finish_run("m", "run-1", 2, 2, 2, 0.1)
    assert spans(search(store, "red dress")) == [("m", 0.0, 1.0)]


def test_a_failed_rerun_keeps_the_old_moments(scene):
    before = scene.moments_of("catwalk")
    scene.begin_run(MediaRecord(media_id="catwalk", path="/videos/catwalk.mp4", kind="video",
                                status=MediaStatus.PENDING, run_id="run-2"))
    scene.write_frames("run-2", frames("catwalk", [0.0, 1.0], red_shirt_blue_jacket()))
    assert scene.moments_of("catwalk") == before  # pending: the old moments still answer
    scene.fail_run("catwalk", "run-2", "decoder crashed")
    assert scene.moments_of("catwalk") == before
    assert spans(search(scene, "red dress")) == [("catwalk", 0.0, 4.0)]
    assert search(scene, "red shirt", media_ids=["catwalk"]).total == 0


def test_refinishing_replaces_the_moments(scene):
    old = {m.moment_id for m in scene.moments_of("catwalk")}
    index(scene, "catwalk", frames("catwalk", [20.0, 21.0], red_shirt_blue_jacket()), run_id="run-2")
    [moment] = scene.moments_of("catwalk")
    assert (moment.start, moment.end) == (20.0, 21.0) and moment.moment_id not in old
    assert search(scene, "red dress").total == 0
    assert spans(search(scene, "red shirt")) == [("catwalk", 20.0, 21.0), ("street", 0.0, 3.0)]
    assert all(scene.moment(moment_id) is None for moment_id in old)
    # the same frames again: the same moment ids, not duplicates
    index(scene, "catwalk", frames("catwalk", [20.0, 21.0], red_shirt_blue_jacket()), run_id="run-3")
    assert [m.moment_id for m in scene.moments_of("catwalk")] == [moment.moment_id]


def test_new_content_at_the_same_path_drops_the_old_moments(store):
    index(store, "old", frames("old", [0.0], red_striped_dress()), path="/videos/clip.mp4")
    index(store, "new", frames("new", [0.0], black_jacket_blue_jeans()), path="/videos/clip.mp4")
    assert spans(search(store, "")) == [("new", 0.0, 0.0)]
    assert store.moments_of("old") == []


# --- the embedded store only ---------------------------------------------------------------------


def test_garbled_cursor_is_refused(store):
    index(store, "catwalk", catwalk())
    with pytest.raises(InvalidCursor):
        search(store, "dress", cursor="garbage!")

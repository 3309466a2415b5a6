"""What only the embedded SQLite store has: its tables, databases from older versions, writers in
several processes, and a finish that fails inside its transaction. The behaviour both backends share
is tested in test_store_runs.py and test_store_search.py."""

from __future__ import annotations

import multiprocessing
import sqlite3
from contextlib import contextmanager
from pathlib import Path

import pytest

from indexer.embedded import EmbeddedStore
from indexer.moments import build_moments
from indexer.search import (
    BOUNDS_VERSION,
    SearchRequest,
    moment_bounds,
    rank_moments,
    scoring_view,
    term_probabilities,
)
from indexer.store import MediaRecord, MediaStatus
from tests.indexer.test_search import (
    frames,
    garment,
    person,
    red_shirt_blue_jacket,
    red_striped_dress,
)
from tests.indexer.test_store_runs import labels, record
from tests.indexer.test_store_search import PARSER, catwalk, index, search, spans, store_view


def _writer(data_dir: str, media_id: str, batches: int, per_batch: int, barrier) -> None:
    store = EmbeddedStore(data_dir)
    try:
        store.begin_run(record(media_id, f"run-{media_id}"))
        barrier.wait()
        for b in range(batches):
            times = [(b * per_batch + i) / 10 for i in range(per_batch)]
            store.write_frames(f"run-{media_id}", labels(media_id, times))
        store.finish_run(media_id, f"run-{media_id}", batches * per_batch, 0, 0, 0.1)
    finally:
        store.close()


def test_concurrent_writers_in_two_processes_lose_no_rows(tmp_path):
    data_dir = str(tmp_path / "data")
    EmbeddedStore(data_dir).close()
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    batches, per_batch = 150, 20
    workers = [
        context.Process(target=_writer, args=(data_dir, media_id, batches, per_batch, barrier))
        for media_id in ("left", "right")
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    store = EmbeddedStore(data_dir)
    try:
        for media_id in ("left", "right"):
            frames = store.frames_of(media_id)
            assert len(frames) == batches * per_batch
            assert len({f.frame_id for f in frames}) == batches * per_batch
            assert store.get_media(media_id).status == MediaStatus.DONE
    finally:
        store.close()


def test_store_file_lives_in_data_dir(tmp_path):
    s = EmbeddedStore(tmp_path / "new" / "dir")
    s.close()
    assert Path(s.path) == tmp_path / "new" / "dir" / "vestis.sqlite3" and s.path.exists()


def _count(store: EmbeddedStore, table: str) -> int:
    with sqlite3.connect(store.path) as db:
        return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_an_error_while_finishing_leaves_frames_and_moments_as_they_were(embedded, monkeypatch):
    index(embedded, "catwalk", catwalk())
    before = embedded.moments_of("catwalk")
    embedded.begin_run(MediaRecord(media_id="catwalk", path="/videos/catwalk.mp4", kind="video",
                                   status=MediaStatus.PENDING, run_id="run-2"))
    embedded.write_frames("run-2", frames("catwalk", [0.0, 1.0], red_shirt_blue_jacket()))

    def crash(*args, **kwargs):  # dies after the frames were switched, inside the transaction
        raise OSError("disk full")

    monkeypatch.setattr(EmbeddedStore, "_replace_moments", crash)
    with pytest.raises(OSError):
        embedded.finish_run("catwalk", "run-2", 2, 2, 4, 0.1)
    monkeypatch.undo()
    assert embedded.get_media("catwalk").visible_run_id == "run-1"
    assert [f.timestamp for f in embedded.frames_of("catwalk")][:2] == [0.0, 1.0]
    assert len(embedded.frames_of("catwalk")) == 14
    assert embedded.moments_of("catwalk") == before
    # and the run can still be finished
    embedded.finish_run("catwalk", "run-2", 2, 2, 4, 0.1)
    assert [(m.start, m.end) for m in embedded.moments_of("catwalk")] == [(0.0, 1.0)]


def test_tables_hold_one_row_per_moment_and_its_bounds(embedded):
    index(embedded, "catwalk", catwalk())
    assert _count(embedded, "moments") == 2
    with sqlite3.connect(embedded.path) as db:
        rows = db.execute("SELECT moment_id, term, score FROM moment_terms").fetchall()
    for moment in embedded.moments_of("catwalk"):
        stored = {term: score for moment_id, term, score in rows if moment_id == moment.moment_id}
        assert stored == moment_bounds(scoring_view(moment)) and stored  # what search walks
    dress = next(m for m in embedded.moments_of("catwalk") if m.persons[0].garments[0].category.value == "dress")
    neighbours = ["orange", "purple", "pink", "brown"]  # of red: the colour namer's flips (colour_names)
    assert {term for moment_id, term, _ in rows if moment_id == dress.moment_id} == {
        "salience", "salience_least", "category_dress", "color_red", "pattern_striped", "sleeve_short",
        "category_dress__color_red", "category_dress__pattern_striped", "category_dress__sleeve_short",
        *(f"color_{n}" for n in neighbours), *(f"category_dress__color_{n}" for n in neighbours),
        # the triples of its category, colours and pattern (no expression: no pairs with one)
        *(f"category_dress__color_{n}__pattern_striped" for n in ["red", *neighbours])}
    # the tight bounds' table: per person and garment, P of every term its labels make possible
    with sqlite3.connect(embedded.path) as db:
        probabilities = db.execute("SELECT person, garment, term, p FROM term_probabilities WHERE moment_id = ?",
                                   (dress.moment_id,)).fetchall()
    [person] = term_probabilities(scoring_view(dress))
    assert sorted(probabilities) == sorted(
        [(0, -1, "salience", person.salience)] + [(0, -1, k, p) for k, (p, _) in person.expression.items()]
        + [(0, g, k, p) for g, garment in enumerate(person.garments) for k, (p, _) in garment.terms.items()])
    assert {term for _, garment, term, _ in probabilities if garment == 0} == {
        "category_dress", "color_red", "pattern_striped", "sleeve_short", *(f"color_{n}" for n in neighbours)}


def test_a_database_from_before_moments_gets_them_on_first_read(tmp_path):
    old = EmbeddedStore(tmp_path)
    index(old, "catwalk", catwalk())
    index(old, "empty", frames("empty", [0.0, 1.0]))  # nobody in it: no moments, but built
    old.close()
    with sqlite3.connect(tmp_path / "vestis.sqlite3") as db:  # as an older version left it
        db.executescript("DROP TABLE moments; DROP TABLE moment_terms; DROP TABLE moment_builds;")

    reopened = EmbeddedStore(tmp_path)
    try:
        assert _count(reopened, "moments") == 0
        assert spans(search(reopened, "red dress")) == [("catwalk", 0.0, 4.0)]
        assert _count(reopened, "moments") == 2 and _count(reopened, "moment_builds") == 2
        assert reopened.rebuild_moments(only_missing=True) == 0  # nothing left to build
        assert reopened.rebuild_moments(["catwalk"]) == 1
        assert [(m.start, m.end) for m in reopened.moments_of("catwalk")] == [(0.0, 4.0), (6.0, 13.0)]
    finally:
        reopened.close()


@contextmanager
def _aged_catwalk(tmp_path, sql: str, queries: list[str]):
    """The catwalk store's answers to `queries`, and the store reopened after `sql` turned its file
    into what an older version left."""
    old = EmbeddedStore(tmp_path)
    index(old, "catwalk", catwalk())
    before = [store_view(search(old, text)) for text in queries]
    old.close()
    with sqlite3.connect(tmp_path / "vestis.sqlite3") as db:
        db.executescript(sql)
    reopened = EmbeddedStore(tmp_path)
    try:
        yield reopened, before
    finally:
        reopened.close()


def test_a_database_from_before_the_bound_lists_gets_them_on_first_search(tmp_path):
    older = "DELETE FROM moment_terms; DROP TABLE store_meta;"
    with _aged_catwalk(tmp_path, older, ["red dress"]) as (reopened, before):
        assert _count(reopened, "moment_terms") == 0
        assert [store_view(search(reopened, "red dress"))] == before
        assert _count(reopened, "moment_terms") > 0


def test_a_database_from_before_the_tight_bounds_answers_as_before(tmp_path):
    """A store written before term_probabilities (bounds version 3, no such table) fills it on first search."""
    queries = ["red dress", "red striped dress", "not red", "happy in red", ""]
    older = ("DROP TABLE term_probabilities; DELETE FROM store_meta WHERE key = 'term_probabilities'; "
             "UPDATE store_meta SET value = '3' WHERE key = 'moment_terms';")
    with _aged_catwalk(tmp_path, older, queries) as (reopened, before):
        assert _count(reopened, "term_probabilities") == 0
        assert [store_view(search(reopened, text)) for text in queries] == before
        assert _count(reopened, "term_probabilities") > 0


def test_a_new_store_does_not_fill_its_lists_again_on_first_search(tmp_path, monkeypatch):
    """A store opened with no moments writes every list with this version: its first search after an
    ingest searches them as written, instead of rewriting them from every moment."""
    store = EmbeddedStore(tmp_path)
    index(store, "catwalk", catwalk())
    store.close()
    reopened = EmbeddedStore(tmp_path)
    filled: list[int] = []
    monkeypatch.setattr(reopened, "_write", lambda work: filled.append(1) or EmbeddedStore._write(reopened, work))
    assert store_view(search(reopened, "red dress"))  # found, from the lists as written
    assert filled == [] and reopened._query("SELECT key, value FROM store_meta ORDER BY key") == [
        ("moment_terms", BOUNDS_VERSION), ("term_probabilities", BOUNDS_VERSION)]
    reopened.close()


def test_bounds_of_another_version_are_recomputed_on_open(tmp_path):
    # bounds an older scoring model wrote
    older = "UPDATE moment_terms SET score = score / 100; UPDATE store_meta SET value = 'older';"
    with _aged_catwalk(tmp_path, older, ["red dress"]) as (reopened, before):
        assert [store_view(search(reopened, "red dress"))] == before
        assert reopened._query("SELECT value FROM store_meta WHERE key = 'moment_terms'") == [(BOUNDS_VERSION,)]


def test_moments_with_several_persons_are_narrowed_per_moment(embedded):
    """build_moments makes one person per moment, but a Moment may hold several: SQL sees only the
    moment's garments, so per-person conditions must not drop such a moment that matches."""
    index(embedded, "pair", frames("pair", [0.0, 1.0], red_striped_dress()))
    [single] = embedded.moments_of("pair")
    hatted = person(garment("hat", "black"), garment("coat/jacket", "blue"), expression="angry")
    [other] = build_moments(frames("pair", [0.0], hatted))[0].persons
    pair = single.model_copy(update={"persons": [*single.persons, other]})
    embedded._swap_moments("pair", "run-1", [pair])
    assert embedded.moments_of("pair") == [pair]
    for text in ("without a hat", "red dress", "black hat", "angry", "not angry", "red dress without a hat",
                 "blue jacket", "red jacket", ""):
        req = SearchRequest(query=PARSER.parse(text), limit=200)
        assert store_view(embedded.search(req)) == store_view(rank_moments([pair], req)), text
    hit = search(embedded, "angry").hits[0]
    assert hit.person_index == 1 and search(embedded, "without a hat").hits[0].person_index == 0


def test_moments_without_a_scoring_view_are_ranked_from_the_whole_document(embedded):
    """Databases from before the summary column: search reads the full moment instead, same answers."""
    index(embedded, "catwalk", catwalk())
    before = {text: store_view(search(embedded, text)) for text in ("red dress", "", "not black", "jeans")}
    with sqlite3.connect(embedded.path) as db:
        db.execute("UPDATE moments SET summary = NULL")
    assert {text: store_view(search(embedded, text)) for text in before} == before
    assert search(embedded, "red dress").hits[0].moment.frame_ids  # the page still has the whole moment


def test_a_database_from_before_review_gets_its_queue_columns_on_first_queue(embedded):
    from indexer.review import QueueRequest

    index(embedded, "catwalk", catwalk())
    with sqlite3.connect(embedded.path) as db:
        db.execute("UPDATE frames SET lowest_confidence = NULL, label_values = NULL")
    page = embedded.review_queue(QueueRequest(label="dress"))
    assert page.total == 5 and page.items[0].lowest_confidence == pytest.approx(0.7)
    with sqlite3.connect(embedded.path) as db:
        assert db.execute("SELECT COUNT(*) FROM frames WHERE label_values IS NULL").fetchone()[0] == 0

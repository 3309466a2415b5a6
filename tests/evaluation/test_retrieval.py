"""`vestis eval retrieval`: the metrics on hand-computed cases, queries from hand-made labels, and one
run of the command on eight real photos."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import vestis.cli as cli
from indexer.query_parser import QueryParser
from evaluation.retrieval import (
    CATEGORY_WORDS,
    PATTERN_WORDS,
    SLEEVE_WORDS,
    RetrievalScores,
    average_precision,
    make_queries,
    query_text,
    random_average_precision,
    random_recall_at,
    ranked_photos,
    read_labels,
    recall_at,
    truth,
)
from vision.evaluation.attributes import DATASET_COLORS

# --- metrics ------------------------------------------------------------------------------------


def test_recall_at_k_is_capped_by_the_number_relevant():
    ranking = ["a", "b", "c", "d", "e"]
    relevant = {"b", "e", "z"}  # z is never returned
    assert recall_at(ranking, relevant, 1) == 0.0
    assert recall_at(ranking, relevant, 2) == pytest.approx(1 / 2)  # b of min(2, 3)
    assert recall_at(ranking, relevant, 5) == pytest.approx(2 / 3)
    assert recall_at(ranking, relevant, 10) == pytest.approx(2 / 3)
    assert recall_at(["x", "b"], {"b"}, 1) == 0.0 and recall_at(["x", "b"], {"b"}, 5) == 1.0
    with pytest.raises(ValueError):
        recall_at(ranking, set(), 5)


def test_average_precision_counts_relevant_items_never_returned_as_zero():
    # b at rank 2 (precision 1/2), e at rank 5 (2/5), z missing: (0.5 + 0.4 + 0) / 3
    assert average_precision(["a", "b", "c", "d", "e"], {"b", "e", "z"}) == pytest.approx(0.3)
    assert average_precision(["b", "e", "a"], {"b", "e"}) == 1.0
    assert average_precision(["a", "b"], {"b"}) == pytest.approx(0.5)
    assert average_precision([], {"b"}) == 0.0


@pytest.mark.parametrize("n", range(1, 7))
def test_random_baselines_equal_the_mean_over_all_orders(n):
    items = [str(i) for i in range(n)]
    orders = list(itertools.permutations(items))
    for r in range(1, n + 1):
        relevant = set(items[:r])
        mean_ap = sum(average_precision(o, relevant) for o in orders) / len(orders)
        assert random_average_precision(n, r) == pytest.approx(mean_ap)
        for k in (1, 2, 5):
            mean_recall = sum(recall_at(o, relevant, k) for o in orders) / len(orders)
            assert random_recall_at(n, r, k) == pytest.approx(mean_recall)


def test_random_average_precision_by_hand():
    assert random_average_precision(2, 1) == pytest.approx(0.75)  # rank 1 or rank 2: (1 + 1/2) / 2
    assert random_average_precision(5, 5) == 1.0
    assert random_average_precision(120, 1) == pytest.approx(sum(1 / i for i in range(1, 121)) / 120)
    with pytest.raises(ValueError):
        random_average_precision(3, 0)


# --- queries from labels ------------------------------------------------------------------------


def _row(image: str, category: str = "", sleeve: str = "", pattern: str | None = None, colors: str = "",
         blank: str = "") -> dict[str, str]:
    """A labels.csv row: `colors` are on, `blank` colours unknown, every other colour off."""
    row = {"image": image, "category": category, "sleevelength": sleeve}
    for column in ("pattern_solid", "pattern_floral", "pattern_spot", "pattern_graphics", "pattern_plaid",
                   "pattern_stripe"):
        row[column] = "" if pattern is None else ("1" if column == pattern else "0")
    for color in DATASET_COLORS:
        row[color] = "1" if color in colors.split() else "" if color in blank.split() else "0"
    return row


ROWS = [
    _row("p1.jpg", "shirt", "long sleeves", "pattern_solid", colors="red"),
    _row("p2.jpg", "shirt", "short sleeves", "pattern_stripe", colors="red white"),
    _row("p3.jpg", "outerwear", "long sleeves", "pattern_solid", colors="black"),
    _row("p4.jpg", "", "long sleeves", None, colors="black", blank="red"),  # category and pattern unknown
]
IDS = ["p1", "p2", "p3", "p4"]


def test_truth_reads_the_labels_into_our_vocabulary():
    p1, _, p3, p4 = ROWS
    assert truth(p3, ("category", "coat/jacket")) is True and truth(p1, ("category", "shirt/blouse")) is True
    assert truth(p1, ("category", "coat/jacket")) is False and truth(p4, ("category", "shirt/blouse")) is None
    assert truth(p1, ("sleeve", "long")) is True and truth(p1, ("sleeve", "short")) is False
    assert truth(p1, ("pattern", "solid")) is True and truth(p1, ("pattern", "striped")) is False
    assert truth(p4, ("pattern", "solid")) is None
    assert truth(p4, ("color", "black")) is True and truth(p4, ("color", "white")) is False
    assert truth(p4, ("color", "red")) is None


def test_queries_are_the_label_combinations_present_with_their_relevant_photos():
    queries = {q.text: q for q in make_queries(ROWS, IDS)}
    assert {text for text, q in queries.items() if q.kind == "color+category"} == {
        "red shirt", "white shirt", "black jacket"}  # p4's black has no category: no query of it
    assert {text for text, q in queries.items() if q.kind == "color"} == {
        "someone in red", "someone in white", "someone in black"}
    assert {text for text, q in queries.items() if q.kind == "color+sleeve+category"} == {
        "red long-sleeve shirt", "red short-sleeve shirt", "white short-sleeve shirt", "black long-sleeve jacket"}
    assert {text for text, q in queries.items() if q.kind == "pattern+category"} == {
        "plain shirt", "striped shirt", "plain jacket"}
    assert "plain red shirt" in queries and "red striped shirt" in queries and "shirt" in queries

    red_shirt = queries["red shirt"]
    assert red_shirt.relevant == {"p1", "p2"}
    # p4: category blank and red blank: unjudged; p3 is a jacket: judged, not relevant
    assert red_shirt.judged == {"p1", "p2", "p3"}
    black = queries["someone in black"]
    assert black.relevant == {"p3", "p4"} and black.judged == set(IDS)
    # a term that is known to fail decides even when another is blank
    long_shirt = queries["long-sleeve shirt"]
    assert long_shirt.relevant == {"p1"} and long_shirt.judged == {"p1", "p2", "p3"}
    assert queries["someone in red"].judged == {"p1", "p2", "p3"}


def test_every_query_text_parses_back_to_its_terms():
    parser = QueryParser()
    for category, sleeve, color, pattern in itertools.product(
            CATEGORY_WORDS, [None, *SLEEVE_WORDS], [None, *DATASET_COLORS], [None, *PATTERN_WORDS]):
        terms = [("category", category)] + [(f, v) for f, v in (("sleeve", sleeve), ("color", color),
                                                                  ("pattern", pattern)) if v]
        parsed = parser.parse(query_text(terms))
        assert len(parsed.garments) == 1 and not parsed.text, query_text(terms)
        assert sorted((t.field, t.value) for t in parsed.garments[0].terms) == sorted(terms), query_text(terms)
    for color in DATASET_COLORS:
        [garment] = parser.parse(query_text([("color", color)])).garments
        assert [(t.field, t.value) for t in garment.terms] == [("color", color)]


def test_scores_leave_unjudged_photos_out_of_the_ranking_and_average_per_kind():
    queries = {q.text: q for q in make_queries(ROWS, IDS)}
    scores = RetrievalScores()
    # p4 is unjudged for "red shirt": ranked first, it must not cost anything
    scores.add(queries["red shirt"], ["p4", "p2", "p3", "p1"])  # relevant at ranks 1 and 3 of p2, p3, p1
    scores.add(queries["white shirt"], [])
    scores.add(queries["black jacket"], ["p3"])
    report = scores.report()
    first = report["queries"][0]
    assert first["returned"] == 3 and first["recall@1"] == 1.0 and first["ap"] == pytest.approx((1 + 2 / 3) / 2)
    assert first["random_ap"] == pytest.approx(random_average_precision(3, 2))
    kind = report["kinds"]["color+category"]
    assert kind["queries"] == 3 and kind["nothing_returned"] == 1 and kind["no_relevant_returned"] == 1
    assert kind["map"] == pytest.approx(((1 + 2 / 3) / 2 + 0 + 1) / 3)
    assert kind["recall@1"] == pytest.approx(2 / 3)
    assert report["overall"]["map"] == pytest.approx(kind["map"])


# --- the command on real photos -----------------------------------------------------------------

runner = CliRunner()


@pytest.mark.usefixtures("plain_cli")
def test_eval_retrieval_on_eight_photos(shared_data: Path, tmp_path: Path):
    from indexer.embedded import EmbeddedStore

    source = shared_data / "attributes-dev"
    out, data = tmp_path / "retrieval.json", tmp_path / "store"
    result = runner.invoke(cli.app, ["eval", "retrieval", "--images", str(source / "images"), "--labels",
                                     str(source / "labels.csv"), "--limit", "8", "--out", str(out),
                                     "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    rows = read_labels(source / "labels.csv")[:8]
    ids = [Path(r["image"]).stem for r in rows]
    expected = make_queries(rows, ids)
    assert report["images"] == 8 and 0 <= report["no_person"] <= 8 and "garments@" in report["stages"]
    assert [q["query"] for q in report["queries"]] == [q.text for q in expected]
    assert sum(k["queries"] for k in report["kinds"].values()) == report["overall"]["queries"] == len(expected)
    for q in report["queries"]:
        assert 0 <= q["returned"] <= q["judged"] <= 8 and 1 <= q["relevant"] <= q["judged"]
        assert all(0.0 <= q[m] <= 1.0 for m in ("recall@1", "recall@5", "recall@10", "ap"))
    # the kept store answers as the report says: rescore one query from a fresh search
    store = EmbeddedStore(data)
    try:
        assert len(store.list_media()) == 8
        query = next(q for q in expected if q.kind == "category")
        ranking = [p for p in ranked_photos(store, QueryParser(), query.text, ids) if p in query.judged]
    finally:
        store.close()
    reported = next(q for q in report["queries"] if q["query"] == query.text)
    assert reported["ap"] == pytest.approx(average_precision(ranking, query.relevant))
    assert "MAP" in result.output and "color+sleeve+category" in result.output and "no person found" in result.output
    assert "all, strict" in result.output and report["strict"]["overall"]["queries"] == len(expected)
    assert report["reused"] == 0
    # --reuse: the kept labels are ranked again, nothing labelled again, the same figures
    again = tmp_path / "again.json"
    result = runner.invoke(cli.app, ["eval", "retrieval", "--images", str(source / "images"), "--labels",
                                     str(source / "labels.csv"), "--limit", "8", "--out", str(again),
                                     "--data-dir", str(data), "--reuse"])
    assert result.exit_code == 0, result.output
    second = json.loads(again.read_text())
    assert second["reused"] == 8 and second["overall"] == report["overall"] and second["strict"] == report["strict"]
    refused = runner.invoke(cli.app, ["eval", "retrieval", "--images", str(source / "images"), "--labels",
                                      str(source / "labels.csv"), "--reuse"])
    assert refused.exit_code == 2 and "--reuse needs --data-dir" in refused.output

"""The backend-neutral ranking function and pagination, on moments built from hand-made frame labels.

The helpers at the top (label, garment, person, frames) are also what tests.indexer.test_store_search.py
indexes, so both files speak of the same outfits.
"""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from indexer.moments import Moment, MomentGarment, MomentPerson, build_moments
from indexer.query import AttributeTerm, GarmentConstraint, ParsedQuery
from indexer.search import (
    COLOR_LEAK,
    PROMINENT_SHARE,
    InvalidCursor,
    SearchPage,
    SearchRequest,
    bound_is_score,
    driver_keys,
    match_moment,
    moment_bounds,
    query_notice,
    rank_documents,
    rank_moments,
    salience,
    score_document,
    scoring_view,
    sort_key,
    term_probabilities,
    tight_bound,
    tight_query,
    usable,
)
from indexer.query_parser import QueryParser
from labels import Box, Face, FrameLabels, Garment, Label, Person, RuleSet

PARSER = QueryParser()  # exact words and synonyms; no text model needed


# --- labels, frames and moments by hand ------------------------------------------------------------


def label(value: str, confidence: float = 0.9) -> Label:
    return Label(value=value, confidence=confidence, model="test", model_version="1")


def garment(category: str, color: str | None = None, *, secondary: str | None = None, pattern: str | None = None,
            sleeve: str | None = None, confidence: float = 0.9, color_confidence: float = 0.8,
            box: tuple[float, float, float, float] = (0, 0, 10, 10)) -> Garment:
    return Garment(
        category=label(category, confidence), box=Box(x1=box[0], y1=box[1], x2=box[2], y2=box[3]),
        color=label(color, color_confidence) if color else None,
        secondary_color=label(secondary, 0.6) if secondary else None,
        pattern=label(pattern, 0.7) if pattern else None,
        sleeve=label(sleeve, 0.7) if sleeve else None,
    )


def person(*garments: Garment, x: float = 500, confidence: float = 0.9, expression: str | None = None,
           expression_confidence: float = 0.8) -> Person:
    face = None
    if expression:
        face = Face(detection=label("face"), box=Box(x1=x + 30, y1=100, x2=x + 70, y2=140),
                    expression=label(expression, expression_confidence))
    return Person(detection=label("person", confidence), box=Box(x1=x, y1=100, x2=x + 100, y2=400),
                  garments=list(garments), face=face)


def frame_id(media_id: str, t: float) -> str:
    return f"{media_id}-{round(t * 1000):09d}"


def frames(media_id: str, times, *persons: Person, reason: str = "rate") -> list[FrameLabels]:
    """The same persons in every frame at these times."""
    return [
        FrameLabels(frame_id=frame_id(media_id, t), media_id=media_id, timestamp=t, reason=reason, width=1280,
                    height=720, persons=list(persons))
        for t in times
    ]


def red_striped_dress(**kw) -> Person:
    return person(garment("dress", "red", pattern="striped", sleeve="short"), **kw)


def black_jacket_blue_jeans(**kw) -> Person:
    return person(garment("coat/jacket", "black", sleeve="long"), garment("pants/jeans", "blue"), **kw)


def red_shirt_blue_jacket(**kw) -> Person:
    return person(garment("shirt/blouse", "red", sleeve="long"), garment("coat/jacket", "blue", sleeve="long"), **kw)


def moment_of(*persons: Person, media_id: str = "vid", times=(0.0, 1.0, 2.0)) -> Moment:
    [moment] = build_moments(frames(media_id, times, *persons))
    return moment


def request(text: str = "", **kw) -> SearchRequest:
    return SearchRequest(query=PARSER.parse(text), **kw)


def match(moment: Moment, text: str, **kw):
    return match_moment(moment, request(text, **kw))


def salience_of(moment: Moment, index: int = 0) -> float:
    return salience(moment.persons[index].model_dump())


def summary(moment: Moment, index: int = 0) -> MomentGarment:
    return moment.persons[0].garments[index]


def guessed(value: str, confidence: float, *alternatives: tuple[str, float]) -> Label:
    """A label with the model's alternatives (its own value first), as the garment stage writes them."""
    return Label.made_by(RuleSet("test", "1"), value, confidence, [(value, confidence), *alternatives])


# --- one garment, one constraint -----------------------------------------------------------------


def test_all_terms_of_a_constraint_hold_on_one_garment():
    dress = moment_of(red_striped_dress())
    hit = match(dress, "red striped dress")
    assert hit is not None and hit.moment is dress
    [g] = hit.matched
    assert (g.constraint, g.category, g.box) == (0, "dress", dress.persons[0].garments[0].box)
    assert [(t.term.field, t.label) for t in g.terms] == [("color", "red"), ("pattern", "striped"),
                                                          ("category", "dress")]
    s = summary(dress)
    probability = s.color.confidence * s.pattern.confidence * s.category.confidence
    assert g.score == pytest.approx(probability)  # the probability that all three hold on it
    assert hit.score == pytest.approx(probability * salience_of(dress))
    assert match(dress, "red striped dress", strict=True).score == pytest.approx(hit.score)  # no alternatives
    assert match(dress, "blue dress") is None  # no label considered blue: probability 0
    assert match(dress, "red plaid dress") is None
    assert match(dress, "red skirt") is None


def test_terms_split_over_two_garments_do_not_match():
    street = moment_of(red_shirt_blue_jacket())
    assert match(street, "red jacket") is None
    assert match(street, "blue shirt") is None
    assert match(street, "red shirt") is not None and match(street, "blue jacket") is not None
    # two constraints, each on its own garment, do match
    hit = match(street, "red shirt and blue jacket")
    assert [g.category for g in hit.matched] == ["shirt/blouse", "coat/jacket"]
    assert hit.score == pytest.approx(hit.matched[0].score * hit.matched[1].score * salience_of(street))


def test_colour_matches_the_primary_or_the_secondary_colour():
    striped = moment_of(person(garment("shirt/blouse", "white", secondary="red", pattern="striped")))
    hit = match(striped, "red shirt")
    assert hit is not None
    [colour, _] = hit.matched[0].terms
    assert (colour.label, colour.confidence) == ("red", pytest.approx(0.6))  # the secondary's confidence
    assert match(striped, "white shirt").score > hit.score  # the primary colour is surer here
    assert match(striped, "blue shirt") is None


def test_the_alternatives_make_a_second_guess_match_with_its_probability():
    shirt = Garment(category=guessed("shirt/blouse", 0.55, ("t-shirt", 0.35), ("sweater", 0.1)),
                    box=Box(x1=0, y1=0, x2=10, y2=10),
                    color=guessed("white", 0.6, ("blue", 0.3)), pattern=guessed("solid", 0.8, ("striped", 0.15)))
    moment = moment_of(person(shirt))
    hit = match(moment, "blue t-shirt")
    assert [(t.term.value, t.label, t.confidence) for t in hit.matched[0].terms] == [
        ("blue", "white", pytest.approx(0.3)), ("t-shirt", "shirt/blouse", pytest.approx(0.35))]
    assert hit.score == pytest.approx(0.3 * 0.35 * salience_of(moment))
    assert match(moment, "blue t-shirt", strict=True) is None  # strict: the top label only
    assert match(moment, "white shirt", strict=True).score == pytest.approx(match(moment, "white shirt").score)
    # the right top label still ranks first
    assert match(moment, "white shirt").score > match(moment, "blue shirt").score > hit.score
    # the threshold leaves out the unlikely
    assert match(moment, "striped t-shirt", threshold=0.05) is None  # 0.15 x 0.35 x salience 0.81
    assert match(moment, "striped t-shirt", threshold=0.04) is not None
    assert match(moment, "red shirt") is None  # never considered


def test_a_colour_name_takes_a_part_of_its_neighbours_shares():
    # the namer flips between neighbouring names (gray and white): a gray garment may be called white
    coat = Garment(category=label("coat/jacket"), box=Box(x1=0, y1=0, x2=10, y2=10),
                   color=guessed("gray", 0.7, ("red", 0.2)))
    moment = moment_of(person(coat))
    [white, _] = match(moment, "white jacket").matched[0].terms
    assert white.confidence == pytest.approx(COLOR_LEAK * 0.7)
    assert match(moment, "white jacket", strict=True) is None
    assert match(moment, "green jacket") is None  # far from gray and red
    [_, not_white] = match(moment, "jacket not white").matched[0].terms
    assert not_white.confidence == pytest.approx(1 - COLOR_LEAK * 0.7)


def test_a_moment_averages_its_frames_alternatives():
    def shirt(value: str, confidence: float, *alternatives: tuple[str, float]) -> Person:
        return person(Garment(category=guessed(value, confidence, *alternatives), box=Box(x1=0, y1=0, x2=10, y2=10)))

    # three frames call it a shirt, with t-shirt as the second guess at 0.3, 0.4 and 0 (not considered)
    labels = [*frames("vid", (0.0,), shirt("shirt/blouse", 0.6, ("t-shirt", 0.3))),
              *frames("vid", (1.0,), shirt("shirt/blouse", 0.5, ("t-shirt", 0.4))),
              *frames("vid", (2.0,), shirt("shirt/blouse", 0.9, ("sweater", 0.05)))]
    [moment] = build_moments(labels)
    category = moment.persons[0].garments[0].category
    alternatives = {a.value: a.probability for a in category.alternatives}
    assert alternatives == {"shirt/blouse": pytest.approx(2.0 / 3), "t-shirt": pytest.approx(0.7 / 3),
                            "sweater": pytest.approx(0.05 / 3)}
    assert [a.value for a in category.alternatives] == ["shirt/blouse", "t-shirt", "sweater"]  # best first
    assert match(moment, "t-shirt").matched[0].terms[0].confidence == pytest.approx(0.7 / 3)


def test_the_best_garment_answers_a_constraint():
    sure, unsure = garment("shoes", "black", confidence=0.95), garment("shoes", "black", confidence=0.3)
    m = Moment(moment_id="m", media_id="vid", start=0, end=0, best_frame_id="f", best_timestamp=0, frame_ids=["f"],
               persons=[MomentPerson(track_index=0, detection=label("person"), box=Box(x1=0, y1=0, x2=1, y2=1),
                                     frame_ids=["f"], person_indices=[0],
                                     garments=[_summary(unsure), _summary(sure)])])
    hit = match(m, "black shoes")
    assert hit.matched[0].terms[1].confidence == pytest.approx(0.95)


def _summary(g: Garment) -> MomentGarment:
    return MomentGarment(category=g.category, frames=1, box=g.box, color=g.color, secondary_color=g.secondary_color,
                         pattern=g.pattern, sleeve=g.sleeve)


def test_one_garment_may_answer_two_constraints():
    # as a nested query per constraint does in Elasticsearch
    hit = match(moment_of(red_striped_dress()), "red dress and striped dress")
    assert [g.category for g in hit.matched] == ["dress", "dress"]


# --- the salient person -----------------------------------------------------------------------------


def test_the_salient_person_outranks_a_passer_by_in_the_same_clothes():
    big = person(garment("dress", "red"), x=100)
    big.box = Box(x1=100, y1=0, x2=600, y2=720)
    small = person(garment("dress", "red"), x=900)
    small.box = Box(x1=900, y1=300, x2=940, y2=400)
    [subject, passer_by] = sorted(build_moments(frames("vid", (0.0,), big, small)), key=lambda m: m.persons[0].box.x1)
    assert subject.persons[0].frame_share == pytest.approx(500 * 720 / (1280 * 720))
    assert salience_of(subject) == pytest.approx(0.9)  # large: the detection confidence alone
    share = 40 * 100 / (1280 * 720)
    assert salience_of(passer_by) == pytest.approx(0.9 * (0.5 + 0.5 * math.sqrt(share / PROMINENT_SHARE)))
    page = rank_moments([passer_by, subject], request("red dress"))
    assert [h.moment for h in page.hits] == [subject, passer_by]
    # a sure detection counts too
    unsure = moment_of(person(garment("dress", "red"), confidence=0.5))
    assert match(unsure, "red dress").score < match(moment_of(person(garment("dress", "red"))), "red dress").score


# --- negation -----------------------------------------------------------------------------------


def test_negated_term_needs_a_known_other_value():
    black = moment_of(black_jacket_blue_jeans())
    assert match(black, "jacket not black", strict=True) is None
    # with probabilities, a black label at 0.8 leaves 0.2 for "not black"
    [_, not_black] = match(black, "jacket not black").matched[0].terms
    assert (not_black.term.field, not_black.confidence) == ("color", pytest.approx(0.2))
    hit = match(black, "not black")  # the jeans are surely not black
    assert hit.matched[0].category == "pants/jeans" and hit.matched[0].terms[0].label == "blue"
    red = moment_of(person(garment("coat/jacket", "red")))
    [colour] = [t for t in match(red, "jacket not black").matched[0].terms if t.term.field == "color"]
    assert (colour.term.negated, colour.label, colour.confidence) == (True, "red", 1.0)
    unknown = moment_of(person(garment("coat/jacket")))
    assert match(unknown, "jacket not black") is None  # an unlabelled colour is neither black nor not black
    secondary = moment_of(person(garment("coat/jacket", "white", secondary="black")))
    assert match(secondary, "jacket not black", strict=True) is None  # the negation of "black as either colour"
    # with probabilities: not black unless the secondary black (0.6) holds
    [category, _] = [t.confidence for t in match(secondary, "jacket not black").matched[0].terms]
    assert match(secondary, "jacket not black").matched[0].score == pytest.approx(0.4 * category)


def test_negated_constraint_weighs_the_chance_the_garment_is_there():
    hatted = moment_of(person(garment("hat", "black"), garment("dress", "red")))
    bare = moment_of(person(garment("dress", "red")))
    assert match(hatted, "without a hat", strict=True) is None
    hit = match(hatted, "without a hat")
    assert hit.matched == [] and hit.score == pytest.approx((1 - 0.9) * salience_of(hatted))  # P(hat) = 0.9
    assert match(bare, "without a hat").score == pytest.approx(salience_of(bare))
    assert match(bare, "red dress without a hat").score == pytest.approx(match(bare, "red dress").score)
    assert match(hatted, "red dress without a hat").score < match(bare, "red dress without a hat").score
    # "no red hat": a black hat does not block it
    assert match(hatted, "no red hat", strict=True) is not None


def test_expression_terms_hold_on_the_person():
    smiling = moment_of(person(garment("skirt", "blue", pattern="floral"), expression="happy"))
    sad = moment_of(person(garment("skirt", "blue", pattern="floral"), expression="sad"))
    hit = match(smiling, "smiling in a floral skirt")
    assert hit is not None and [(t.term.value, t.label) for t in hit.expression_matched] == [("happy", "happy")]
    skirt = smiling.persons[0].garments[0]
    expected = skirt.pattern.confidence * skirt.category.confidence * smiling.persons[0].expression.confidence
    assert hit.score == pytest.approx(expected * salience_of(smiling))
    assert match(sad, "smiling in a floral skirt") is None
    assert match(moment_of(person(garment("skirt"))), "smiling") is None  # no face, no expression


# --- confidence, similarity, words it does not know -----------------------------------------------


def test_min_confidence_treats_less_sure_labels_as_absent():
    dress = moment_of(person(garment("dress", "red", confidence=0.9, color_confidence=0.5)))
    assert match(dress, "red dress", min_confidence=0.5) is not None
    assert match(dress, "red dress", min_confidence=0.6) is None
    assert match(dress, "dress", min_confidence=0.6) is not None
    # a garment less sure than the floor is not there: it neither matches nor blocks
    hat = moment_of(person(garment("hat", "black", confidence=0.4), garment("dress", "red")))
    assert match(hat, "black", min_confidence=0.5) is None
    assert match(hat, "without a hat", min_confidence=0.5).score == pytest.approx(salience_of(hat))
    assert match(hat, "without a hat").score == pytest.approx((1 - 0.4) * salience_of(hat))
    # a person detected less surely than the floor is not there
    faint = moment_of(person(garment("dress"), confidence=0.4))
    assert match(faint, "", min_confidence=0.5) is None and match(faint, "", min_confidence=0.4) is not None
    assert match(faint, "dress", min_confidence=0.5) is None


def test_terms_mapped_by_meaning_weigh_their_similarity():
    dress = moment_of(red_striped_dress())
    typed = ParsedQuery(garments=[GarmentConstraint(terms=[
        AttributeTerm(field="color", value="red", source="red"),
        AttributeTerm(field="category", value="dress", source="dress")])])
    guess = ParsedQuery(garments=[GarmentConstraint(terms=[
        AttributeTerm(field="color", value="red", source="red"),
        AttributeTerm(field="category", value="dress", source="frock", via="semantic", similarity=0.7)])])
    exact = match_moment(dress, SearchRequest(query=typed)).score
    assert match_moment(dress, SearchRequest(query=guess)).score == pytest.approx(0.7 * exact)


def test_words_it_does_not_label_are_reported_and_not_searched():
    dress = moment_of(red_striped_dress())
    assert match(dress, "red dress dancing").score == pytest.approx(match(dress, "red dress").score)
    assert query_notice(PARSER.parse("red dress dancing")) == (
        "'dancing' is not something Vestis labels; searched for the rest.")
    assert query_notice(PARSER.parse("red dress")) is None and query_notice(PARSER.parse("")) is None


@pytest.mark.parametrize("text", ["zzzz qqqq", "someone with sunglasses", "man", "the woman"])
def test_a_query_with_nothing_usable_returns_nothing_and_says_why(text):
    dress = moment_of(red_striped_dress())
    parsed = PARSER.parse(text)
    assert not usable(parsed) and match(dress, text) is None
    assert rank_moments([dress], request(text)) == SearchPage(hits=[], total=0)
    notice = query_notice(parsed)
    assert notice.startswith(", ".join(f"'{w}'" for w in parsed.text)) and "no moments" in notice
    assert parsed.in_words().startswith("nothing")


def test_empty_query_matches_every_moment_by_salience():
    sure, unsure = moment_of(red_striped_dress(confidence=0.95)), moment_of(red_striped_dress(confidence=0.6))
    page = rank_moments([unsure, sure], request(""))
    assert [h.score for h in page.hits] == pytest.approx([salience_of(sure), salience_of(unsure)])
    assert page.total == 2 and page.next_cursor is None


def test_several_persons_the_best_one_is_reported():
    people = [
        MomentPerson(track_index=i, detection=label("person"), box=Box(x1=0, y1=0, x2=1, y2=1), frame_ids=["f"],
                     person_indices=[i], garments=[_summary(garment("dress", "red", color_confidence=c))])
        for i, c in enumerate((0.5, 0.9))
    ]
    m = Moment(moment_id="m", media_id="vid", start=0, end=0, best_frame_id="f", best_timestamp=0, frame_ids=["f"],
               persons=[people[0], *people[1:]])
    hit = match(m, "red dress")
    assert hit.person_index == 1 and hit.score == pytest.approx(0.9 * 0.9 * 0.9)  # no frame share: salience 0.9


# --- filters ------------------------------------------------------------------------------------


def test_media_and_time_range_filters():
    dress = moment_of(red_striped_dress(), media_id="a", times=(10.0, 11.0, 12.0))
    assert match(dress, "dress", media_ids=["a", "b"]) is not None
    assert match(dress, "dress", media_ids=["b"]) is None
    assert match(dress, "dress", start=12.0) is not None  # overlap, bounds included
    assert match(dress, "dress", end=10.0) is not None
    assert match(dress, "dress", start=5.0, end=11.0) is not None
    assert match(dress, "dress", start=12.5) is None
    assert match(dress, "dress", end=9.9) is None


def test_request_is_validated():
    with pytest.raises(ValidationError):
        request("dress", start=5.0, end=4.0)
    for bad in ({"limit": 0}, {"limit": 201}, {"min_confidence": 1.5}, {"start": -1.0},
                {"threshold": -0.1}, {"threshold": 1.1}):
        with pytest.raises(ValidationError):
            request("dress", **bad)


# --- order and pages ----------------------------------------------------------------------------


def _tied_moments(n: int) -> list[Moment]:
    """n identical outfits in three media: every score ties."""
    moments = []
    for i in range(n):
        media = f"media-{i % 3}"
        moments.append(moment_of(red_striped_dress(), media_id=media, times=(float(i), float(i) + 0.5)))
    return moments


def test_pages_never_repeat_or_skip_when_scores_tie():
    moments = _tied_moments(50)
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        page = rank_moments(reversed(moments), request("red dress", limit=7, cursor=cursor))
        assert page.total == 50
        seen += [h.moment.moment_id for h in page.hits]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == 50 and set(seen) == {m.moment_id for m in moments}
    everything = rank_moments(moments, request("red dress", limit=200))
    assert seen == [h.moment.moment_id for h in everything.hits]
    assert [sort_key(h) for h in everything.hits] == sorted(sort_key(h) for h in everything.hits)
    assert [h.moment.media_id for h in everything.hits[:3]] == ["media-0"] * 3  # ties: by media, then start


def test_order_is_score_then_media_then_start():
    low = moment_of(person(garment("dress", "red", color_confidence=0.5)), media_id="a")
    high = moment_of(person(garment("dress", "red", color_confidence=0.9)), media_id="b")
    page = rank_moments([low, high], request("red dress", limit=1))
    assert [h.moment.media_id for h in page.hits] == ["b"] and page.total == 2
    rest = rank_moments([low, high], request("red dress", limit=1, cursor=page.next_cursor))
    assert [h.moment.media_id for h in rest.hits] == ["a"] and rest.next_cursor is None


def test_a_cursor_is_bound_to_its_search():
    moments = _tied_moments(5)
    cursor = rank_moments(moments, request("red dress", limit=2)).next_cursor
    assert cursor
    # another page size is the same search
    assert rank_moments(moments, request("red dress", limit=3, cursor=cursor)).total == 5
    with pytest.raises(InvalidCursor, match="another search"):
        rank_moments(moments, request("blue dress", limit=2, cursor=cursor))
    with pytest.raises(InvalidCursor, match="another search"):
        rank_moments(moments, request("red dress", limit=2, cursor=cursor, media_ids=["media-0"]))
    for garbled in ("not-a-cursor", "e30", cursor[:-3]):
        with pytest.raises(InvalidCursor):
            rank_moments(moments, request("red dress", cursor=garbled))


def test_stored_json_ranks_like_the_models():
    """Backends rank candidates from their JSON text; the page must be what the models give."""
    moments = [*_tied_moments(4), moment_of(person(garment("dress", "red", color_confidence=0.95)), media_id="z")]
    req = request("red dress", limit=3)
    from_models = rank_moments(moments, req)
    from_text = rank_documents([m.model_dump_json() for m in moments], req)
    assert from_text == from_models and from_models.total == 5
    assert from_models.hits[0].moment.media_id == "z"  # 0.95 x 0.9 beats 0.8 x 0.9
    assert [h.score for h in from_models.hits] == [match_moment(h.moment, req).score for h in from_models.hits]


# --- the tight bound ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_tight_bound_is_never_under_the_score_and_is_it_for_positive_queries(seed):
    """tight_bound is what both backends skip scoring with (and Elasticsearch ranks by): it must never be
    under a moment's score, and for a query of positive terms at no min_confidence it is the score."""
    from tests.indexer.test_store_search import random_outfits  # the randomised outfits of the backend tests

    moments = [m for labels in random_outfits(seed).values() for m in build_moments(labels)]
    exact = 0
    for text in ["red dress", "black hat", "not red", "dress not black", "blue pants without a hat", "striped",
                 "long sleeve black jacket", "white t-shirt and blue pants", "happy", "not sad", "happy in red", "",
                 "no dress", "floral dress"]:
        for kw in ({}, {"min_confidence": 0.6}, {"strict": True}, {"strict": True, "min_confidence": 0.5}):
            request = SearchRequest(query=PARSER.parse(text), threshold=0.0, **kw)
            tight = tight_query(request)
            for moment in moments:
                view = scoring_view(moment)
                score = score_document(view, request) or 0.0
                bound = tight_bound(term_probabilities(view), tight)
                assert score <= bound * (1 + 1e-12), (text, kw, moment.moment_id)
                if not kw and "not" not in text and "without" not in text and "no " not in text and score > 0.001:
                    assert bound == pytest.approx(score, rel=1e-9), (text, moment.moment_id)
                    exact += 1
    assert exact > 20  # it was compared, not vacuously


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_list_a_search_walks_bounds_the_score_and_a_counted_one_is_it(seed):
    """The embedded store walks the first of driver_keys and keeps only moments the others' bounds let
    through, so every key's stored bound (moment_bounds) must reach the score of every hit; where
    bound_is_score says the first list is the score (it counts the hits from its index), it must be."""
    from tests.indexer.test_store_search import random_outfits  # the randomised outfits of the backend tests

    moments = [m for labels in random_outfits(seed).values() for m in build_moments(labels)]
    shapes: set[str] = set()
    counted = 0
    for text in ["red striped dress", "white floral t-shirt", "happy in a floral dress", "sad in a red dress",
                 "happy in a long sleeve dress", "happy in a red striped dress", "sad in a red dress and blue pants",
                 "black jacket", "red dress", "happy", "striped dress not red"]:
        for kw in ({}, {"min_confidence": 0.6}, {"strict": True}, {"threshold": 0.2}):
            request = SearchRequest(query=PARSER.parse(text), **kw)
            drivers = driver_keys(request.query, request.threshold)
            shapes.update(key.count("__") for key, _ in drivers)
            for moment in moments:
                view = scoring_view(moment)
                score = score_document(view, request)
                if score is None:
                    continue
                bounds = moment_bounds(view)
                for key, similarity in drivers:
                    assert score <= bounds.get(key, 0.0) * similarity * (1 + 1e-9), (text, kw, key)
                if bound_is_score(request):
                    assert bounds[drivers[0][0]] == pytest.approx(score, rel=1e-12), (text, kw)
                    counted += 1
    assert shapes == {0, 1, 2} and counted > 20  # triples and pairs with an expression were walked, and counted

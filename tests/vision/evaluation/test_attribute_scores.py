"""Attribute scoring in the Clothing Attribute Dataset layout, on hand-made labels."""

from __future__ import annotations

import numpy as np
import pytest

from vision.evaluation.attributes import COLOR_FOLD, DATASET_COLORS, AttributeScores, main_person_upper_garment
from labels import Box, FrameLabels, Garment, Label, Person
from labels.masks import encode_mask
from labels.vocabulary import COLORS


def _label(value: str) -> Label:
    return Label(value=value, confidence=0.8, model="t", model_version="0")


def _garment(category: str, pixels: int, color: str | None = None, sleeve: str | None = None,
             pattern: str | None = None) -> Garment:
    mask = np.zeros((20, 20), bool)
    mask.flat[:pixels] = True
    return Garment(category=_label(category), box=Box(x1=0, y1=0, x2=20, y2=20), mask=encode_mask(mask),
                   color=_label(color) if color else None, sleeve=_label(sleeve) if sleeve else None,
                   pattern=_label(pattern) if pattern else None)


def _frame(*persons: tuple[float, list[Garment]]) -> FrameLabels:
    return FrameLabels(frame_id="f", media_id="m", timestamp=0, reason="image", width=20, height=20, persons=[
        Person(detection=_label("person"), box=Box(x1=0, y1=0, x2=size, y2=size), garments=garments)
        for size, garments in persons])


def test_every_colour_word_can_be_scored():
    assert set(COLOR_FOLD) | set(DATASET_COLORS) == set(COLORS)


def test_the_main_persons_largest_upper_garment_is_scored():
    jacket = _garment("coat/jacket", 200, color="black", sleeve="long")
    frame = _frame((5, [_garment("dress", 300)]), (15, [_garment("pants/jeans", 300), jacket,
                                                        _garment("t-shirt", 50)]))
    assert main_person_upper_garment(frame) is jacket
    assert main_person_upper_garment(_frame((15, [_garment("shoes", 30)]))) is None


def test_scores_count_missing_predictions_as_wrong():
    scores = AttributeScores()
    row = {"category": "outerwear", "sleevelength": "long sleeves", "pattern_solid": "1", "pattern_stripe": "0",
           "black": "1", "white": "0", "red": "", "brown": "0"}
    scores.add_image(row, _frame((15, [_garment("coat/jacket", 200, color="black", sleeve="long",
                                                pattern="striped")])))
    scores.add_image(row, _frame())  # nobody found
    scores.add_image({**row, "category": "shirt", "black": "0", "brown": "1"},
                     _frame((15, [_garment("shirt/blouse", 200, color="beige", sleeve="long")])))
    report = scores.report()
    attrs = report["attributes"]
    assert report["no_person"] == 1 and report["images"] == 3
    assert attrs["category"]["accuracy"] == pytest.approx(2 / 3) and attrs["category"]["unpredicted"] == 1
    assert attrs["sleeve"]["accuracy"] == pytest.approx(2 / 3)
    assert attrs["pattern"]["accuracy"] == 0.0 and attrs["pattern"]["unpredicted"] == 2
    assert "color:red" not in attrs  # blank = annotators disagreed: skipped
    assert attrs["color:brown"]["accuracy"] == pytest.approx(1.0)  # beige is scored as brown
    assert attrs["color:black"]["accuracy"] == pytest.approx(2 / 3)


def test_colour_cells_of_a_many_colours_row_are_not_scored():
    # The data set marks one or two colours, or "many colours" with every colour cell 0.
    scores = AttributeScores()
    black_hoodie = _frame((15, [_garment("sweater", 200, color="black", sleeve="long")]))
    scores.add_image({"category": "sweater", "black": "0", "white": "0", "many_colors": "1"}, black_hoodie)
    scores.add_image({"category": "sweater", "black": "1", "white": "0", "many_colors": "0"}, black_hoodie)
    report = scores.report()
    assert report["many_colors_skipped"] == 1
    assert report["attributes"]["category"]["n"] == 2  # the row's other attributes still count
    assert report["attributes"]["color:black"]["n"] == 1
    assert report["attributes"]["color:black"]["accuracy"] == 1.0 and report["attributes"]["color:black"]["f1"] == 1.0

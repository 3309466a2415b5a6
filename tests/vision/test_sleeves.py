"""Sleeve length from label maps drawn by hand: arms along which a garment or skin is painted."""

from __future__ import annotations

import numpy as np
import pytest

from vision.sleeves import arm_coverage, sleeve_length, sleeve_owner

GARMENT, SKIN, JACKET = 5, 1, 7


def _body(upper: int, fore: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 200x200 map with two vertical arms: upper arms (rows 40-100) and forearms (100-160) painted
    with the given classes, and the landmarks of both shoulders, elbows and wrists."""
    labels = np.zeros((200, 200), dtype=np.uint8)
    landmarks = np.zeros((33, 2), dtype=np.float32)
    for x, (shoulder, elbow, wrist) in ((50, (11, 13, 15)), (150, (12, 14, 16))):
        labels[40:100, x - 8:x + 8] = upper
        labels[100:160, x - 8:x + 8] = fore
        landmarks[shoulder], landmarks[elbow], landmarks[wrist] = (x, 40), (x, 100), (x, 160)
    return labels, landmarks, np.ones(33, dtype=np.float32)


@pytest.mark.parametrize("upper, fore, expected", [
    (GARMENT, GARMENT, "long"), (GARMENT, SKIN, "short"), (SKIN, SKIN, "sleeveless"),
])
def test_sleeve_length_follows_the_garment_along_the_arms(upper, fore, expected):
    labels, landmarks, visibility = _body(upper, fore)
    found = sleeve_length(arm_coverage(labels, (0, 0), landmarks, visibility, {GARMENT}, SKIN))
    assert found is not None and found[0] == expected and found[1] > 0.9


def test_arms_under_another_garment_say_nothing():
    labels, landmarks, visibility = _body(JACKET, JACKET)
    assert sleeve_length(arm_coverage(labels, (0, 0), landmarks, visibility, {GARMENT}, SKIN)) is None


def test_hidden_arms_are_skipped_and_the_region_offset_is_applied():
    labels, landmarks, visibility = _body(GARMENT, SKIN)
    visibility[[11, 13, 15]] = 0.1  # left arm not visible
    arms = arm_coverage(labels, (0, 0), landmarks, visibility, {GARMENT}, SKIN)
    assert len(arms) == 1
    # The same map read as the region starting at frame pixel (300, 50): landmarks move with it.
    moved = arm_coverage(labels, (300, 50), landmarks + np.array([300, 50], np.float32), visibility, {GARMENT}, SKIN)
    assert moved == arms


def test_disagreeing_arms_lower_the_confidence():
    labels, landmarks, visibility = _body(GARMENT, SKIN)
    labels[100:160, 142:158] = GARMENT  # right forearm covered: one arm short, one long
    label, confidence = sleeve_length(arm_coverage(labels, (0, 0), landmarks, visibility, {GARMENT}, SKIN))
    assert label in {"short", "long"} and confidence <= 0.6


def test_the_outermost_sleeve_owns_the_arms():
    labels, landmarks, visibility = _body(JACKET, JACKET)
    labels[40:48] = GARMENT  # a t-shirt collar shows above the jacket's shoulders
    found = sleeve_length(arm_coverage(labels, (0, 0), landmarks, visibility, {GARMENT, JACKET}, SKIN))
    assert found is not None and found[0] == "long"
    assert sleeve_owner(labels, (0, 0), landmarks, visibility, {GARMENT, JACKET}) == JACKET
    bare, landmarks, visibility = _body(SKIN, SKIN)
    assert sleeve_owner(bare, (0, 0), landmarks, visibility, {GARMENT, JACKET}) is None

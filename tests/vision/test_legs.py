"""Bare or covered shins from label maps drawn by hand: two legs along which trousers, skin or
boots are painted."""

from __future__ import annotations

import numpy as np
import pytest

from vision.legs import bare_shins, shin_states

SKIN, PANTS, SHOES = 1, 10, 12


def _legs(left: int, right: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 200x200 map with two vertical shins (rows 100-180) painted with the given classes, and the
    landmarks of both knees and ankles."""
    labels = np.zeros((200, 200), dtype=np.uint8)
    landmarks = np.zeros((33, 2), dtype=np.float32)
    for x, (knee, ankle), cls in ((70, (25, 27), left), (130, (26, 28), right)):
        labels[100:180, x - 8:x + 8] = cls
        landmarks[knee], landmarks[ankle] = (x, 100), (x, 180)
    return labels, landmarks, np.ones(33, dtype=np.float32)


def _states(labels, landmarks, visibility, origin=(0, 0)):
    return shin_states(labels, origin, landmarks, visibility, SKIN, {PANTS}, {SHOES})


@pytest.mark.parametrize("left, right, states, bare", [
    (SKIN, SKIN, ["bare", "bare"], True),
    (PANTS, PANTS, ["covered", "covered"], False),
    (SKIN, PANTS, ["bare", "covered"], False),  # one leg in view of trousers is enough to keep them
    (SKIN, SHOES, ["bare"], True),  # a boot up the shin says nothing
    (SHOES, SHOES, [], False),  # nothing decides: no rule
])
def test_shins_follow_the_labels_along_the_legs(left, right, states, bare):
    labels, landmarks, visibility = _legs(left, right)
    assert _states(labels, landmarks, visibility) == states
    assert bare_shins(states) is bare


def test_hidden_legs_are_skipped_and_the_region_offset_is_applied():
    labels, landmarks, visibility = _legs(SKIN, PANTS)
    visibility[26] = 0.2  # right knee not seen
    assert _states(labels, landmarks, visibility) == ["bare"]
    moved = _states(labels, landmarks + np.array([300, 50], np.float32), visibility, origin=(300, 50))
    assert moved == ["bare"]


def test_a_shin_neither_bare_nor_covered_says_nothing():
    labels, landmarks, visibility = _legs(SKIN, SKIN)
    labels[100:180, 62:78] = 0  # left shin: background (a skirt's shadow, the map's edge)
    assert _states(labels, landmarks, visibility) == ["bare"]

"""Garment pattern classifier: drawn prints on a shaded garment, real plain garments, masks, errors.

The prints are drawn here with their own code (not the training script's painters) on a T-shirt
shaped mask with light falloff and two soft folds, or on a real CCP garment's own shading.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vision.patterns import (
    MIN_MASK_PIXELS,
    PatternResult,
    TooFewPixels,
    classify_pattern,
    pattern_features,
)
from labels.vocabulary import PATTERNS

H, W = 260, 220
YY, XX = np.mgrid[:H, :W].astype(np.float64)
BACKGROUND = (90, 110, 80)

NAVY, WHITE, RED, YELLOW = (20, 30, 90), (240, 240, 235), (200, 30, 40), (240, 210, 60)
BLACK, GREY, GREEN = (15, 15, 15), (150, 150, 150), (30, 120, 60)


def tshirt_mask() -> np.ndarray:
    body = (np.abs(XX - W / 2) < 60) & (YY > 40) & (YY < 250)
    sleeves = (YY > 40) & (YY < 110) & (np.abs(XX - W / 2) < 100) & (YY - 40 > (np.abs(XX - W / 2) - 60) * 0.5)
    neck = (XX - W / 2) ** 2 + (YY - 40) ** 2 < 22**2
    return (body | sleeves) & ~neck


MASK = tshirt_mask()


def shading() -> np.ndarray:
    """Light from the upper left and two soft vertical folds."""
    s = 0.85 + 0.25 * (1 - YY / H) - 0.1 * XX / W
    for fold in (80, 150):
        s -= 0.12 * np.exp(-((XX - fold) ** 2) / (2 * 6**2))
    return s


def dress(albedo: np.ndarray, light: np.ndarray, mask: np.ndarray, background: np.ndarray, noise: float = 2.0) -> np.ndarray:
    """The albedo (HxWx3 in [0, 1]) shaded and noised inside the mask, the background elsewhere."""
    rng = np.random.default_rng(0)
    garment = albedo * light[..., None] * 255 + rng.normal(0, noise, albedo.shape)
    return np.where(mask[..., None], garment, background).clip(0, 255).astype(np.uint8)


def on_tshirt(albedo: np.ndarray, noise: float = 2.0) -> np.ndarray:
    return dress(albedo, shading(), MASK, np.array(BACKGROUND, np.float64), noise)


def fabric_coordinates(angle: float, shape: tuple[int, int] = (H, W)) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    a = np.radians(angle)
    return x * np.cos(a) + y * np.sin(a), -x * np.sin(a) + y * np.cos(a)


def two_colours(on: np.ndarray, ink: tuple, ground: tuple) -> np.ndarray:
    return np.where(on[..., None], np.array(ink) / 255, np.array(ground) / 255)


def stripes(angle: float, period: float, ink: tuple, ground: tuple, shape=(H, W)) -> np.ndarray:
    u, _ = fabric_coordinates(angle, shape)
    return two_colours((u / period) % 1 < 0.5, ink, ground)


def checks(angle: float, period: float, ink: tuple, ground: tuple, shape=(H, W)) -> np.ndarray:
    """Gingham: two crossing sets of half-tone bands, darkest where they cross."""
    u, v = fabric_coordinates(angle, shape)
    cover = (((u / period) % 1 < 0.5).astype(float) + ((v / period) % 1 < 0.5)) / 2
    return np.array(ground) / 255 * (1 - cover[..., None]) + np.array(ink) / 255 * cover[..., None]


def dots(spacing: float, radius: float, ink: tuple, ground: tuple, hexagonal: bool = False, shape=(H, W)) -> np.ndarray:
    u, v = fabric_coordinates(0, shape)
    if hexagonal:
        u = u + 0.5 * spacing * (np.floor(v / spacing) % 2)
    du = ((u / spacing) % 1 - 0.5) * spacing
    dv = ((v / spacing) % 1 - 0.5) * spacing
    return two_colours(np.hypot(du, dv) < radius, ink, ground)


def plain(colour: tuple, shape=(H, W)) -> np.ndarray:
    return np.broadcast_to(np.array(colour) / 255, (*shape, 3)).copy()


# ---- drawn prints --------------------------------------------------------------------------------


@pytest.mark.parametrize("angle", [0, 90, 30, 135])
@pytest.mark.parametrize("period", [8, 14, 24])
@pytest.mark.parametrize("colours", [(NAVY, WHITE), (RED, YELLOW), (BLACK, GREY)])
def test_stripes_are_striped(angle, period, colours):
    result = classify_pattern(on_tshirt(stripes(angle, period, *colours)), MASK)
    assert result.label == "striped", result.scores


@pytest.mark.parametrize("angle", [0, 10, 30])
@pytest.mark.parametrize("period", [12, 18, 28])
@pytest.mark.parametrize("colours", [(NAVY, WHITE), (RED, WHITE), (GREEN, YELLOW)])
def test_checks_are_plaid(angle, period, colours):
    result = classify_pattern(on_tshirt(checks(angle, period, *colours)), MASK)
    assert result.label == "plaid", result.scores


@pytest.mark.parametrize("spacing, radius", [(12, 3), (16, 4), (22, 6)])
@pytest.mark.parametrize("hexagonal", [False, True])
@pytest.mark.parametrize("colours", [(WHITE, NAVY), (BLACK, RED), (WHITE, BLACK)])
def test_dots_are_spotted(spacing, radius, hexagonal, colours):
    result = classify_pattern(on_tshirt(dots(spacing, radius, *colours, hexagonal=hexagonal)), MASK)
    assert result.label == "spotted", result.scores


@pytest.mark.parametrize("colour", [WHITE, GREY, RED, YELLOW, GREEN, NAVY, BLACK])
def test_plain_shaded_garment_is_solid(colour):
    result = classify_pattern(on_tshirt(plain(colour)), MASK)
    assert result.label == "solid", result.scores


@pytest.mark.parametrize("colour", [BLACK, NAVY, (60, 40, 30)])
def test_sensor_noise_on_a_dark_garment_is_not_a_pattern(colour):
    result = classify_pattern(on_tshirt(plain(colour), noise=5.0), MASK)
    assert result.label == "solid", result.scores


# ---- masks ---------------------------------------------------------------------------------------


def grow(mask: np.ndarray, steps: int) -> np.ndarray:
    for _ in range(steps):
        p = np.pad(mask, 1)
        mask = p[1:-1, 1:-1] | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
    return mask


@pytest.mark.parametrize(
    "albedo, label",
    [(stripes(90, 14, NAVY, WHITE), "striped"), (checks(0, 18, RED, WHITE), "plaid"),
     (dots(16, 4, WHITE, NAVY), "spotted"), (plain(RED), "solid")],
)
def test_a_mask_leaking_onto_a_contrasting_background_keeps_the_label(albedo, label):
    # A segmentation mask four pixels too wide, over a white background.
    image = dress(albedo, shading(), MASK, np.array(WHITE, np.float64))
    result = classify_pattern(image, grow(MASK, 4))
    assert result.label == label, result.scores


@pytest.mark.parametrize(
    "albedo, label",
    [(stripes(0, 5, NAVY, WHITE, (60, 50)), "striped"), (checks(0, 8, RED, WHITE, (60, 50)), "plaid"),
     (plain(GREEN, (60, 50)), "solid")],
)
def test_a_small_garment_still_shows_its_pattern(albedo, label):
    # 60 x 50 pixels, a garment seen from afar: the crop is scaled up to the working size.
    light = np.linspace(1.0, 0.8, 60)[:, None] * np.ones((60, 50))
    mask = np.zeros((60, 50), dtype=bool)
    mask[2:58, 3:47] = True
    image = dress(albedo, light, mask, np.array(BACKGROUND, np.float64))
    assert classify_pattern(image, mask).label == label


def test_result_scores_cover_the_vocabulary_and_sum_to_one():
    result = classify_pattern(on_tshirt(stripes(0, 14, NAVY, WHITE)), MASK)
    assert isinstance(result, PatternResult)
    assert list(result.scores) == list(PATTERNS)
    assert sum(result.scores.values()) == pytest.approx(1.0)
    assert all(0.0 <= p <= 1.0 for p in result.scores.values())
    assert result.label == max(result.scores, key=result.scores.get)
    assert result.confidence == result.scores[result.label]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.label = "solid"


def test_same_input_same_answer_and_the_mask_decides_what_is_read():
    image = on_tshirt(stripes(0, 14, NAVY, WHITE))
    assert classify_pattern(image, MASK) == classify_pattern(image.copy(), MASK.copy())
    # Everything outside the mask may change without changing the features.
    other = image.copy()
    other[~grow(MASK, 8)] = 255 - other[~grow(MASK, 8)]
    np.testing.assert_allclose(pattern_features(other, MASK), pattern_features(image, MASK), atol=1e-9)


# ---- bad input -----------------------------------------------------------------------------------


def test_too_small_a_mask_raises_too_few_pixels():
    image = on_tshirt(plain(RED))
    mask = np.zeros((H, W), dtype=bool)
    mask[100:120, 100:120] = True  # 400 pixels
    assert mask.sum() < MIN_MASK_PIXELS
    with pytest.raises(TooFewPixels, match=str(MIN_MASK_PIXELS)):
        classify_pattern(image, mask)
    with pytest.raises(ValueError):  # TooFewPixels is a ValueError
        classify_pattern(image, np.zeros((H, W), dtype=bool))


@pytest.mark.parametrize(
    "image, mask, message",
    [
        (np.zeros((H, W, 3), np.float32), MASK, "uint8"),
        (np.zeros((H, W), np.uint8), MASK, "HxWx3"),
        (np.zeros((H, W, 4), np.uint8), MASK, "HxWx3"),
        ([[0]], MASK, "HxWx3"),
        (np.zeros((H, W, 3), np.uint8), MASK.astype(np.uint8), "bool"),
        (np.zeros((H, W, 3), np.uint8), MASK[None], "bool"),
        (np.zeros((H, W, 3), np.uint8), MASK[:, :-1], "does not match"),
    ],
)
def test_bad_input_raises_value_error(image, mask, message):
    with pytest.raises(ValueError, match=message):
        classify_pattern(image, mask)


# ---- real garments (CCP) -------------------------------------------------------------------------

# Plain garments, with folds, seams and buttons, that the classifier's training never saw (the
# training list stops at image 0317).
UNSEEN_PLAIN = ["0594:blouse", "0596:shirt", "0600:blouse", "0630:dress", "0637:dress", "0639:top"]


def ccp_garment(shared_data: Path, key: str) -> tuple[np.ndarray, np.ndarray]:
    image_id, label = key.split(":")
    names = json.loads((shared_data / "ccp" / "annotations.json").read_text())["label_names"]
    image = np.asarray(Image.open(shared_data / "ccp" / "images" / f"{image_id}.jpg").convert("RGB"))
    mask = np.asarray(Image.open(shared_data / "ccp" / "masks" / f"{image_id}.png")) == names.index(label)
    return image, mask


@pytest.mark.parametrize("key", UNSEEN_PLAIN)
def test_real_plain_garment_is_solid(shared_data, key):
    image, mask = ccp_garment(shared_data, key)
    result = classify_pattern(image, mask)
    assert result.label == "solid", result.scores


@pytest.mark.parametrize(
    "painter, label",
    [
        (lambda s: stripes(0, 12, NAVY, WHITE, s), "striped"),
        (lambda s: stripes(90, 9, RED, WHITE, s), "striped"),
        (lambda s: checks(0, 20, NAVY, WHITE, s), "plaid"),
        (lambda s: checks(30, 16, GREEN, YELLOW, s), "plaid"),
        (lambda s: dots(18, 4.5, NAVY, WHITE, hexagonal=True, shape=s), "spotted"),
        (lambda s: dots(18, 4.5, RED, WHITE, shape=s), "spotted"),
    ],
)
def test_prints_on_a_real_garment_with_its_folds(shared_data, painter, label):
    image, mask = ccp_garment(shared_data, "0594:blouse")
    lum = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255
    light = np.clip(lum / np.median(lum[mask]), 0, 2)
    printed = dress(painter(mask.shape), light, mask, image.astype(np.float64), noise=0.0)
    assert classify_pattern(printed, mask).label == label

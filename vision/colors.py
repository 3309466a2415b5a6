"""Colour names for one garment, from the pixels of its mask.

The garment's colour is read as the shares of its pixels that each colour word fits, never as the
mean of a box: a mean mixes the shirt with the skin, hair and street around it, and two colours
average into a third that is not there. The steps, and why:

1. Where to look. Segmentation masks leak onto skin and background at their borders, and JPEG
   smears colours across edges, so a pixel's vote is weighted by its distance to the mask's edge:
   the outermost ring (about a tenth of the mask's half-thickness, at least one pixel) does not
   vote, and the weight then ramps up to 1 over the next third of the half-thickness. A thin mask
   (a strap, a tie) is eroded at most to its middle, so it always keeps some pixels. Large masks
   are sampled at one pixel per s x s block, down to about 8k samples: colour naming gains nothing
   from more, and this bounds the time. The sample is a pixel of the photo, not the block's mean:
   a mean turns a fine black-and-white print (gingham, houndstooth, small dots) into a grey that
   is not on the garment (the soft boundaries of step 4 absorb JPEG chroma noise instead).
2. The frame's light. When the caller gives the frame's SceneLight (the garment stage does), its
   colour cast is taken out first: the frame's near-neutral surfaces (pavement, walls, shadows:
   pixels of little chroma) average to grey under neutral light, so where they lean warm or blue
   the light does; part of that lean is divided out of every pixel in the cone-like LMS channels (a
   von Kries adaptation). Near-neutral pixels rather than the whole frame (grey world): a yellow
   wall filling the frame would otherwise turn pink trousers purple. Exposure is not corrected:
   raising dim frames made black garments gray.
3. Colour space. sRGB is converted to Oklab (Ottosson 2020), a perceptual Lab space built like
   CIELAB (lightness L, opponent axes a, b; here scaled by 100) but with hue that stays constant
   where CIELAB's bends: in CIELAB pure blue sits at 306 degrees, a few degrees from purple
   garments, in Oklab at 264 degrees with purples from 298 on. Names are decided on lightness,
   chroma and hue (LCh).
4. Chromatic or not. A pixel is achromatic (black / gray / white, by lightness) when its chroma is
   below a threshold that grows with lightness, so dark navy (little chroma but much relative to
   its lightness) stays blue while a grey shirt's JPEG noise does not become a colour; the growth
   stops at mid lightness, or pale colours (beige, light blue) would all read as white. The b axis
   (yellow-blue) counts less towards that chroma because warm and cool light shift neutral
   surfaces along it (the daylight locus): a grey shirt in warm light stays grey. Black ends at
   L 30 (was 36): charcoal suits and coats (their cloth at L 27-35 in street photos) are grey, as
   people name them, while black cloth sits at L 10-25 and a black dress in full sun around 30.
5. Which colour. Hue sectors give red, orange, yellow, green, cyan, blue, purple; within the warm
   sectors lightness and chroma split off brown (dark), beige (light and muted), and within red,
   pink (light; the limit rises with hue, since pinks sit towards purple). Every split is a
   logistic step instead of a hard threshold, so each pixel spreads one vote over the names it is
   near: a pixel on a boundary gives half to each side, and the dominant colour's share is lower
   when many pixels sit near boundaries. That share is the confidence.
6. Shadows. Nearly black pixels carry little colour information (the hue of a navy shirt's
   deepest folds is noise); they vote with a tenth of the weight of the others while they are the
   garment's shadows, and fully once they are most of it (then they are the cloth: a black tee at
   L 7 must not be outvoted by the wooden floor its mask leaks onto). Blown-out pixels vote fully:
   a blown area large enough to count is white cloth in the sun, and it votes white anyway.
7. Secondary colour. The most-voted other name becomes the secondary when it is a different
   colour, not the same cloth in light and shade: one colour under folds spreads continuously
   across a name boundary (black into gray, navy into black, pink into red), so the mean colours of
   the two names' votes lie close together. They must differ by a set Oklab distance, with
   lightness counting half (light changes it most). How much of the garment it must hold falls
   with that distance: SECONDARY_COLOR_MIN_SHARE at the least distance, down to _SECONDARY_FLOOR
   for far colours, as white dots or stripes on black cloth show at a smaller share than a dark
   red patch on brown. Names that fail (a shading colour between black and white) are passed over
   for the next one.

Calibration: the thresholds were set on named sRGB colours and garment shades; then a handful were
compared on the attributes-dev photos of the Clothing Attribute Dataset (never trained on): the
chroma threshold's base, the white limit, the secondary distance and its lightness weight first
(bench/color_attributes_eval.py, with a torso-box proxy for the mask); then, with the garment
stage's own masks (`vestis eval attributes --cache`), the black limit, the secondary floor and
fall (0.12, squared distance), full votes for blown-out pixels and for dark pixels that are most
of the garment, pixel sampling and the cast (near-neutral pixels, strength 0.6) were chosen on
the even-numbered photos and checked on the odd ones (figures in docs/models/garment-parsing.md);
nothing is fitted. The black limit is 30, not the even photos' best 28, because 28 made CCP
0131's sunlit black dress grey. The chroma cap costs a few white/gray photos there (that set has
no beige or light-blue label) and is kept so that beige gets named.
Known limits: lightness-defined names (black/gray/white, brown/orange, pink/red) follow exposure:
a white shirt in deep shadow still reads grey, and black and charcoal overlap (the data set itself
names one photo black in one row and grey in its duplicate); a frame with few near-neutral
surfaces gets no cast correction, and coloured light on the person alone (a neon sign) is not seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from vision.garment_pixels import TooFewPixels, garment_pixel_count
from labels.vocabulary import COLORS, SECONDARY_COLOR_MIN_SHARE

# Fewer mask pixels than this cannot name a colour reliably (an 8 x 8 patch; after the edge ring
# is dropped, a few dozen samples remain).
MIN_MASK_PIXELS = 64
# Large masks are sampled (one pixel per block) down to about this many samples.
_MAX_SAMPLES = 8_000
# Edge ring that does not vote, and the ramp after it, as shares of the mask's half-thickness.
_EDGE_SHARE = 0.1
_RAMP_SHARE = 0.3
# A half-thickness above this many samples is treated as this (a blob of 80 samples across).
_MAX_STEPS = 40

# Achromatic when chroma < min(_CHROMA_BASE + _CHROMA_PER_L * L, _CHROMA_MAX) (Oklab x 100), with b
# divided by _B_AXIS_SLACK first (light-source tints lie along b). The cap keeps pale colours (beige,
# light blue, pastel pink), which have little chroma too, from all reading as white.
_CHROMA_BASE = 1.0
_CHROMA_PER_L = 0.04
_CHROMA_MAX = 3.0
_B_AXIS_SLACK = 1.5
# Achromatic lightness limits: black below, white above, gray between.
_BLACK_BELOW = 30.0
_WHITE_ABOVE = 74.0
# Warm hues: darker than this is brown (orange sector / yellow sector); a dark yellow is olive,
# which stays yellow down to a lower lightness than orange does.
_BROWN_BELOW_ORANGE = 55.0
_BROWN_BELOW_YELLOW = 50.0
# Warm hues with less chroma than this are muted: beige when lighter than _BEIGE_ABOVE, else brown.
_MUTED_BELOW = 10.0
_BEIGE_ABOVE = 72.0
# Red sector: pink above lightness _PINK_BASE + _PINK_PER_DEGREE * (hue, signed around 0 degrees);
# a dark, muted red is brown (a red-brown leather, rust in shadow).
_PINK_BASE = 54.0
_PINK_PER_DEGREE = 0.55
_RED_BROWN_BELOW_L = 45.0
_RED_BROWN_BELOW_C = 8.0
# Oklab distance (x 100) between the mean colours of the dominant's and the secondary's votes below
# which they are one colour in light and shade, not two. Lightness differences count half: light
# and shade change lightness much more than hue and chroma.
_SECONDARY_MIN_DISTANCE = 20.0
_SECONDARY_LIGHTNESS_WEIGHT = 0.5
# A secondary needs SECONDARY_COLOR_MIN_SHARE at _SECONDARY_MIN_DISTANCE from the dominant, and less
# further away (SECONDARY_COLOR_MIN_SHARE x (_SECONDARY_MIN_DISTANCE / distance) ** _SECONDARY_FALL),
# never under _SECONDARY_FLOOR.
_SECONDARY_FLOOR = 0.12
_SECONDARY_FALL = 2.0
# Widths of the logistic steps: lightness, chroma, hue (degrees).
_L_STEP = 2.5
_C_STEP = 0.8
_HUE_STEP = 3.0
# Hue sectors in Oklab degrees (start of each, going round); checked on named sRGB colours and
# garment shades (navy, denim, royal at 257-273; blue-violets 282-286; purples 298-332).
_HUE_SECTORS: tuple[tuple[float, str], ...] = (
    (345.0, "red"), (42.0, "orange"), (80.0, "yellow"), (118.0, "green"),
    (175.0, "cyan"), (215.0, "blue"), (292.0, "purple"),
)
# Pixels darker than this carry little colour information (deep folds) and vote with _FAINT_WEIGHT,
# unless they are over _DARK_MAJORITY of the garment's vote (then they are the cloth).
_DARK_BELOW = 15.0
# Below this lightness a pixel is black whatever its tint: camera noise and white balance give near-
# black cloth a hue (a blue cast turns a black hoodie at L 8 "blue"), while navy in shade is L 15-20.
_HUELESS_BELOW = 12.0
_FAINT_WEIGHT = 0.1
_DARK_MAJORITY = 0.5
# The scene's light (SceneLight) is read from its near-neutral pixels: chroma under _NEUTRAL_CHROMA
# (Oklab x 100), neither nearly black nor blown. Under _NEUTRAL_LEAST of the frame, nothing is
# corrected (a frame of saturated colours says little about its light). _CAST_STRENGTH of the
# cast is taken out: the estimate is rough, and a full correction cost accuracy on attributes-dev.
_NEUTRAL_CHROMA = 5.0
_NEUTRAL_LEAST = 0.05
_NEUTRAL_BLOWN = 97.0
_CAST_STRENGTH = 0.6
_SCENE_SAMPLES = 20_000  # frame pixels the cast is estimated from

_SECTOR_STARTS = np.array([start for start, _ in _HUE_SECTORS], dtype=np.float32)
_INDEX = {name: i for i, name in enumerate(COLORS)}

# sRGB byte -> linear light.
_srgb = np.arange(256, dtype=np.float64) / 255.0
_TO_LINEAR = np.where(_srgb <= 0.04045, _srgb / 12.92, ((_srgb + 0.055) / 1.055) ** 2.4).astype(np.float32)
# Oklab: linear sRGB -> cone-like LMS, cube root, -> Lab (Ottosson's matrices).
_RGB_TO_LMS = np.array([
    [0.4122214708, 0.5363325363, 0.0514459929],
    [0.2119034982, 0.6806995451, 0.1073969566],
    [0.0883024619, 0.2817188376, 0.6299787005],
], dtype=np.float32)
_LMS_TO_LAB = np.array([
    [0.2104542553, 0.7936177850, -0.0040720468],
    [1.9779984951, -2.4285922050, 0.4505937099],
    [0.0259040371, 0.7827717662, -0.8086757660],
], dtype=np.float32) * 100.0


@dataclass(frozen=True)
class SceneLight:
    """The colour cast of a frame's light, as gains on the cone-like (LMS) channels.

    A crop says nothing about its light, but the frame does: its near-neutral surfaces (pavement,
    walls, shadows) average to grey under neutral light, so where they lean warm or blue the light
    does, and a grey shirt in it leans the same way. `gains` take _CAST_STRENGTH of that lean out
    before naming. Only near-neutral pixels count: the mean of the whole frame (grey world) is
    pulled by whatever fills it, and a yellow wall would turn pink trousers purple.
    Exposure is left alone: raising a dark frame's lightness made black garments in dim photos gray
    (measured on attributes-dev), and names that lightness decides follow exposure anyway.
    """

    gains: tuple[float, float, float]

    @classmethod
    def of_frame(cls, rgb: np.ndarray) -> "SceneLight":
        """The light of a whole frame (HxWx3 uint8)."""
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] * rgb.shape[1] == 0:
            raise ValueError(f"frame must be a non-empty HxWx3 uint8 array, got {rgb.dtype} {rgb.shape}")
        step = max(1, math.ceil(math.sqrt(rgb.shape[0] * rgb.shape[1] / _SCENE_SAMPLES)))
        lms = _TO_LINEAR[rgb[::step, ::step].reshape(-1, 3)] @ _RGB_TO_LMS.T
        lab = np.cbrt(lms) @ _LMS_TO_LAB.T
        near = ((np.hypot(lab[:, 1], lab[:, 2]) < _NEUTRAL_CHROMA) & (lab[:, 0] > _DARK_BELOW)
                & (lab[:, 0] < _NEUTRAL_BLOWN))
        if near.mean() < _NEUTRAL_LEAST:
            return cls((1.0, 1.0, 1.0))
        mean = lms[near].mean(axis=0).astype(np.float64)
        # sRGB white is LMS (1, 1, 1) in Oklab's matrices: a neutral scene has equal channel means.
        gains = (mean.mean() / np.maximum(mean, 1e-6)) ** _CAST_STRENGTH
        return cls((float(gains[0]), float(gains[1]), float(gains[2])))


@dataclass(frozen=True)
class ColorNaming:
    """The colours of one garment.

    `shares` holds every name in vocabulary.COLORS (summing to 1): the weighted share of the
    garment's pixels that name fits. `dominant_confidence` is the dominant colour's share;
    `secondary` is the most-voted other name that is a distinct colour and holds enough of the
    garment (see `_secondary`; else None, with `secondary_share` 0). `pixels` is how many of the
    mask's pixels voted, after the edge ring is dropped (counted in input pixels: a sample of a
    large mask stands for its s x s block).
    """

    dominant: str
    dominant_confidence: float
    secondary: str | None
    secondary_share: float
    shares: dict[str, float]
    pixels: int


# Bins of the CIELAB histograms `cloth_difference` compares (lightness, a, b): coarse on lightness,
# which shade and folds move most.
_CLOTH_BINS = (6, 8, 8)


def cloth_difference(rgb: np.ndarray, first: np.ndarray, second: np.ndarray) -> float:
    """How unlike two pixel sets of one frame look: the Bhattacharyya distance (0 alike, 1 disjoint)
    of their CIELAB colour histograms. Histograms rather than mean colours, so a print compares
    with the same print (its mean would be a colour it does not have). rgb: HxWx3 uint8; first,
    second: HxW bool, each with at least MIN_MASK_PIXELS pixels."""
    if min(int(first.sum()), int(second.sum())) < MIN_MASK_PIXELS:
        raise TooFewPixels(f"cloth_difference needs {MIN_MASK_PIXELS} pixels on each side")
    lab = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2LAB)
    hists = [cv2.calcHist([lab], [0, 1, 2], mask.astype(np.uint8), list(_CLOTH_BINS), [0, 256, 0, 256, 0, 256])
             for mask in (first, second)]
    hists = [cv2.normalize(h, h, 1.0, 0.0, cv2.NORM_L1) for h in hists]
    return float(cv2.compareHist(hists[0], hists[1], cv2.HISTCMP_BHATTACHARYYA))


def name_colors(rgb: np.ndarray, mask: np.ndarray, light: SceneLight | None = None) -> ColorNaming:
    """Name the colours of the garment whose pixels are `mask` (HxW bool) in `rgb` (HxWx3 uint8).

    `light`: the light of the frame the pixels come from (SceneLight.of_frame), taken out before
    naming; None names the pixels as they are.

    `rgb` may be the whole frame or a crop; mask pixels on its border are not treated as the
    garment's edge (the garment goes on outside the crop). Raises ValueError on mismatched or
    malformed input or an empty mask, TooFewPixels when the mask has under MIN_MASK_PIXELS pixels.
    """
    count = garment_pixel_count(rgb, mask)
    if count == 0:
        raise ValueError("mask is empty: no garment pixels to name")
    if count < MIN_MASK_PIXELS:
        raise TooFewPixels(f"mask has {count} pixels; naming a colour needs at least {MIN_MASK_PIXELS}")
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    # Sides of the box that touch the image border: the garment may go on past them.
    open_sides = (top == 0, bottom == mask.shape[0], left == 0, right == mask.shape[1])
    step = max(1, math.ceil(math.sqrt((bottom - top) * (right - left) / _MAX_SAMPLES)))
    linear, inside = _samples(rgb[top:bottom, left:right], mask[top:bottom, left:right], step)

    weight = _edge_weight(inside, open_sides)
    voting = weight > 0
    lms = linear[voting] @ _RGB_TO_LMS.T
    if light is not None:
        lms = lms * np.asarray(light.gains, dtype=np.float32)
    lab = np.cbrt(lms) @ _LMS_TO_LAB.T
    weight = weight[voting] * _information_weight(lab[:, 0], weight[voting])
    votes = _memberships(lab)

    weighted = votes * weight[:, None]
    totals = weighted.sum(axis=0)
    shares = totals / totals.sum()
    order = np.argsort(shares)[::-1]
    dominant = int(order[0])
    secondary = _secondary(lab, weighted, shares, order)
    return ColorNaming(
        dominant=COLORS[dominant],
        dominant_confidence=float(shares[dominant]),
        secondary=COLORS[secondary] if secondary is not None else None,
        secondary_share=float(shares[secondary]) if secondary is not None else 0.0,
        shares={name: float(shares[i]) for i, name in enumerate(COLORS)},
        pixels=int(voting.sum()) * step * step,
    )


def _secondary(lab: np.ndarray, weighted: np.ndarray, shares: np.ndarray, order: np.ndarray) -> int | None:
    """The second colour of the garment, if it has one: the most-voted other name whose votes come
    from a different colour, not the dominant's cloth in light and shade, and that holds enough of
    the garment to be seen. How much is enough falls with how far the colour is from the dominant:
    white stripes on a black shirt show at a smaller share than a dark red patch on a brown one."""
    dominant = weighted[:, order[0]]
    for candidate in order[1:]:
        if shares[candidate] < _SECONDARY_FLOOR:
            return None
        distance = _distance(lab, dominant, weighted[:, candidate])
        needed = SECONDARY_COLOR_MIN_SHARE * (_SECONDARY_MIN_DISTANCE / max(distance, 1e-6)) ** _SECONDARY_FALL
        if distance >= _SECONDARY_MIN_DISTANCE and shares[candidate] >= needed:
            return int(candidate)
    return None


def _distance(lab: np.ndarray, first: np.ndarray, second: np.ndarray) -> float:
    """Oklab distance between the mean colours of two names' votes, lightness counting less.

    One colour under folds and shadows spreads continuously across a name boundary (black into
    gray, navy into black): the mean colours of the votes on either side then lie close together.
    """
    means = np.stack([first, second]) @ lab / np.array([[first.sum()], [second.sum()]])
    difference = (means[0] - means[1]) * np.array([_SECONDARY_LIGHTNESS_WEIGHT, 1.0, 1.0])
    return float(np.linalg.norm(difference))


def _samples(rgb: np.ndarray, mask: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Linear-light colours (h x w x 3 float32) and mask of the box, one pixel per step x step block.

    The block's centre pixel, not its mean: averaging a fine black-and-white print (gingham,
    houndstooth, small dots) makes a grey that is not on the garment.
    """
    linear = _TO_LINEAR[rgb]
    if step == 1:
        return linear, mask
    # One pixel at a fixed pseudo-random place in each block: a regular stride would alias with a
    # regular print (2-pixel checks sampled every 4 pixels are all white).
    h, w = mask.shape[0] // step, mask.shape[1] // step
    jitter = np.random.default_rng(0).integers(0, step, size=(2, h, w))
    rows = np.arange(h)[:, None] * step + jitter[0]
    cols = np.arange(w)[None, :] * step + jitter[1]
    sampled = mask[rows, cols]
    if sampled.any():
        return linear[rows, cols], sampled
    # A mask thinner than a block everywhere (a diagonal strap) may miss every sample: average each
    # block over its garment pixels instead.
    offsets = [(i, j) for i in range(step) for j in range(step)]
    inside = [mask[i : i + h * step : step, j : j + w * step : step] for i, j in offsets]
    count = sum(m.astype(np.float32) for m in inside)
    total = sum(linear[i : i + h * step : step, j : j + w * step : step] * m[..., None]
                for (i, j), m in zip(offsets, inside))
    return total / np.maximum(count, 1.0)[..., None], np.asarray(count > 0)


def _edge_weight(inside: np.ndarray, open_sides: tuple[bool, bool, bool, bool]) -> np.ndarray:
    """Per-sample weight from the distance to the mask's edge: 0 on the edge ring, ramping to 1."""
    distance = _edge_distance(inside, open_sides)
    half_thickness = int(distance.max())
    edge = min(max(1, round(_EDGE_SHARE * half_thickness)), half_thickness // 2)
    ramp = max(1, math.ceil(_RAMP_SHARE * half_thickness))
    weight = np.clip((distance - edge + 1) / ramp, 0.0, 1.0).astype(np.float32)
    weight[~inside] = 0.0
    return weight


def _edge_distance(inside: np.ndarray, open_sides: tuple[bool, bool, bool, bool]) -> np.ndarray:
    """How many 3 x 3 erosions each mask pixel survives (at most _MAX_STEPS), where beyond an open
    side the image ends and the garment goes on: its chessboard distance to the nearest pixel that
    is not garment, less one (OpenCV's distance transform, exact for this metric)."""
    top, bottom, left, right = open_sides
    reach = _MAX_STEPS + 2  # garment this far beyond an open side leaves every uncapped distance as it is
    padded = np.pad(inside.astype(np.uint8), ((reach * top, reach * bottom), (reach * left, reach * right)),
                    constant_values=1)
    padded = np.pad(padded, 1)  # beyond the closed sides (and the band), nothing is garment
    distance = cv2.distanceTransform(padded, cv2.DIST_C, 3)[1:-1, 1:-1]
    distance = distance[reach * top:distance.shape[0] - reach * bottom, reach * left:distance.shape[1] - reach * right]
    return np.clip(distance - 1, 0, _MAX_STEPS).astype(np.int16)


def _information_weight(lightness: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """1 for well-exposed pixels, less for nearly black ones (blown-out pixels vote fully: a blown
    area large enough to count is white cloth in the sun, and it votes white anyway).

    Nearly black pixels vote _FAINT_WEIGHT while they are the garment's shadows, but fully once they
    are most of it (_DARK_MAJORITY of the vote): then they are the cloth itself, and a black tee
    must not be outvoted by the floor its mask leaks onto."""
    exposed = _step_up(lightness, _DARK_BELOW, _L_STEP)
    dark_share = float(((1.0 - exposed) * weight).sum() / max(float(weight.sum()), 1e-9))
    faint = _FAINT_WEIGHT + (1.0 - _FAINT_WEIGHT) * float(_step_up(np.array(dark_share), _DARK_MAJORITY, 0.05))
    return faint + (1.0 - faint) * exposed


def _memberships(lab: np.ndarray) -> np.ndarray:
    """N x len(COLORS) soft votes (each row sums to 1) from the decision tree over L, C, h."""
    lightness, a, b = lab[:, 0], lab[:, 1], lab[:, 2]
    chroma = np.hypot(a, b)
    hue = np.degrees(np.arctan2(b, a)) % 360.0
    votes = np.zeros((len(lab), len(COLORS)), dtype=np.float32)

    tint = np.hypot(a, b / _B_AXIS_SLACK)
    chromatic = _step_up(tint, np.minimum(_CHROMA_BASE + _CHROMA_PER_L * lightness, _CHROMA_MAX), _C_STEP)
    chromatic = chromatic * _step_up(lightness, _HUELESS_BELOW, _L_STEP)
    achromatic = 1.0 - chromatic
    black = _step_down(lightness, _BLACK_BELOW, _L_STEP)
    white = _step_up(lightness, _WHITE_ABOVE, _L_STEP)
    votes[:, _INDEX["black"]] = achromatic * black
    votes[:, _INDEX["white"]] = achromatic * (1.0 - black) * white
    votes[:, _INDEX["gray"]] = achromatic * (1.0 - black) * (1.0 - white)

    sectors = _hue_sectors(hue)
    for (_, name), sector in zip(_HUE_SECTORS, sectors.T):
        share = chromatic * sector
        if name == "red":
            signed_hue = np.where(hue > 180.0, hue - 360.0, hue)
            pink = _step_up(lightness, _PINK_BASE + _PINK_PER_DEGREE * signed_hue, _L_STEP)
            brown = (1.0 - pink) * _step_down(lightness, _RED_BROWN_BELOW_L, _L_STEP) * _step_down(
                chroma, _RED_BROWN_BELOW_C, _C_STEP)
            votes[:, _INDEX["pink"]] += share * pink
            votes[:, _INDEX["brown"]] += share * brown
            votes[:, _INDEX["red"]] += share * (1.0 - pink - brown)
        elif name in ("orange", "yellow"):
            brown_below = _BROWN_BELOW_ORANGE if name == "orange" else _BROWN_BELOW_YELLOW
            dark = _step_down(lightness, brown_below, _L_STEP)
            muted = (1.0 - dark) * _step_down(chroma, _MUTED_BELOW, _C_STEP)
            beige = muted * _step_up(lightness, _BEIGE_ABOVE, _L_STEP)
            votes[:, _INDEX["brown"]] += share * (dark + muted - beige)
            votes[:, _INDEX["beige"]] += share * beige
            votes[:, _INDEX[name]] += share * (1.0 - dark - muted)
        else:
            votes[:, _INDEX[name]] += share
    return votes


def _hue_sectors(hue: np.ndarray) -> np.ndarray:
    """N x len(_HUE_SECTORS) soft sector memberships, each row summing to 1.

    Sectors are much wider than the step, so a pixel is near one boundary at most: it keeps its own
    sector and hands the neighbour across the nearer boundary a logistic share of its vote.
    """
    count = len(_HUE_SECTORS)
    # Boundaries ascending from 0 degrees, with the wrapping sector's ends on both sides.
    lowest = int(np.argmin(_SECTOR_STARTS))
    ascending = np.roll(_SECTOR_STARTS, -lowest)
    edges = np.concatenate([[ascending[-1] - 360.0], ascending, [ascending[0] + 360.0]])
    position = np.searchsorted(edges, hue, side="right") - 1
    sector = (position - 1 + lowest) % count
    to_previous = _step_down(hue - edges[position], 0.0, _HUE_STEP)
    to_next = _step_down(edges[position + 1] - hue, 0.0, _HUE_STEP)
    memberships = np.zeros((len(hue), count), dtype=np.float32)
    rows = np.arange(len(hue))
    memberships[rows, sector] = 1.0 - to_previous - to_next
    memberships[rows, (sector - 1) % count] += to_previous
    memberships[rows, (sector + 1) % count] += to_next
    return memberships


def _step_up(x: np.ndarray, threshold: np.ndarray | float, width: float) -> np.ndarray:
    """Logistic step from 0 (x well below threshold) to 1 (well above)."""
    return 0.5 + 0.5 * np.tanh((x - threshold) / (2.0 * width))


def _step_down(x: np.ndarray, threshold: np.ndarray | float, width: float) -> np.ndarray:
    return 1.0 - _step_up(x, threshold, width)

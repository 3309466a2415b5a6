"""Whether a person's shins are bare, from the parser's labels along the lower legs.

Trousers cover the shins; shorts and most skirts leave them bare. The lower-garment head looks at
the garment's crop, where the waist and the cloth of jeans and of denim shorts look alike; where the
garment's pixels end says more. Along each visible knee -> ankle bone the parser's label map is
sampled (sleeves.bone_samples): a shin is bare when most samples are skin. Boots say nothing (their
samples are left out), nor does a leg out of view or hidden by another garment.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from vision.sleeves import DECISIVE_SHARE, MIN_VISIBILITY, bone_samples

# BlazePose body landmark indices: (knee, ankle) of the left and the right leg.
LEGS = ((25, 27), (26, 28))
# From below the knee (where a skirt's hem or long shorts may still reach) to above the ankle (where
# a shoe or a trouser hem rolled up would decide).
SHIN_SPAN = (0.15, 0.75)
MIN_DECIDING_SAMPLES = 4  # fewer non-shoe samples on a shin (boots, a leg out of the map) say nothing


def shin_states(labels: np.ndarray, origin: tuple[int, int], landmarks: np.ndarray, visibility: np.ndarray,
                skin: int, covering: Collection[int], ignored: Collection[int]) -> list[str]:
    """"bare" or "covered" for each visible shin that decides: DECISIVE_SHARE of its samples (those
    not of an `ignored` class, i.e. shoes) are skin, or of a `covering` class. labels: class map of
    a frame region whose top-left frame pixel is `origin` (x, y); landmarks: 33 x 2 frame pixels;
    visibility: 33 probabilities."""
    states = []
    for knee, ankle in LEGS:
        if min(float(visibility[knee]), float(visibility[ankle])) < MIN_VISIBILITY:
            continue
        samples = bone_samples(labels, origin, landmarks[knee], landmarks[ankle], SHIN_SPAN)
        if samples is None:
            continue
        samples = samples[~np.isin(samples, list(ignored))]
        if len(samples) < MIN_DECIDING_SAMPLES:
            continue
        if np.mean(samples == skin) >= DECISIVE_SHARE:
            states.append("bare")
        elif np.isin(samples, list(covering)).mean() >= DECISIVE_SHARE:
            states.append("covered")
    return states


def bare_shins(states: list[str]) -> bool:
    """Every shin that decides is bare (and at least one does): no trousers."""
    return bool(states) and all(s == "bare" for s in states)

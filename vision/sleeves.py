"""Sleeve length from where a garment's pixels lie along the arms.

The body landmarks give each arm's shoulder, elbow and wrist; the parser's label map says, along
those bones, which pixels are the garment and which are bare skin. A sleeve that reaches down the
forearm is long; one that covers the upper arm but leaves the forearm bare is short; a bare upper arm
means sleeveless. An arm hidden by another garment (a jacket over a t-shirt) or out of view says
nothing, so the garment gets no sleeve label rather than a guess.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

# BlazePose body landmark indices: (shoulder, elbow, wrist) of the left and the right arm.
ARMS = ((11, 13, 15), (12, 14, 16))
MIN_VISIBILITY = 0.5
# Where along each bone to look (0 = the upper joint): the top of the upper arm, which a t-shirt's
# short sleeve covers and a tank top leaves bare, and the forearm away from the elbow and the hand.
UPPER_ARM_SPAN = (0.1, 0.45)
FOREARM_SPAN = (0.25, 0.85)
SAMPLES = 9
# A bone is "covered" / "bare" when this share of its samples is garment / skin.
DECISIVE_SHARE = 0.6


@dataclass(frozen=True)
class ArmCoverage:
    upper_garment: float
    upper_skin: float
    fore_garment: float
    fore_skin: float
    visibility: float


def bone_samples(labels: np.ndarray, origin: tuple[int, int], a: np.ndarray, b: np.ndarray,
                 span: tuple[float, float]) -> np.ndarray | None:
    """Class labels at SAMPLES points along the bone a -> b; None when most of it lies outside the map."""
    ts = np.linspace(*span, SAMPLES)
    points = a[None, :] + ts[:, None] * (b - a)[None, :]
    cols = np.round(points[:, 0] - origin[0]).astype(int)
    rows = np.round(points[:, 1] - origin[1]).astype(int)
    inside = (rows >= 0) & (rows < labels.shape[0]) & (cols >= 0) & (cols < labels.shape[1])
    if inside.sum() < SAMPLES // 2:
        return None
    return labels[rows[inside], cols[inside]]


def _visible_arms(labels: np.ndarray, origin: tuple[int, int], landmarks: np.ndarray, visibility: np.ndarray):
    """(visibility, upper-arm samples, forearm samples) for each arm in view."""
    for shoulder, elbow, wrist in ARMS:
        seen = float(min(visibility[shoulder], visibility[elbow], visibility[wrist]))
        if seen < MIN_VISIBILITY:
            continue
        upper = bone_samples(labels, origin, landmarks[shoulder], landmarks[elbow], UPPER_ARM_SPAN)
        fore = bone_samples(labels, origin, landmarks[elbow], landmarks[wrist], FOREARM_SPAN)
        if upper is not None and fore is not None:
            yield seen, upper, fore


def arm_coverage(labels: np.ndarray, origin: tuple[int, int], landmarks: np.ndarray, visibility: np.ndarray,
                 garment: Collection[int], skin: int) -> list[ArmCoverage]:
    """Coverage of each visible arm by any of the `garment` classes. labels: class map of a frame region
    whose top-left frame pixel is `origin` (x, y); landmarks: 33 x 2 frame pixels; visibility: 33
    probabilities."""
    classes = np.asarray(list(garment))
    return [ArmCoverage(float(np.isin(upper, classes).mean()), float(np.mean(upper == skin)),
                        float(np.isin(fore, classes).mean()), float(np.mean(fore == skin)), seen)
            for seen, upper, fore in _visible_arms(labels, origin, landmarks, visibility)]


def sleeve_owner(labels: np.ndarray, origin: tuple[int, int], landmarks: np.ndarray, visibility: np.ndarray,
                 garment: Collection[int]) -> int | None:
    """The `garment` class seen most along the arms: the outermost sleeve, when sleeves are covered."""
    counts: Counter[int] = Counter()
    for _, upper, fore in _visible_arms(labels, origin, landmarks, visibility):
        counts.update(int(v) for v in np.concatenate([upper, fore]) if v in garment)
    return counts.most_common(1)[0][0] if counts else None


def sleeve_length(arms: list[ArmCoverage]) -> tuple[str, float] | None:
    """("sleeveless" | "short" | "long", confidence) from the arms' coverage; None when no arm decides."""
    votes: dict[str, float] = {}
    for arm in arms:
        if arm.fore_garment >= DECISIVE_SHARE:
            label, strength = "long", arm.fore_garment
        elif arm.upper_garment >= DECISIVE_SHARE and arm.fore_skin >= DECISIVE_SHARE:
            label, strength = "short", min(arm.upper_garment, arm.fore_skin)
        elif arm.upper_skin >= DECISIVE_SHARE:
            label, strength = "sleeveless", arm.upper_skin
        else:
            continue
        votes[label] = votes.get(label, 0.0) + strength * arm.visibility
    if not votes:
        return None
    label = max(votes, key=lambda name: votes[name])
    # each visible arm adds at most 1: two clear, agreeing arms give high confidence, disagreement less
    confidence = votes[label] / len(arms)
    return label, float(min(1.0, max(0.0, confidence)))

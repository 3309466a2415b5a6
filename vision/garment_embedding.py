"""A garment's embedding: what it looks like, what it is and its colour, as one unit vector.

"Find this outfit" compares garments by the dot product of these vectors. Three parts, each a unit
vector, are joined with fixed weights, so the cosine of two embeddings is the weighted sum of the
parts' cosines:

- appearance: the garment crop's pooled EfficientNet-Lite features (vision/backbone.py), the very
  features the garment heads classify, so ingest computes nothing more per garment. The 1280
  non-negative activations are square-rooted (Hellinger: a few large activations no longer drown the
  rest), centred on their own mean (all-positive vectors are all alike to a cosine; centred, it is
  their correlation) and reduced to 128 values by a fixed Gaussian random projection (Johnson-
  Lindenstrauss: cosines survive to a few hundredths, at a tenth of the bytes).
- category: the garment's category label spread over the vocabulary by its calibrated alternatives
  (a 60 % t-shirt / 30 % shirt is close to a shirt).
- colour: the colour namer's pixel shares (the colour label's alternatives) squared, so "the same
  jacket in red" is not "the same jacket". Squared, the dominant colour (the label a user sees)
  outweighs the minor ones (shadows, a collar, a print's second colour): on the CCP training photos
  the share of a garment's 10 nearest with its colour label went from 0.65 with square roots
  (distribution overlap) to 0.89, the share with its category from 0.53 to 0.52
  (docs/similar-search.md; bench/similar_embedding_experiments.py).

Garments the backbone does not see at ingest (shoes, bags, hats) get no embedding. The projection
is drawn from a seeded generator; its digest is part of the version, so a numpy that drew other
numbers would re-ingest rather than mix two spaces.
"""

from __future__ import annotations

import hashlib

import numpy as np

from labels import Embedding, Garment, Label, RuleSet
from labels.vocabulary import COLORS, GARMENT_CATEGORIES

APPEARANCE_DIM = 128
FEATURE_DIM = 1280
_SEED = 17
# Weights of the parts (they sum to 1: the cosine of two embeddings is the weighted mean of the parts').
APPEARANCE_WEIGHT = 0.3
CATEGORY_WEIGHT = 0.3
COLOR_WEIGHT = 0.4
COLOR_POWER = 2.0  # the colour part is the shares to this power (see above)

_PROJECTION = (np.random.default_rng(_SEED).standard_normal((FEATURE_DIM, APPEARANCE_DIM))
               / np.sqrt(APPEARANCE_DIM)).astype(np.float32)
_DIGEST = hashlib.sha256(_PROJECTION.tobytes()).hexdigest()[:8]
DIM = APPEARANCE_DIM + len(GARMENT_CATEGORIES) + len(COLORS)


def embedder(backbone_version: str) -> RuleSet:
    """The embedding's provenance: the backbone's version, the projection, the part weights and the
    colour part's power."""
    weights = f"{APPEARANCE_WEIGHT:g}-{CATEGORY_WEIGHT:g}-{COLOR_WEIGHT:g}"
    return RuleSet("garment-embedding",
                   f"{backbone_version}+proj{APPEARANCE_DIM}-{_DIGEST}+w{weights}+cp{COLOR_POWER:g}")


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def appearance(features: np.ndarray) -> np.ndarray:
    """(1280,) pooled backbone features -> the (128,) unit appearance part."""
    f = np.sqrt(np.maximum(np.asarray(features, dtype=np.float32).ravel(), 0.0))
    if f.size != FEATURE_DIM:
        raise ValueError(f"expected {FEATURE_DIM} backbone features, got {f.size}")
    return _unit((f - f.mean()) @ _PROJECTION)


def shares(label: Label | None, vocabulary: tuple[str, ...]) -> np.ndarray:
    """A label's probabilities over the vocabulary: its alternatives, else its value at its confidence
    (all zero without a label; the value alone when no alternative is a vocabulary word)."""
    v = np.zeros(len(vocabulary), dtype=np.float32)
    if label is None:
        return v
    pairs = [(a.value, a.probability) for a in label.alternatives] or [(label.value, label.confidence)]
    for value, p in pairs:
        if value in vocabulary:
            v[vocabulary.index(value)] += p
    if not v.any() and label.value in vocabulary:
        v[vocabulary.index(label.value)] = 1.0
    return v


def color_part(color: np.ndarray) -> np.ndarray:
    """Colour shares over the vocabulary -> the unit colour part."""
    return _unit(np.power(np.maximum(np.asarray(color, dtype=np.float32), 0.0), COLOR_POWER))


def vector(features: np.ndarray, category: np.ndarray, color: np.ndarray) -> np.ndarray:
    """The float unit embedding from its parts: crop features, category probabilities over the
    vocabulary and colour shares (`shares`)."""
    parts = [np.sqrt(APPEARANCE_WEIGHT) * appearance(features),
             np.sqrt(CATEGORY_WEIGHT) * _unit(np.asarray(category, dtype=np.float32)),
             np.sqrt(COLOR_WEIGHT) * color_part(color)]
    return _unit(np.concatenate(parts))


def garment_vector(features: np.ndarray, garment: Garment) -> np.ndarray:
    """The float unit embedding of a garment from its crop's features and its labels."""
    return vector(features, shares(garment.category, tuple(GARMENT_CATEGORIES)), shares(garment.color, COLORS))


def embed(features: np.ndarray, garment: Garment, provenance: RuleSet) -> Embedding:
    return Embedding.made_by(provenance, garment_vector(features, garment))

"""The one set of label types shared by vision stages, the index, the review page and export.

Every label carries a confidence in [0, 1] and the model (name and version) that made it;
a human correction is a label whose model is `human:<reviewer>`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Literal, NamedTuple, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator


class Provenance(Protocol):
    """What made a label: a manifest record (`configs.manifest.ModelRecord`) or a `RuleSet`."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...


class RuleSet(NamedTuple):
    """The provenance of labels made by rules rather than by a model in the manifest (colour names)."""

    name: str
    version: str


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Box(_Record):
    """Pixel box in the coordinates of the frame as stored (after rotation and scaling)."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return self.x1, self.y1, self.x2, self.y2

    @property
    def width(self) -> float:
        return max(self.x2 - self.x1, 0.0)

    @property
    def height(self) -> float:
        return max(self.y2 - self.y1, 0.0)

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2

    def contains(self, x: float, y: float) -> bool:
        return self.x1 <= x <= self.x2 and self.y1 <= y <= self.y2

    def iou(self, other: Box) -> float:
        """Intersection over union, 0.0 for boxes that do not overlap (or have no area)."""
        w = min(self.x2, other.x2) - max(self.x1, other.x1)
        h = min(self.y2, other.y2) - max(self.y1, other.y1)
        if w <= 0 or h <= 0:
            return 0.0
        inter = w * h
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0


class Mask(_Record):
    """Binary mask as COCO-style uncompressed run lengths, column-major, starting with a 0-run."""

    height: int
    width: int
    counts: list[int]


class Alternative(_Record):
    """A value the model also considered for a label, with its calibrated probability."""

    value: str
    probability: float = Field(ge=0.0, le=1.0)


class Label(_Record):
    value: str
    confidence: float = Field(ge=0.0, le=1.0)
    model: str
    model_version: str
    reviewed_by: str | None = Field(None, description="the reviewer who accepted or made it (indexer/review.py)")
    alternatives: list[Alternative] = Field(
        default_factory=list,
        description="the model's most probable values, best first (the label's own value among them), with "
                    "calibrated probabilities (for colour names, the shares of the garment's pixels); empty "
                    "for human labels")

    @classmethod
    def made_by(cls, model: Provenance, value: str, confidence: float,
                alternatives: Sequence[tuple[str, float]] = ()) -> Label:
        """A machine label: the confidence (and the alternatives' probabilities) clamped into [0, 1]
        (model scores overshoot by rounding), the provenance taken from the model's record."""
        return cls(value=value, confidence=_unit(confidence), model=model.name, model_version=model.version,
                   alternatives=[Alternative(value=v, probability=_unit(p)) for v, p in alternatives])


def _unit(value: float) -> float:
    return min(1.0, max(0.0, float(value)))


class Embedding(_Record):
    """A garment's appearance as a unit vector, for "find this outfit" (vision/garment_embedding.py).

    Stored int8 (base64), scaled so the largest component is 127: the scale needs no field because
    every use renormalises, and int8 keeps a 1M-garment index at a few hundred MB. Two vectors compare
    by their dot product (cosine similarity); only vectors of the same model and version compare.
    """

    model: str
    model_version: str
    dim: int = Field(ge=1)
    vector: str = Field(description="base64 of `dim` int8 values")

    @field_validator("vector")
    @classmethod
    def _decodes(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as error:
            raise ValueError(f"embedding vector is not base64: {error}") from None
        return value

    @classmethod
    def made_by(cls, model: Provenance, vector: np.ndarray) -> Embedding:
        """Quantise a float vector (any scale, not all zero) to the stored form."""
        v = np.asarray(vector, dtype=np.float32).ravel()
        peak = float(np.abs(v).max()) if v.size else 0.0
        if not np.isfinite(peak) or peak == 0.0:
            raise ValueError("an embedding needs a finite, non-zero vector")
        q = np.clip(np.rint(v / peak * 127.0), -127, 127).astype(np.int8)
        return cls(model=model.name, model_version=model.version, dim=int(v.size),
                   vector=base64.b64encode(q.tobytes()).decode("ascii"))

    def unit(self) -> np.ndarray:
        """The vector as float32 with L2 norm 1."""
        v = np.frombuffer(base64.b64decode(self.vector), dtype=np.int8).astype(np.float32)
        if v.size != self.dim:
            raise ValueError(f"embedding holds {v.size} values, says {self.dim}")
        norm = float(np.linalg.norm(v))
        return v / norm if norm > 0 else v

    def same_space(self, other: Embedding) -> bool:
        return (self.model, self.model_version, self.dim) == (other.model, other.model_version, other.dim)


class Garment(_Record):
    category: Label
    box: Box
    mask: Mask | None = None
    color: Label | None = None
    secondary_color: Label | None = None
    pattern: Label | None = None
    sleeve: Label | None = None
    embedding: Embedding | None = Field(None, description="appearance and colour, for similar-garment search")


class Face(_Record):
    detection: Label
    box: Box
    expression: Label | None = None


class Person(_Record):
    detection: Label
    box: Box
    mask: Mask | None = None
    garments: list[Garment] = []
    face: Face | None = None


SampleReason = Literal["rate", "shot", "image"]


class FrameLabels(_Record):
    """One sampled frame and everything the vision stages found in it."""

    frame_id: str
    media_id: str
    timestamp: float = Field(ge=0.0, description="presentation time in seconds from the media's start")
    reason: SampleReason
    width: int
    height: int
    persons: list[Person] = []
    reviewed_by: str | None = Field(None, description="who accepted the whole frame as it is, or first removed a "
                                                      "label from it (indexer/review.py)")

    @property
    def garment_count(self) -> int:
        return sum(len(p.garments) for p in self.persons)

"""The one set of label types shared by vision stages, the index, the review page and export.

Every label carries a confidence in [0, 1] and the model (name and version) that made it;
a human correction is a label whose model is `human:<reviewer>`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Box(_Record):
    """Pixel box in the coordinates of the frame as stored (after rotation and scaling)."""

    x1: float
    y1: float
    x2: float
    y2: float


class Mask(_Record):
    """Binary mask as COCO-style uncompressed run lengths, column-major, starting with a 0-run."""

    height: int
    width: int
    counts: list[int]


class Label(_Record):
    value: str
    confidence: float = Field(ge=0.0, le=1.0)
    model: str
    model_version: str
    reviewed_by: str | None = Field(None, description="the reviewer who accepted or made it (indexer/review.py)")


class Garment(_Record):
    category: Label
    box: Box
    mask: Mask | None = None
    color: Label | None = None
    secondary_color: Label | None = None
    pattern: Label | None = None
    sleeve: Label | None = None


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
    reviewed_by: str | None = Field(None, description="who accepted the whole frame as it is (indexer/review.py)")

    @property
    def garment_count(self) -> int:
        return sum(len(p.garments) for p in self.persons)

"""The shape every vision stage has: a batch of frames in, the same frames with more labels out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from labels import FrameLabels


@dataclass
class Frame:
    """A decoded frame (RGB, uint8, HxWx3) and its labels so far."""

    image: np.ndarray
    labels: FrameLabels

    @classmethod
    def of_photo(cls, image: np.ndarray, name: str = "photo", media_id: str | None = None) -> "Frame":
        """A frame for a still image outside ingest (evaluations, benchmarks): no labels yet."""
        return cls(image, FrameLabels(frame_id=name, media_id=media_id or name, timestamp=0.0, reason="image",
                                      width=image.shape[1], height=image.shape[0]))


class Stage(ABC):
    """Built once per worker (models load in __init__), then called on batches of frames."""

    name: str
    model_version: str

    @abstractmethod
    def __call__(self, frames: list[Frame]) -> list[Frame]:
        """Add this stage's labels to each frame's labels and return the frames."""

"""The shape every vision stage has: a batch of frames in, the same frames with more labels out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from vision.labels import FrameLabels


@dataclass
class Frame:
    """A decoded frame (RGB, uint8, HxWx3) and its labels so far."""

    image: np.ndarray
    labels: FrameLabels


class Stage(ABC):
    """Built once per worker (models load in __init__), then called on batches of frames."""

    name: str
    model_version: str

    @abstractmethod
    def __call__(self, frames: list[Frame]) -> list[Frame]:
        """Add this stage's labels to each frame's labels and return the frames."""

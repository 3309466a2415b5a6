"""The shape every vision stage has: a batch of frames in, the same frames with more labels out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from configs import Settings
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
    """Built once per worker (models load when it is built), then called on batches of frames.

    Built after detectron2's `from_config` habit: `from_settings(settings)` is how the registry builds
    a stage (it resolves the manifest records, model files, device and thresholds the settings name);
    `version(settings)` is the stage's model version read from the configured manifest without loading
    weights (it goes into the pipeline version); models are built from their records by
    `vision.model_files.build_model`, which honours each record's `entry_point`.
    """

    name: str
    model_version: str  # of the records actually used: equals version(settings) of the settings it was built from

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> "Stage":
        build: Callable[..., Stage] = cls  # a stage class takes the settings first, then its options
        return build(settings, **options)

    @classmethod
    @abstractmethod
    def version(cls, settings: Settings) -> str:
        """The model version of the stage's labels under these settings, without loading any weights."""

    @abstractmethod
    def __call__(self, frames: list[Frame]) -> list[Frame]:
        """Add this stage's labels to each frame's labels and return the frames."""

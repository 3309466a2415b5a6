"""A stage that detects nothing, so ingestion can run before (or without) any vision model."""

from __future__ import annotations

from configs import Settings
from vision import versions
from vision.stage import Frame, Stage


class PassThroughStage(Stage):
    name = "pass_through"
    model_version = "0"

    def __init__(self, settings: Settings | None = None):
        pass

    @classmethod
    def version(cls, settings: Settings) -> str:
        return versions.pass_through(settings)

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        return frames

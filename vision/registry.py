"""Config names a stage, this lookup builds it (stages are imported lazily: some need torch)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from configs import Settings
from vision import versions
from vision.stage import Stage

# name -> "module:Class"; the registry builds a stage with `Class.from_settings(settings)`.
STAGES: dict[str, str] = {
    "pass_through": "vision.pass_through:PassThroughStage",
    "person_detection": "vision.person_detection:PersonDetectionStage",
    "garments": "vision.garments:GarmentStage",
    "face_expression": "vision.face_expression:FaceExpressionStage",
}


# name -> the stage's version, told without importing it (vision/versions.py)
VERSIONS: dict[str, Callable[[Settings], str]] = {
    "pass_through": versions.pass_through,
    "person_detection": versions.person_detection,
    "garments": versions.garments,
    "face_expression": versions.face_expression,
}


class UnknownStageError(ValueError):
    pass


def _stage_class(name: str) -> type[Stage]:
    try:
        target = STAGES[name]
    except KeyError:
        raise UnknownStageError(
            f"vision.stages names unknown stage {name!r}; known stages: {', '.join(sorted(STAGES))}"
        ) from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def build_stages(settings: Settings) -> list[Stage]:
    stages = []
    for name in settings.vision.stages:
        stages.append(_stage_class(name).from_settings(settings))
    return stages


def run_stages(stages: list[Stage], frames):
    for stage in stages:
        frames = stage(frames)
    return frames


def stages_version(stages_names: list[str], settings: Settings | None = None) -> str:
    """Part of the pipeline version: which stages run, and each one's model version, read from the
    manifest the settings name (the bundled one by default) without loading any model."""
    settings = settings or Settings()
    unknown = [name for name in stages_names if name not in VERSIONS]
    if unknown:
        _stage_class(unknown[0])  # raises UnknownStageError, naming the known stages
    return ",".join(f"{name}@{VERSIONS[name](settings)}" for name in stages_names)

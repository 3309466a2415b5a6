"""Run the evaluations over a folder of images: what `vestis eval parsing|attributes` calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from configs import Settings
from vision.evaluation.attributes import AttributeScores, read_labels
from vision.evaluation.parsing import ParsingScores
from vision.garment_parser import PARSER_CLASSES
from vision.stage import Frame
from vision.training.ccp import CCP_TO_PARSER

Progress = Callable[[int, int], None]


def _load_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except OSError as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from None


def label_names(path: Path) -> list[str]:
    """Class names of the mask pixel values: an annotations.json with `label_names`, or one name per line."""
    text = path.read_text()
    if path.suffix == ".json":
        names = json.loads(text).get("label_names")
        if not isinstance(names, list):
            raise ValueError(f"{path}: no 'label_names' list")
        return names
    return [line.strip() for line in text.splitlines() if line.strip()]


def evaluate_parsing(settings: Settings, images: Path, masks: Path, labels: Path, holdout_every: int | None = None,
                     progress: Progress | None = None, level: str = "garments") -> dict:
    """Per-class IoU over image/mask pairs matched by file stem. holdout_every=N: only every N-th pair
    (sorted by name, starting with the first): the garment parser's validation split on CCP.
    level: "garments" scores the garment stage's output, "parser" the parser's own map
    (vision/evaluation/parsing.py)."""
    from vision.evaluation.parsing import garment_label_map, merged_label_map
    from vision.garments import GarmentStage
    from vision.person_detection import PersonDetectionStage

    if level not in ("garments", "parser"):
        raise ValueError(f"level must be 'garments' or 'parser', got {level!r}")
    names = label_names(labels)
    lookup = np.array([PARSER_CLASSES.index(CCP_TO_PARSER.get(n, "other")) for n in names], dtype=np.uint8)
    mask_files = {p.stem: p for p in masks.glob("*.png")}
    pairs = sorted((p, mask_files[p.stem]) for p in images.iterdir()
                   if p.suffix.lower() in {".jpg", ".jpeg", ".png"} and p.stem in mask_files)
    if not pairs:
        raise ValueError(f"no image in {images} has a mask of the same name in {masks}")
    if holdout_every:
        pairs = pairs[::holdout_every]
    detector = PersonDetectionStage(settings)
    garments = GarmentStage(settings)
    scores = ParsingScores()
    for k, (image_path, mask_path) in enumerate(pairs):
        image = _load_rgb(image_path)
        raw = np.asarray(Image.open(mask_path))
        if raw.max() >= len(lookup):
            raise ValueError(f"{mask_path}: pixel value {raw.max()} has no name in {labels}")
        [frame] = detector([Frame.of_photo(image, image_path.stem)])
        persons = frame.labels.persons
        parses = garments.parser.parse(image, [p.box.xyxy for p in persons])
        predicted = merged_label_map(parses, *image.shape[:2])
        if level == "garments":
            garments.describe(frame, persons, parses)
            predicted = garment_label_map(predicted, frame.labels)
        scores.images_without_person += not persons
        scores.add(predicted, lookup[raw])
        if progress:
            progress(k + 1, len(pairs))
    return {"level": level, **scores.report()}


def evaluate_attributes(settings: Settings, images: Path, labels: Path, progress: Progress | None = None) -> dict:
    from vision.garments import GarmentStage
    from vision.person_detection import PersonDetectionStage

    rows = read_labels(labels)
    missing = [r["image"] for r in rows if not (images / r["image"]).is_file()]
    if missing:
        raise ValueError(f"{len(missing)} labelled images are not in {images}, e.g. {missing[0]}")
    stages = [PersonDetectionStage(settings), GarmentStage(settings)]
    scores = AttributeScores()
    for k, row in enumerate(rows):
        frames = [Frame.of_photo(_load_rgb(images / row["image"]), row["image"])]
        for stage in stages:
            frames = stage(frames)
        scores.add_image(row, frames[0].labels)
        if progress:
            progress(k + 1, len(rows))
    return scores.report()

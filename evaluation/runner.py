"""Run the evaluations over a folder of images: what `vestis eval parsing|attributes` calls."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from configs import Settings
from labels import FrameLabels
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


def evaluate_attributes(settings: Settings, images: Path, labels: Path, progress: Progress | None = None,
                        cache: Path | None = None) -> dict:
    """Upper-garment attributes of each labelled photo against its labels (vision/evaluation/attributes.py).

    cache: a JSON file that keeps each photo's labels. A photo whose bytes and whose detection and
    garment models (all but the colour rules) are those of the file is not run through the stages
    again: its garments' colours are named anew from the photo (vision.garments.rename_colors),
    so a change to the colour rules is measured in seconds. The file is rewritten at the end, with
    the photos it held that this run did not label.
    """
    from vision import versions

    rows = read_labels(labels)
    missing = [r["image"] for r in rows if not (images / r["image"]).is_file()]
    if missing:
        raise ValueError(f"{len(missing)} labelled images are not in {images}, e.g. {missing[0]}")
    key = "+".join([versions.person_detection(settings), versions.garments(settings, colors=False)])
    stored = _read_label_cache(cache, key) if cache else {}
    kept: dict[str, dict] = {}
    stages: list | None = None  # built on the first photo the cache does not hold
    scores = AttributeScores()
    reused = 0
    for k, row in enumerate(rows):
        path = images / row["image"]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        image = _load_rgb(path)
        entry = stored.get(row["image"])
        if entry is not None and entry.get("sha256") == digest:
            from vision.garments import rename_colors

            frame_labels = FrameLabels.model_validate(entry["labels"])
            rename_colors(image, frame_labels.persons)
            reused += 1
        else:
            if stages is None:
                from vision.garments import GarmentStage
                from vision.person_detection import PersonDetectionStage

                stages = [PersonDetectionStage(settings), GarmentStage(settings)]
            frames = [Frame.of_photo(image, row["image"])]
            for stage in stages:
                frames = stage(frames)
            frame_labels = frames[0].labels
        kept[row["image"]] = {"sha256": digest, "labels": frame_labels.model_dump(mode="json")}
        scores.add_image(row, frame_labels)
        if progress:
            progress(k + 1, len(rows))
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        # photos of the file that this run did not label (another subset of the set) are kept too
        cache.write_text(json.dumps({"version": key, "photos": {**stored, **kept}}))
    report = scores.report()
    if cache:
        report["cache"] = {"path": str(cache), "reused": reused, "labelled": len(rows) - reused}
    return report


def _read_label_cache(path: Path, key: str) -> dict:
    """The cached photos of a label cache written for these models; {} when absent or for other models."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the label cache {path}: {exc} (delete it to start afresh)") from None
    if not isinstance(data, dict) or not isinstance(data.get("photos"), dict):
        raise ValueError(f"{path} is not a label cache of vestis eval attributes (delete it to start afresh)")
    return data["photos"] if data.get("version") == key else {}

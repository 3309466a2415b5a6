"""Garment stage: each detected person's garments with category, mask, colours, pattern and sleeve length.

Runs after person detection. All persons of a batch of frames are parsed together
(vision/garment_parser.py); per person, the parse is read inside the person's box (a little
enlarged), so a neighbour inside the crop window does not lend this person a garment. Each garment
category with enough pixels becomes one Garment: its pixels are the mask, their mean class
probability the category confidence. Then, on the garment's own pixels: colour names
(vision/colors.py), pattern (vision/patterns.py) and, for tops, outerwear and dresses, sleeve length
from the arms' landmarks (vision/sleeves.py). A top (t-shirt, shirt/blouse, sweater) found
sleeveless is named "tank top", the one category the parser has too few examples to learn.

Model card: docs/models/garment-parsing.md
"""

from __future__ import annotations

import numpy as np

from configs import Settings
from configs.manifest import Manifest, load_manifest
from vision import colors, patterns
from vision.device import resolve_device
from vision.garment_parser import PARSER_CLASSES
from vision.garment_pixels import TooFewPixels
from labels import Box, Garment, Label, Person
from labels.masks import encode_mask
from vision.model_files import build_model, model_files
from vision.pose import MODEL_NAME as POSE_MODEL
from vision.pose import PoseLandmarker
from vision.sleeves import arm_coverage, sleeve_length, sleeve_owner
from vision.stage import Frame, Stage
from labels.vocabulary import GARMENT_CATEGORIES, has_sleeves

HEAD_MODEL = "garment-parser"
BOX_MARGIN = 0.08  # the person's box is enlarged this much (each side) before reading the parse
MIN_GARMENT_SHARE = 0.004  # of the person box's area: smaller regions are parsing noise
MIN_GARMENT_PIXELS = 60
PARSE_CHUNK = 16  # person crops per forward pass
SKIN = PARSER_CLASSES.index("skin")
SLEEVED = frozenset(i for i, c in enumerate(PARSER_CLASSES) if c in GARMENT_CATEGORIES and has_sleeves(c))
TANK_TOP_FROM = {"t-shirt", "shirt/blouse", "sweater"}
NO_PATTERN = {"shoes"}  # too small and too shiny to tell a pattern from highlights

COLOR_MODEL, COLOR_VERSION = "color-namer", "oklab-shares-1"
PATTERN_MODEL, PATTERN_VERSION = patterns.model_version().split("@")
SLEEVE_MODEL, SLEEVE_VERSION = "sleeve-geometry", "2"


def _stage_version(manifest: Manifest) -> str:
    """Every model and rule set behind the stage's labels: a change to any one re-ingests."""
    return (f"{HEAD_MODEL}@{manifest.get(HEAD_MODEL).version}+{POSE_MODEL}@{manifest.get(POSE_MODEL).version}"
            f"+{COLOR_VERSION}+{PATTERN_MODEL}-{PATTERN_VERSION}+{SLEEVE_MODEL}-{SLEEVE_VERSION}")


class GarmentStage(Stage):
    name = "garments"

    @classmethod
    def version(cls, settings: Settings) -> str:
        return _stage_version(load_manifest(settings.models.manifest))

    def __init__(self, settings: Settings):
        manifest = load_manifest(settings.models.manifest)
        self.pose_record = manifest.get(POSE_MODEL)
        self.head_record = manifest.get(HEAD_MODEL)
        self.model_version = _stage_version(manifest)
        self.device = resolve_device(settings.vision.device)
        pose = PoseLandmarker.from_record(self.pose_record, model_files(self.pose_record, settings.models.cache_dir))
        head_files = model_files(self.head_record, settings.models.cache_dir)
        self.parser = build_model(self.head_record, head_files, pose=pose).to(self.device).eval()
        if self.device.type == "cuda":
            self.parser = self.parser.half()

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        jobs = [(frame, person) for frame in frames for person in frame.labels.persons]
        for start in range(0, len(jobs), PARSE_CHUNK):
            chunk = jobs[start:start + PARSE_CHUNK]
            by_frame: dict[int, list[int]] = {}
            for k, (frame, _) in enumerate(chunk):
                by_frame.setdefault(id(frame), []).append(k)
            parses = [None] * len(chunk)
            for members in by_frame.values():
                frame = chunk[members[0]][0]
                boxes = [_box_tuple(chunk[k][1].box) for k in members]
                for k, parse in zip(members, self.parser.parse(frame.image, boxes)):
                    parses[k] = parse
            for (frame, person), parse in zip(chunk, parses):
                self._describe(frame, person, parse)
        return frames

    def _describe(self, frame: Frame, person: Person, parse) -> None:
        height, width = frame.image.shape[:2]
        x0, y0, x1, y1 = _enlarged(person.box, width, height)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return
        labels, confidence = parse.region_labels(x0, y0, x1, y1)
        worn = labels > 0
        if worn.any():
            person.mask = encode_mask(_paste(worn, x0, y0, width, height))
        min_pixels = max(MIN_GARMENT_PIXELS, MIN_GARMENT_SHARE * (x1 - x0) * (y1 - y0))
        region_rgb = frame.image[y0:y1, x0:x1]
        garments: dict[int, Garment] = {}
        sizes: dict[int, int] = {}
        for class_index, category in enumerate(PARSER_CLASSES):
            if category not in GARMENT_CATEGORIES:
                continue
            pixels = labels == class_index
            count = int(pixels.sum())
            if count < min_pixels:
                continue
            ys, xs = np.nonzero(pixels)
            garment = Garment(
                category=Label(value=category, confidence=_unit(confidence[pixels].mean()),
                               model=HEAD_MODEL, model_version=self.head_record.version),
                box=Box(x1=float(x0 + xs.min()), y1=float(y0 + ys.min()),
                        x2=float(x0 + xs.max() + 1), y2=float(y0 + ys.max() + 1)),
                mask=encode_mask(_paste(pixels, x0, y0, width, height)),
            )
            self._colors(garment, region_rgb, pixels)
            if category not in NO_PATTERN:
                self._pattern(garment, region_rgb, pixels)
            garments[class_index] = garment
            sizes[class_index] = count
        self._sleeve(garments, sizes, labels, (x0, y0), parse)
        person.garments = list(garments.values())

    @staticmethod
    def _colors(garment: Garment, rgb: np.ndarray, pixels: np.ndarray) -> None:
        try:
            named = colors.name_colors(rgb, pixels)
        except TooFewPixels:
            return
        garment.color = Label(value=named.dominant, confidence=_unit(named.dominant_confidence),
                              model=COLOR_MODEL, model_version=COLOR_VERSION)
        if named.secondary is not None:
            garment.secondary_color = Label(value=named.secondary, confidence=_unit(named.secondary_share),
                                            model=COLOR_MODEL, model_version=COLOR_VERSION)

    @staticmethod
    def _pattern(garment: Garment, rgb: np.ndarray, pixels: np.ndarray) -> None:
        try:
            result = patterns.classify_pattern(rgb, pixels)
        except TooFewPixels:
            return
        garment.pattern = Label(value=result.label, confidence=_unit(result.confidence),
                                model=PATTERN_MODEL, model_version=PATTERN_VERSION)

    @staticmethod
    def _sleeve(garments: dict[int, Garment], sizes: dict[int, int], labels: np.ndarray, origin: tuple[int, int],
                parse) -> None:
        """One sleeve length per person, given to the garment whose sleeves cover the arms (the
        outermost) and to the largest top. Any sleeved class counts as covering: the parser often
        gives one garment's sleeves a neighbouring category."""
        sleeved = {k: size for k, size in sizes.items() if k in SLEEVED}
        if not sleeved:
            return
        found = sleeve_length(arm_coverage(labels, origin, parse.landmarks, parse.visibility, SLEEVED, SKIN))
        if found is None:
            return
        sleeve, confidence = found
        owner = sleeve_owner(labels, origin, parse.landmarks, parse.visibility, SLEEVED) if sleeve != "sleeveless" else None
        largest = max(sleeved, key=sleeved.get)
        # the largest top gets it too: the parser often splits one garment into neighbouring categories
        for k in {largest, owner} & set(sleeved):
            garment = garments[k]
            garment.sleeve = Label(value=sleeve, confidence=_unit(confidence), model=SLEEVE_MODEL,
                                   model_version=SLEEVE_VERSION)
            if sleeve == "sleeveless" and garment.category.value in TANK_TOP_FROM:
                garment.category = garment.category.model_copy(update={"value": "tank top"})


def _box_tuple(box: Box) -> tuple[float, float, float, float]:
    return box.x1, box.y1, box.x2, box.y2


def _enlarged(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    dx, dy = BOX_MARGIN * (box.x2 - box.x1), BOX_MARGIN * (box.y2 - box.y1)
    return (max(0, int(np.floor(box.x1 - dx))), max(0, int(np.floor(box.y1 - dy))),
            min(width, int(np.ceil(box.x2 + dx))), min(height, int(np.ceil(box.y2 + dy))))


def _paste(region: np.ndarray, x0: int, y0: int, width: int, height: int) -> np.ndarray:
    full = np.zeros((height, width), dtype=bool)
    full[y0:y0 + region.shape[0], x0:x0 + region.shape[1]] = region
    return full


def _unit(value: float) -> float:
    return float(min(1.0, max(0.0, value)))


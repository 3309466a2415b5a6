"""Garment-parsing quality: per-class IoU of frame label maps against pixel masks.

Two levels. "parser": the parser's own map as it runs in ingest (the person detector's boxes, one
parse per person, the persons' maps merged by taking, per pixel, the most confident person).
"garments": what the garment stage outputs: the same map with each whole garment's pixels painted
with the category the stage gave it (the garment heads' for upper and lower garments), so a jacket
the parser split into coat, shirt and sweater pixels counts as the one jacket the user sees. IoU is
accumulated over the whole set (one confusion matrix), so large and small images weigh by their
pixels, as usual for mIoU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from labels import FrameLabels
from labels.masks import decode_mask
from vision.garment_parser import PARSER_CLASSES, GarmentParser, PersonParse
from vision.stage import Frame, Stage

# Stage categories that are not parser classes, as the masks' classes name them (a tank top is
# CCP's "top", which the parser's classes fold into shirt/blouse).
CATEGORY_AS_CLASS = {"tank top": "shirt/blouse"}


def person_boxes(detector: Stage, image: np.ndarray) -> list[tuple[float, float, float, float]]:
    """The person detector's boxes on one photo."""
    return [(p.box.x1, p.box.y1, p.box.x2, p.box.y2) for p in detector([Frame.of_photo(image)])[0].labels.persons]


def parse_photo(parser: GarmentParser, detector: Stage, image: np.ndarray) -> tuple[np.ndarray, int]:
    """The photo's class map as ingest would make it, and the number of persons found."""
    boxes = person_boxes(detector, image)
    return merged_label_map(parser.parse(image, boxes), *image.shape[:2]), len(boxes)


def merged_label_map(parses: list[PersonParse], height: int, width: int) -> np.ndarray:
    """One class per frame pixel over all persons; background where no person's window reaches."""
    labels = np.zeros((height, width), dtype=np.uint8)
    best = np.zeros((height, width), dtype=np.float32)
    for parse in parses:
        person_labels, confidence = parse.label_map(height, width)
        # a person's background must not paint over another person's garment
        take = (person_labels > 0) & (confidence > best)
        labels[take] = person_labels[take]
        best[take] = confidence[take]
    return labels


def garment_label_map(parser_map: np.ndarray, labels: FrameLabels) -> np.ndarray:
    """The parser's map with every garment the stage output painted with its category; persons in
    order of size, the largest last (in front), each person's garments in their order (an inner top
    after the outer layer it shows through)."""
    painted = parser_map.copy()
    persons = sorted(labels.persons, key=lambda p: p.box.area)
    for person in persons:
        for garment in person.garments:
            if garment.mask is None:
                continue
            category = CATEGORY_AS_CLASS.get(garment.category.value, garment.category.value)
            painted[decode_mask(garment.mask)] = PARSER_CLASSES.index(category)
    return painted


@dataclass
class ParsingScores:
    classes: tuple[str, ...] = PARSER_CLASSES
    confusion: np.ndarray = field(default_factory=lambda: np.zeros((len(PARSER_CLASSES),) * 2, dtype=np.int64))
    images: int = 0
    images_without_person: int = 0

    def add_photo(self, parser: GarmentParser, detector: Stage, image: np.ndarray, truth: np.ndarray) -> None:
        predicted, persons = parse_photo(parser, detector, image)
        self.images_without_person += persons == 0
        self.add(predicted, truth)

    def add(self, predicted: np.ndarray, truth: np.ndarray) -> None:
        if predicted.shape != truth.shape:
            raise ValueError(f"prediction {predicted.shape} and mask {truth.shape} differ in size")
        n = len(self.classes)
        self.confusion += np.bincount(truth.astype(np.int64).ravel() * n + predicted.ravel(),
                                      minlength=n * n).reshape(n, n)
        self.images += 1

    def iou(self) -> dict[str, float | None]:
        """IoU per class; None for a class absent from both truth and prediction."""
        tp = np.diag(self.confusion).astype(np.float64)
        union = self.confusion.sum(0) + self.confusion.sum(1) - tp
        return {c: (float(tp[i] / union[i]) if union[i] else None) for i, c in enumerate(self.classes)}

    def mean_iou(self, exclude: tuple[str, ...] = ()) -> float:
        values = [v for c, v in self.iou().items() if v is not None and c not in exclude]
        return float(np.mean(values)) if values else 0.0

    def pixel_accuracy(self) -> float:
        return float(np.trace(self.confusion) / max(1, self.confusion.sum()))

    def report(self) -> dict:
        return {
            "images": self.images,
            "images_without_person": self.images_without_person,
            "pixel_accuracy": self.pixel_accuracy(),
            "mean_iou": self.mean_iou(),
            "mean_iou_garments": self.mean_iou(exclude=("background", "skin", "hair", "other")),
            "iou": self.iou(),
        }

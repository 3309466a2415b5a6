"""Upper-garment attributes against the Clothing Attribute Dataset layout (Chen, Gallagher, Girod 2012).

labels.csv: one row per image with `category`, `sleevelength`, one-hot `pattern_*` columns and binary
colour columns; a blank cell means the annotators disagreed and is skipped, and so are the colour
cells of a row marked `many_colors` (they are all 0 there, whatever the garment's colours). The pipeline runs as in
ingest (person detection, then the garment stage); the main person is the largest box, and their
upper garment the outer layer if there is one, else the largest garment among tops and dresses.
Where no person, no upper garment or no sleeve label is found, the prediction counts as wrong (and is counted separately),
so the accuracy is over all labelled images, not over the easy ones.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labels import FrameLabels, Garment, Person
from labels.masks import decode_mask
from labels.vocabulary import garment_region

# Our words -> the data set's.
DATASET_CATEGORY = {"t-shirt": "t-shirt", "shirt/blouse": "shirt", "sweater": "sweater", "tank top": "tank top",
                    "coat/jacket": "outerwear", "suit": "suit", "dress": "dress"}
DATASET_SLEEVE = {"sleeveless": "no sleeves", "short": "short sleeves", "long": "long sleeves"}
DATASET_PATTERN = {"solid": "pattern_solid", "striped": "pattern_stripe", "plaid": "pattern_plaid",
                   "floral": "pattern_floral", "spotted": "pattern_spot", "graphics": "pattern_graphics"}
DATASET_COLORS = ("black", "white", "gray", "red", "yellow", "green", "cyan", "blue", "purple", "brown")
# The data set has no orange, pink or beige: they are scored as the nearest of its colours (its
# annotators called pink shirts purple, e.g. 000172; beige is light brown in the basic colour terms).
COLOR_FOLD = {"orange": "red", "pink": "purple", "beige": "brown"}
UPPER_REGIONS = {"upper", "outer", "full"}


def main_person(labels: FrameLabels) -> Person | None:
    """The person the photo is of: the largest box."""
    return max(labels.persons, key=lambda p: p.box.area, default=None)


def upper_garments(person: Person) -> list[Garment]:
    return [g for g in person.garments if garment_region(g.category.value) in UPPER_REGIONS]


def main_person_upper_garment(labels: FrameLabels) -> Garment | None:
    person = main_person(labels)
    if person is None:
        return None
    uppers = upper_garments(person)
    if not uppers:
        return None
    # The data set labels the garment a person is seen in: an outer layer over a top, whatever
    # shows more pixels (an open jacket over a shirt).
    outer = [g for g in uppers if garment_region(g.category.value) == "outer"]
    return max(outer or uppers, key=lambda g: int(decode_mask(g.mask).sum()) if g.mask else 0)


def predicted_colors(garment: Garment) -> set[str]:
    names = {label.value for label in (garment.color, garment.secondary_color) if label is not None}
    return {COLOR_FOLD.get(name, name) for name in names}


@dataclass
class AttributeScores:
    """Truth/prediction pairs per attribute (prediction None = nothing predicted)."""

    pairs: dict[str, list[tuple[str, str | None]]] = field(default_factory=dict)
    images: int = 0
    no_person: int = 0
    no_upper_garment: int = 0
    many_colors_skipped: int = 0

    def add(self, attribute: str, truth: str, predicted: str | None) -> None:
        self.pairs.setdefault(attribute, []).append((truth, predicted))

    def add_image(self, row: dict[str, str], labels: FrameLabels) -> None:
        self.images += 1
        if not labels.persons:
            self.no_person += 1
        garment = main_person_upper_garment(labels)
        if garment is None and labels.persons:
            self.no_upper_garment += 1
        if row.get("category"):
            self.add("category", row["category"], DATASET_CATEGORY.get(garment.category.value) if garment else None)
        if row.get("sleevelength"):
            sleeve = garment.sleeve.value if garment and garment.sleeve else None
            self.add("sleeve", row["sleevelength"], DATASET_SLEEVE.get(sleeve) if sleeve else None)
        on = [c for c in DATASET_PATTERN.values() if row.get(c) == "1"]
        if len(on) == 1:  # rows with no or several patterns marked are ambiguous
            pattern = garment.pattern.value if garment and garment.pattern else None
            self.add("pattern", on[0], DATASET_PATTERN.get(pattern) if pattern else None)
        # The data set's colours are those of the upper-body clothing: a white shirt under a black
        # jacket is marked black and white. So the colours of every upper-body garment count.
        colors: set[str] = set()
        person = main_person(labels)
        if garment is not None and person is not None:
            for worn in upper_garments(person):
                colors |= predicted_colors(worn)
        if row.get("many_colors") == "1":
            # A row is marked with one or two colours or with "many (>2) colours", never both: on a
            # many-colours row every colour cell is 0 (a black hoodie with a colourful print is
            # black 0), which says nothing about the colours it has. Those cells are not scored.
            self.many_colors_skipped += 1
            return
        for color in DATASET_COLORS:
            if row.get(color) in ("0", "1"):
                self.add(f"color:{color}", row[color], "1" if color in colors else "0")

    def report(self) -> dict:
        out: dict = {"images": self.images, "no_person": self.no_person, "no_upper_garment": self.no_upper_garment,
                     "many_colors_skipped": self.many_colors_skipped, "attributes": {}}
        for attribute, pairs in self.pairs.items():
            truth = [t for t, _ in pairs]
            pred = [p for _, p in pairs]
            accuracy = float(np.mean([t == p for t, p in pairs]))
            out["attributes"][attribute] = {
                "n": len(pairs), "accuracy": accuracy, "macro_f1": _macro_f1(truth, pred),
                "unpredicted": sum(p is None for p in pred),
                "majority_baseline": Counter(truth).most_common(1)[0][1] / len(truth),
            }
        for attribute, scores in out["attributes"].items():
            if attribute.startswith("color:"):  # does the garment have this colour: F1 of "yes"
                scores["f1"] = _f1_of(self.pairs[attribute], "1")
        colors = [v["accuracy"] for k, v in out["attributes"].items() if k.startswith("color:")]
        out["color_mean_accuracy"] = float(np.mean(colors)) if colors else None
        main = [out["attributes"][k]["accuracy"] for k in ("category", "sleeve", "pattern") if k in out["attributes"]]
        out["mean_accuracy"] = float(np.mean(main + colors)) if main or colors else None
        return out


def _f1_of(pairs: list[tuple[str, str | None]], positive: str) -> float:
    tp = sum(t == positive and p == positive for t, p in pairs)
    fp = sum(t != positive and p == positive for t, p in pairs)
    fn = sum(t == positive and p != positive for t, p in pairs)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def _macro_f1(truth: list[str], predicted: list[str | None]) -> float:
    scores = []
    for cls in sorted(set(truth)):
        tp = sum(t == cls and p == cls for t, p in zip(truth, predicted))
        fp = sum(t != cls and p == cls for t, p in zip(truth, predicted))
        fn = sum(t == cls and p != cls for t, p in zip(truth, predicted))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(scores))


def read_labels(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "image" not in rows[0]:
        raise ValueError(f"{path}: expected a CSV with an 'image' column (Clothing Attribute Dataset layout)")
    return rows


"""Measure the garment pattern classifier against the Clothing Attribute photos (attributes-dev).

    .venv/bin/python bench/pattern_attributes_eval.py [--images DIR] [--labels CSV] [--out JSON]
        [--provider torso-box | module:factory] [--threads 1]

Ground truth: the six pattern columns of labels.csv (the main person's upper garment). A photo
counts when exactly one of them is 1 (a blank, where annotators disagreed, is not a 1); photos
with none or several are skipped and counted. The garment's pixels come from a mask provider,
`rgb -> HxW bool mask | None`. Until garment segmentation lands, the default ("torso-box") is the
chest of the largest detected person: the middle 40% of the box's width, from 0.75 to 1.3 box
widths below its top (scaled by width, so a half-body photo and a full-body one both give the
chest; on the CCP photos 83% of that region is upper-garment pixels on average). The proxy lets
background, skin, ties and open jackets in, which a segmentation mask would not: the numbers are a
lower bound for the classifier. `--provider pkg.module:factory` swaps in another provider:
`factory(settings)` must return the callable.

Prints per-class precision/recall/F1, accuracy and macro-F1 next to the majority-class baseline
("solid" for every photo), and the confusion matrix; a photo without a mask (no person, or the
mask below the classifier's minimum) counts as a miss, in column "none".
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from configs import Settings
from vision.patterns import TooFewPixels, classify_pattern, model_version
from vision.person_detection import PersonDetectionStage
from vision.stage import Frame
from labels.vocabulary import PATTERNS

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA = REPO_ROOT.parent / "shared" / "data" / "attributes-dev"
# labels.csv column -> the Vestis pattern word.
COLUMNS = {
    "pattern_solid": "solid",
    "pattern_stripe": "striped",
    "pattern_plaid": "plaid",
    "pattern_floral": "floral",
    "pattern_spot": "spotted",
    "pattern_graphics": "graphics",
}
NONE = "none"

MaskProvider = Callable[[np.ndarray], "np.ndarray | None"]


class TorsoBoxProvider:
    """The chest region of the largest detected person (a stand-in for garment segmentation)."""

    X_MARGIN = 0.3  # of the box width, each side: arms and background stay out
    TOP, BOTTOM = 0.75, 1.3  # in box widths below the box top: below the chin, above the belt

    def __init__(self, settings: Settings):
        self.detector = PersonDetectionStage(settings)

    def __call__(self, rgb: np.ndarray) -> np.ndarray | None:
        h, w = rgb.shape[:2]
        persons = self.detector([Frame.of_photo(rgb)])[0].labels.persons
        if not persons:
            return None
        box = max(persons, key=lambda p: (p.box.x2 - p.box.x1) * (p.box.y2 - p.box.y1)).box
        width = box.x2 - box.x1
        x1, x2 = box.x1 + self.X_MARGIN * width, box.x2 - self.X_MARGIN * width
        y1, y2 = box.y1 + self.TOP * width, min(box.y1 + self.BOTTOM * width, box.y2)
        mask = np.zeros((h, w), dtype=bool)
        mask[max(int(y1), 0) : max(int(y2), 0), max(int(x1), 0) : max(int(x2), 0)] = True
        return mask if mask.any() else None


def build_provider(name: str, settings: Settings) -> MaskProvider:
    if name == "torso-box":
        return TorsoBoxProvider(settings)
    module, _, factory = name.partition(":")
    if not factory:
        raise SystemExit(f"--provider must be 'torso-box' or 'package.module:factory', got {name!r}")
    return getattr(importlib.import_module(module), factory)(settings)


def read_truth(labels: Path) -> tuple[dict[str, str], dict[str, int]]:
    """image -> pattern for photos with exactly one positive pattern column; counts of the skipped."""
    truth, skipped = {}, {"no positive pattern": 0, "several positive patterns": 0}
    with labels.open(newline="") as f:
        for row in csv.DictReader(f):
            positive = [word for column, word in COLUMNS.items() if row[column].strip() == "1"]
            if len(positive) == 1:
                truth[row["image"]] = positive[0]
            else:
                skipped["no positive pattern" if not positive else "several positive patterns"] += 1
    return truth, skipped


def scores(truth: list[str], predicted: list[str]) -> dict:
    per_class = {}
    for word in PATTERNS:
        tp = sum(t == word and p == word for t, p in zip(truth, predicted))
        n_pred = sum(p == word for p in predicted)
        n_true = sum(t == word for t in truth)
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_true if n_true else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[word] = {"precision": precision, "recall": recall, "f1": f1, "support": n_true, "predicted": n_pred}
    supported = [c for c in per_class.values() if c["support"]]
    return {
        "accuracy": sum(t == p for t, p in zip(truth, predicted)) / len(truth),
        "macro_f1": sum(c["f1"] for c in supported) / len(supported),
        "per_class": per_class,
    }


def confusion(truth: list[str], predicted: list[str]) -> list[list[int]]:
    columns = [*PATTERNS, NONE]
    matrix = [[0] * len(columns) for _ in PATTERNS]
    for t, p in zip(truth, predicted):
        matrix[PATTERNS.index(t)][columns.index(p)] += 1
    return matrix


def report(title: str, result: dict) -> None:
    print(f"\n{title}: accuracy {result['accuracy']:.3f}, macro-F1 {result['macro_f1']:.3f}")
    print(f"{'':>10} {'precision':>9} {'recall':>7} {'F1':>6} {'support':>8} {'predicted':>9}")
    for word, c in result["per_class"].items():
        print(f"{word:>10} {c['precision']:9.3f} {c['recall']:7.3f} {c['f1']:6.3f} {c['support']:8d} {c['predicted']:9d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=DATA / "images")
    parser.add_argument("--labels", type=Path, default=DATA / "labels.csv")
    parser.add_argument("--out", type=Path, default=None, help="write metrics and per-photo results as JSON")
    parser.add_argument("--provider", default="torso-box", help="'torso-box' or 'package.module:factory'")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    truth, skipped = read_truth(args.labels)
    provider = build_provider(args.provider, Settings(vision={"device": "cpu"}))
    photos, seconds = [], []
    for image in sorted(truth):
        rgb = np.asarray(Image.open(args.images / image).convert("RGB"))
        mask = provider(rgb)
        entry = {"image": image, "truth": truth[image], "predicted": NONE, "confidence": None, "scores": None}
        if mask is not None:
            start = time.perf_counter()
            try:
                result = classify_pattern(rgb, mask)
            except TooFewPixels:
                result = None
            seconds.append(time.perf_counter() - start)
            if result is not None:
                entry.update(predicted=result.label, confidence=result.confidence, scores=result.scores)
        photos.append(entry)

    truth_list = [p["truth"] for p in photos]
    predicted = [p["predicted"] for p in photos]
    ours = scores(truth_list, predicted)
    baseline = scores(truth_list, ["solid"] * len(photos))
    print(f"{model_version()} on {len(photos)} photos ({args.images}); skipped: "
          + ", ".join(f"{n} with {why}" for why, n in skipped.items()))
    print(f"mask provider: {args.provider}; no mask for {predicted.count(NONE)} photos; "
          f"classifier median {1000 * np.median(seconds):.1f} ms per garment")
    print("class balance: " + ", ".join(f"{w} {truth_list.count(w)}" for w in PATTERNS))
    report("classifier", ours)
    report("majority baseline (always 'solid')", baseline)
    print("\nconfusion matrix (rows truth, columns predicted):")
    columns = [*PATTERNS, NONE]
    print(" " * 10 + "".join(f"{c[:8]:>9}" for c in columns))
    matrix = confusion(truth_list, predicted)
    for word, row in zip(PATTERNS, matrix):
        print(f"{word:>10}" + "".join(f"{v:9d}" for v in row))

    if args.out:
        args.out.write_text(json.dumps({
            "model": model_version(),
            "provider": args.provider,
            "skipped": skipped,
            "classifier": ours,
            "majority_baseline": baseline,
            "confusion": {"rows": list(PATTERNS), "columns": columns, "matrix": matrix},
            "photos": photos,
        }, indent=2) + "\n")
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()

"""Training data for the garment heads: backbone features of garment crops with their true labels.

    python -m vision.training.garment_head_data --out /tmp/garment-head-features.pt
        [--data ../shared/data] [--limit N]

Three sources, all free to train on (see ../shared/data/README.md); the Clothing Attribute Dataset
is never read here:

- `ccp/` (704 street photos, pixel masks): the crop of the upper garment is the box of the true
  mask's upper-body garment pixels (`--ccp-boxes truth`, the default) or of the parse's, as at
  ingest (`--ccp-boxes parse`); its labels come from the true mask: the category covering the most
  upper-body pixels, except that an outer layer (coat, jacket, suit) covering a quarter of them
  wins, as the outermost garment is what a person is seen wearing; the sleeve length from the true
  mask along the arm landmarks of the person found and parsed as at ingest (vision/sleeves.py).
  Lower garments likewise. Every 5th photo (sorted by name) is held out, the parser's split.
- `ccp-tags/` (1,094 more CCP photos, image-level tags; only with `--tags`): the parse's crops,
  labelled from the tags where they name one upper (or lower) category without doubt; no sleeves.
- `clothing-dataset/` (5,398 garment photos, mostly flat or on hangers): the whole photo is the
  crop; categories and, where the category says it (t-shirt, long-sleeve, hoodie...), sleeves.
  One photo in `--clothing-every` (3) of those with a usable label.

Why these defaults (docs/models/garment-parsing.md): heads trained on true-mask CCP crops and a
third of the product photos, without ccp-tags, named the attributes-dev upper garments better (79
of 120 against 76) than the parse's crops with ccp-tags and every product photo; the true box is the
whole garment, where the parse's may cut it, and the tags' labels are image-level guesses.

Crops of worn garments are also taken mirrored. Features are stored in float16; each row keeps its
crop box, so another backbone can re-cut the same crops without parsing again.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from configs import Settings
from configs.manifest import load_manifest
from vision.backbone import GarmentBackbone
from vision.garment_heads import LOWER_CATEGORIES, SLEEVE_CLASSES, UPPER_CATEGORIES
from vision.garment_parser import PARSER_CLASSES
from labels import Box
from vision.garments import SKIN, SLEEVED, GarmentStage, pixel_box
from vision.model_files import model_files
from vision.person_detection import PersonDetectionStage
from vision.sleeves import arm_coverage, sleeve_length
from vision.training.ccp import CCP_TO_PARSER

REPO_ROOT = Path(__file__).resolve().parents[2]
HOLDOUT_EVERY = 5
OUTER = ("coat/jacket", "suit")
OUTER_SHARE = 0.25
MIN_PIXELS = 400
UPPER_PARSE = [PARSER_CLASSES.index(c) for c in ("t-shirt", "shirt/blouse", "sweater", "coat/jacket", "suit", "dress")]
LOWER_PARSE = [PARSER_CLASSES.index(c) for c in ("skirt", "pants/jeans", "shorts")]

# clothing-dataset label -> (upper category, sleeve) or lower category; None = no such label.
CLOTHING_UPPER = {
    "T-Shirt": ("t-shirt", "short"), "Longsleeve": ("t-shirt", "long"), "Polo": (None, "short"),
    "Shirt": ("shirt/blouse", None), "Blouse": ("shirt/blouse", None), "Outwear": ("coat/jacket", "long"),
    # a tailored jacket on its own is what people call a suit jacket
    "Blazer": ("suit", "long"), "Hoodie": ("sweater", "long"), "Dress": ("dress", None),
    "Undershirt": ("tank top", "sleeveless"),
}
CLOTHING_LOWER = {"Pants": "pants/jeans", "Shorts": "shorts", "Skirt": "skirt"}

# ccp-tags names -> Vestis upper/lower category (vest, top and underwear say too little)
TAG_UPPER = {"coat": "coat/jacket", "jacket": "coat/jacket", "blazer": "coat/jacket", "cape": "coat/jacket",
             "suit": "suit", "dress": "dress", "romper": "dress", "t-shirt": "t-shirt", "shirt": "shirt/blouse",
             "blouse": "shirt/blouse", "sweater": "sweater", "jumper": "sweater", "cardigan": "sweater",
             "sweatshirt": "sweater", "hoodie": "sweater"}
TAG_LOWER = {"pants": "pants/jeans", "jeans": "pants/jeans", "leggings": "pants/jeans", "shorts": "shorts",
             "skirt": "skirt"}


def upper_from_tags(tags: set[str]) -> str | None:
    named = {TAG_UPPER[t] for t in tags if t in TAG_UPPER}
    for outer in OUTER:  # the outermost layer is what is seen
        if outer in named:
            return outer if len(named & set(OUTER)) == 1 else None
    return named.pop() if len(named) == 1 else None


def lower_from_tags(tags: set[str]) -> str | None:
    named = {TAG_LOWER[t] for t in tags if t in TAG_LOWER}
    return named.pop() if len(named) == 1 else None


def upper_from_mask(truth: np.ndarray) -> str | None:
    areas = {c: int((truth == PARSER_CLASSES.index(c)).sum()) for c in ("t-shirt", "shirt/blouse", "sweater",
                                                                       "coat/jacket", "suit", "dress")}
    total = sum(areas.values())
    if total < MIN_PIXELS:
        return None
    outer = max(OUTER, key=lambda c: areas[c])
    if areas[outer] >= OUTER_SHARE * total:
        return outer
    return max(areas, key=lambda c: areas[c])


def lower_from_mask(truth: np.ndarray) -> str | None:
    areas = {c: int((truth == PARSER_CLASSES.index(c)).sum()) for c in LOWER_CATEGORIES}
    best = max(areas, key=lambda c: areas[c])
    return best if areas[best] >= MIN_PIXELS else None


def region_box(labels: np.ndarray, origin: tuple[int, int], classes: list[int]) -> list[float] | None:
    pixels = np.isin(labels, classes)
    if pixels.sum() < MIN_PIXELS // 4:
        return None
    return pixel_box(pixels, *origin)


class Extractor:
    def __init__(self, settings: Settings):
        self.detector = PersonDetectionStage(settings)
        self.garments = GarmentStage(settings)
        record = load_manifest(settings.models.manifest).get("efficientnet-lite0")
        self.backbone = GarmentBackbone.from_files(model_files(record, settings.models.cache_dir))
        self.rows: list[dict] = []
        self.features: list[torch.Tensor] = []
        self.context = False  # also the person's crop of each worn garment (head "person")

    def add(self, image: np.ndarray, boxes: list[list[float]], labels: list[dict], mirrored: bool) -> None:
        if not boxes:
            return
        crops = self.backbone.crops(image, boxes)
        feats = self.backbone(crops)
        self.features.append(feats.half())
        boxed = [dict(label, box=[round(float(v), 2) for v in box]) for label, box in zip(labels, boxes)]
        self.rows.extend(dict(label, mirrored=False) for label in boxed)
        if mirrored:
            self.features.append(self.backbone(torch.flip(crops, dims=[3])).half())
            self.rows.extend(dict(label, mirrored=True) for label in boxed)

    def person_parse(self, image: np.ndarray, truth_box: list[float] | None, found_box: list | None = None):
        [found] = self.detector.detect([image])
        if not found:
            return None
        if truth_box is not None:
            truth = Box(x1=truth_box[0], y1=truth_box[1], x2=truth_box[2], y2=truth_box[3])
            box = max(found, key=lambda d: Box(x1=d[0], y1=d[1], x2=d[2], y2=d[3]).iou(truth))
        else:
            box = max(found, key=lambda d: (d[2] - d[0]) * (d[3] - d[1]))
        if found_box is not None:
            found_box[:] = [float(v) for v in box[:4]]
        [parse] = self.garments.parser.parse(image, [tuple(box[:4])])
        h, w = image.shape[:2]
        x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
        x1, y1 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
        labels, _ = parse.region_labels(x0, y0, x1, y1)
        return parse, labels, (x0, y0)

    def worn(self, image: np.ndarray, source: str, image_id: str, split: str, truth: np.ndarray | None,
             tags: set[str] | None, true_boxes: bool = False) -> None:
        truth_box = None
        if truth is not None:
            truth_box = pixel_box(truth > 0)
        person_box: list[float] = []
        parsed = self.person_parse(image, truth_box, person_box)
        if parsed is None and not (true_boxes and truth is not None):
            return
        parse = parsed[0] if parsed else None
        # crops from the true mask's garment pixels, or from the parse's as at ingest
        labels, origin = (truth, (0, 0)) if true_boxes and truth is not None else parsed[1:]
        boxes, rows = [], []
        upper_box = region_box(labels, origin, UPPER_PARSE)
        if upper_box is not None:
            if truth is not None:
                category = upper_from_mask(truth)
                found = None if parse is None else sleeve_length(
                    arm_coverage(truth, (0, 0), parse.landmarks, parse.visibility, SLEEVED, SKIN))
                sleeve = found[0] if found else None
                if sleeve == "sleeveless" and category in ("t-shirt", "shirt/blouse", "sweater"):
                    category = "tank top"
            else:
                category, sleeve = upper_from_tags(tags or set()), None
            if category is not None or sleeve is not None:
                boxes.append(upper_box)
                rows.append(dict(source=source, image=image_id, split=split, head="upper",
                                 upper=UPPER_CATEGORIES.index(category) if category else -1,
                                 sleeve=SLEEVE_CLASSES.index(sleeve) if sleeve else -1, lower=-1))
        lower_box = region_box(labels, origin, LOWER_PARSE)
        if lower_box is not None:
            lower = lower_from_mask(truth) if truth is not None else lower_from_tags(tags or set())
            if lower is not None:
                boxes.append(lower_box)
                rows.append(dict(source=source, image=image_id, split=split, head="lower", upper=-1, sleeve=-1,
                                 lower=LOWER_CATEGORIES.index(lower)))
        context_box = person_box or truth_box
        if boxes and self.context and context_box is not None:
            # the whole person's crop (the detector's box, as at ingest; the true mask's where the detector
            # missed), for heads that read it beside the garment's (vision/garment_heads.py)
            boxes.append(context_box)
            rows.append(dict(source=source, image=image_id, split=split, head="person", upper=-1, sleeve=-1, lower=-1))
        self.add(image, boxes, rows, mirrored=True)

    def flat(self, image: np.ndarray, image_id: str, label: str, split: str) -> None:
        h, w = image.shape[:2]
        box = [[0.0, 0.0, float(w), float(h)]]
        if label in CLOTHING_UPPER:
            category, sleeve = CLOTHING_UPPER[label]
            row = dict(source="clothing", image=image_id, split=split, head="upper",
                       upper=UPPER_CATEGORIES.index(category) if category else -1,
                       sleeve=SLEEVE_CLASSES.index(sleeve) if sleeve else -1, lower=-1)
        elif label in CLOTHING_LOWER:
            row = dict(source="clothing", image=image_id, split=split, head="lower", upper=-1, sleeve=-1,
                       lower=LOWER_CATEGORIES.index(CLOTHING_LOWER[label]))
        else:
            return
        self.add(image, box, [row], mirrored=False)


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=None, help="only N photos of each source (a quick check)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ccp-boxes", choices=("truth", "parse"), default="truth",
                        help="CCP crops from the true mask's garment pixels or from the parse's (as at ingest)")
    parser.add_argument("--tags", action="store_true", help="also the ccp-tags photos (parse crops, tag labels)")
    parser.add_argument("--clothing-every", type=int, default=3, help="one clothing-dataset photo in N")
    parser.add_argument("--context", action="store_true",
                        help="also each worn garment's person crop (rows of head 'person'), for context heads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = Settings(vision={"device": "cpu", "batch_size": 2})
    extractor = Extractor(settings)
    extractor.context = args.context
    lookup_names = __import__("json").loads((args.data / "ccp" / "annotations.json").read_text())["label_names"]
    lookup = np.array([PARSER_CLASSES.index(CCP_TO_PARSER.get(n, "other")) for n in lookup_names], dtype=np.uint8)
    start = time.time()
    ccp = sorted((args.data / "ccp" / "images").glob("*.jpg"))[: args.limit]
    for k, path in enumerate(ccp):
        truth = lookup[np.asarray(Image.open(args.data / "ccp" / "masks" / f"{path.stem}.png"))]
        split = "holdout" if k % HOLDOUT_EVERY == 0 else "train"
        extractor.worn(_rgb(path), "ccp", path.stem, split, truth, None, true_boxes=args.ccp_boxes == "truth")
        if k % 50 == 0:
            print(f"ccp {k}/{len(ccp)} {time.time() - start:.0f} s", flush=True)
    tagged = []
    if args.tags:
        with open(args.data / "ccp-tags" / "tags.csv", newline="") as handle:
            tagged = list(csv.DictReader(handle))[: args.limit]
    for k, row in enumerate(tagged):
        extractor.worn(_rgb(args.data / "ccp-tags" / "images" / row["image"]), "ccp-tags", row["image"], "train", None,
                       set(row["tags"].split(";")))
        if k % 100 == 0:
            print(f"ccp-tags {k}/{len(tagged)} {time.time() - start:.0f} s", flush=True)
    with open(args.data / "clothing-dataset" / "labels.csv", newline="") as handle:
        clothing = [r for r in csv.DictReader(handle) if r["label"] in CLOTHING_UPPER or r["label"] in CLOTHING_LOWER]
    clothing = [r for r in clothing if (args.data / "clothing-dataset" / "images" / f"{r['image']}.jpg").is_file()]
    clothing = clothing[args.clothing_every - 1::args.clothing_every][: args.limit]
    for k, row in enumerate(clothing):
        path = args.data / "clothing-dataset" / "images" / f"{row['image']}.jpg"
        if path.is_file():
            extractor.flat(_rgb(path), row["image"], row["label"], "train")
        if k % 500 == 0:
            print(f"clothing {k}/{len(clothing)} {time.time() - start:.0f} s", flush=True)
    torch.save({"features": torch.cat(extractor.features), "rows": extractor.rows}, args.out)
    print(f"{len(extractor.rows)} crops -> {args.out} in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()

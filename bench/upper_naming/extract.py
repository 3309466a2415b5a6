"""Scratch: one pass over CCP (all 704) + a third of clothing-dataset.

Per CCP photo, for the main person (detector box best matching the true mask's box), features
(plain, mirrored) of 5 crops: true-mask upper, true-mask lower, stage upper (whole_garments of the
parse read inside the enlarged box, as at ingest), stage lower, the person box. Labels as
garment_head_data (upper_from_mask + tank top from sleeves, lower_from_mask, sleeve), plus the true
majority class inside the stage's upper pixels. Held-out photos: the detector's persons and the
parses are pickled so the garments level of `vestis eval parsing` can be redone in seconds.
"""
import copy, csv, json, pickle, sys, time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.upper_naming.common import both_views
from configs import Settings
from labels import Box
from vision.garment_heads import LOWER_CATEGORIES, SLEEVE_CLASSES, UPPER_CATEGORIES
from vision.garment_parser import PARSER_CLASSES
from vision.garments import SKIN, SLEEVED, GarmentStage, pixel_box, whole_garments, _enlarged, MIN_GARMENT_PIXELS, MIN_GARMENT_SHARE
from vision.person_detection import PersonDetectionStage
from vision.sleeves import arm_coverage, sleeve_length
from vision.stage import Frame
from vision.training.ccp import CCP_TO_PARSER
from vision.training.garment_head_data import (CLOTHING_LOWER, CLOTHING_UPPER, LOWER_PARSE, UPPER_PARSE,
                                               lower_from_mask, region_box, upper_from_mask)

torch.set_num_threads(1)
DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
OUT = Path("/tmp/naming")
limit = int(sys.argv[1]) if len(sys.argv) > 1 else None
settings = Settings(vision={"device": "cpu", "batch_size": 2})
detector = PersonDetectionStage(settings)
stage = GarmentStage(settings)
backbone = stage.backbone
names = json.loads((DATA / "ccp" / "annotations.json").read_text())["label_names"]
lookup = np.array([PARSER_CLASSES.index(CCP_TO_PARSER.get(n, "other")) for n in names], dtype=np.uint8)
UPPER_TRUE = [PARSER_CLASSES.index(c) for c in ("t-shirt", "shirt/blouse", "sweater", "coat/jacket", "suit", "dress")]

paths = sorted((DATA / "ccp" / "images").glob("*.jpg"))[:limit]
N = len(paths)
feats = torch.zeros((N, 5, 2, 1280), dtype=torch.float16)
have = torch.zeros((N, 5), dtype=torch.bool)
rows, held = [], []
start = time.time()
for k, path in enumerate(paths):
    image = np.asarray(Image.open(path).convert("RGB"))
    truth = lookup[np.asarray(Image.open(DATA / "ccp" / "masks" / f"{path.stem}.png"))]
    split = "holdout" if k % 5 == 0 else "train"
    [frame] = detector([Frame.of_photo(image, path.stem)])
    persons = frame.labels.persons
    parses = stage.parser.parse(image, [p.box.xyxy for p in persons])
    if split == "holdout":
        held.append(dict(stem=path.stem, labels=copy.deepcopy(frame.labels), parses=parses))
    row = dict(stem=path.stem, split=split, upper=-1, lower=-1, sleeve=-1, stage_upper_truth=None,
               stage_upper_parser=None, person_box=None)
    boxes = [None] * 5
    tb = pixel_box(truth > 0)
    boxes[0] = region_box(truth, (0, 0), UPPER_PARSE)
    boxes[1] = region_box(truth, (0, 0), LOWER_PARSE)
    parse = None
    if persons:
        truth_box = Box(x1=tb[0], y1=tb[1], x2=tb[2], y2=tb[3])
        m = max(range(len(persons)), key=lambda i: persons[i].box.iou(truth_box))
        person, parse = persons[m], parses[m]
        h, w = image.shape[:2]
        x0, y0, x1, y1 = _enlarged(person.box, w, h)
        labels, conf = parse.region_labels(x0, y0, x1, y1)
        min_pixels = max(MIN_GARMENT_PIXELS, MIN_GARMENT_SHARE * (x1 - x0) * (y1 - y0))
        for g in whole_garments(labels, conf, min_pixels):
            if g.role == "upper":
                boxes[2] = pixel_box(g.pixels, x0, y0)
                region_truth = truth[y0:y1, x0:x1][g.pixels]
                counts = np.bincount(region_truth, minlength=len(PARSER_CLASSES))
                best = max(UPPER_TRUE, key=lambda c: counts[c])
                if counts[best] > 0:
                    row["stage_upper_truth"] = PARSER_CLASSES[best]
                row["stage_upper_parser"] = PARSER_CLASSES[g.parser_class]
            elif g.role == "lower":
                boxes[3] = pixel_box(g.pixels, x0, y0)
        boxes[4] = list(person.box.xyxy)
        row["person_box"] = boxes[4]
    category = upper_from_mask(truth)
    sleeve = None
    if parse is not None:
        found = sleeve_length(arm_coverage(truth, (0, 0), parse.landmarks, parse.visibility, SLEEVED, SKIN))
        sleeve = found[0] if found else None
    if sleeve == "sleeveless" and category in ("t-shirt", "shirt/blouse", "sweater"):
        category = "tank top"
    if boxes[0] is not None:
        row["upper"] = UPPER_CATEGORIES.index(category) if category else -1
        row["sleeve"] = SLEEVE_CLASSES.index(sleeve) if sleeve else -1
    lower = lower_from_mask(truth)
    if boxes[1] is not None and lower is not None:
        row["lower"] = LOWER_CATEGORIES.index(lower)
    row["boxes"] = boxes
    idx = [i for i, b in enumerate(boxes) if b is not None]
    if idx:
        crops = backbone.crops(image, [boxes[i] for i in idx])
        both = both_views(backbone, crops)
        for j, i in enumerate(idx):
            feats[k, i] = both[j].half()
            have[k, i] = True
    rows.append(row)
    if k % 25 == 0:
        print(f"ccp {k}/{N} {time.time() - start:.0f} s", flush=True)
torch.save(dict(features=feats, have=have, rows=rows), OUT / "ccp-crops.pt")
with open(OUT / "holdout-parses.pkl", "wb") as f:
    pickle.dump(held, f)
print("ccp done", time.time() - start, flush=True)

with open(DATA / "clothing-dataset" / "labels.csv", newline="") as handle:
    clothing = [r for r in csv.DictReader(handle) if r["label"] in CLOTHING_UPPER or r["label"] in CLOTHING_LOWER]
clothing = [r for r in clothing if (DATA / "clothing-dataset" / "images" / f"{r['image']}.jpg").is_file()]
clothing = clothing[2::3][:limit]
cf, crows = [], []
for k, r in enumerate(clothing):
    image = np.asarray(Image.open(DATA / "clothing-dataset" / "images" / f"{r['image']}.jpg").convert("RGB"))
    h, w = image.shape[:2]
    crops = backbone.crops(image, [[0.0, 0.0, float(w), float(h)]])
    f = backbone(torch.cat([crops, torch.flip(crops, dims=[3])]))
    cf.append(f.half())
    if r["label"] in CLOTHING_UPPER:
        c, s = CLOTHING_UPPER[r["label"]]
        crows.append(dict(image=r["image"], upper=UPPER_CATEGORIES.index(c) if c else -1,
                          sleeve=SLEEVE_CLASSES.index(s) if s else -1, lower=-1))
    else:
        crows.append(dict(image=r["image"], upper=-1, sleeve=-1, lower=LOWER_CATEGORIES.index(CLOTHING_LOWER[r["label"]])))
    if k % 200 == 0:
        print(f"clothing {k}/{len(clothing)} {time.time() - start:.0f} s", flush=True)
torch.save(dict(features=torch.stack(cf), rows=crows), OUT / "clothing-crops.pt")
print("all done", time.time() - start, flush=True)

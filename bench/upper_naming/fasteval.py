"""Scratch: the garments level of `vestis eval parsing --holdout-every 5` from pickled detections and
parses (extract.py), with the stage's own describe() and a cache of backbone features.

    python fasteval.py [HEADS.pt]     # default: the worktree's vision/weights/garment-heads.pt
"""
import copy, json, pickle, sys, time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from configs import Settings
from vision.evaluation.parsing import ParsingScores, garment_label_map, merged_label_map
from vision.garment_parser import PARSER_CLASSES
from vision.garments import GarmentStage
from vision.stage import Frame
from vision.training.ccp import CCP_TO_PARSER

torch.set_num_threads(1)
DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
CACHE = Path("/tmp/naming/fasteval-features.pt")
names = json.loads((DATA / "ccp" / "annotations.json").read_text())["label_names"]
lookup = np.array([PARSER_CLASSES.index(CCP_TO_PARSER.get(n, "other")) for n in names], dtype=np.uint8)

_held = None


def held():
    global _held
    if _held is None:
        with open("/tmp/naming/holdout-parses.pkl", "rb") as f:
            _held = pickle.load(f)
    return _held


def cached_backbone(stage, store):
    original = stage.backbone.features

    def features(image, boxes, mirror=False):
        out = []
        for b in boxes:
            key = (stage._current, tuple(round(float(v), 2) for v in b), bool(mirror))
            if key not in store:
                store[key] = original(image, [b], mirror=mirror)[0]
            out.append(store[key])
        return torch.stack(out) if out else torch.zeros((0, 1280))
    stage.backbone.features = features


def evaluate(stage: GarmentStage, verbose=False) -> dict:
    store = torch.load(CACHE, weights_only=False) if CACHE.exists() else {}
    n0 = len(store)
    cached_backbone(stage, store)
    scores = ParsingScores()
    per_photo = []
    for item in held():
        image = np.asarray(Image.open(DATA / "ccp" / "images" / f"{item['stem']}.jpg").convert("RGB"))
        truth = lookup[np.asarray(Image.open(DATA / "ccp" / "masks" / f"{item['stem']}.png"))]
        labels = copy.deepcopy(item["labels"])
        frame = Frame(image, labels)
        stage._current = item["stem"]
        parses = item["parses"]
        predicted = merged_label_map(parses, *image.shape[:2])
        stage.describe(frame, labels.persons, parses)
        predicted = garment_label_map(predicted, frame.labels)
        scores.images_without_person += not labels.persons
        scores.add(predicted, truth)
        per_photo.append((item["stem"], [(g.category.value) for p in labels.persons for g in p.garments]))
    if len(store) > n0:
        torch.save(store, CACHE)
    report = scores.report()
    report["per_photo"] = per_photo
    return report


if __name__ == "__main__":
    settings = Settings(vision={"device": "cpu", "batch_size": 2})
    stage = GarmentStage(settings)
    if len(sys.argv) > 1:
        from vision.garment_heads import GarmentHeads
        stage.classifier = GarmentHeads.from_files({"w": Path(sys.argv[1])})
    t = time.time()
    r = evaluate(stage)
    print(f"mean IoU {r['mean_iou']:.4f} garments {r['mean_iou_garments']:.4f} pixel acc {r['pixel_accuracy']:.4f} "
          f"({time.time() - t:.0f} s)")
    print(" ".join(f"{c}={v:.3f}" for c, v in r["iou"].items() if v is not None))

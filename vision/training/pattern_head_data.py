"""Training data for the pattern head: backbone features of synthetic patterned garments.

    python -m vision.training.pattern_head_data --out /tmp/pattern-head-features.pt [--per-class 700]

No pattern-labelled photos are used. The renderer of vision/training/train_pattern_classifier.py
paints stripes, plaid, dots, flowers and printed graphics onto real plain CCP garments (keeping
their folds and light), recolours plain ones for "solid", and degrades them as video does (scale,
blur, noise, JPEG); here each sample's crop is the square around its garment, as at ingest, and its
feature is the backbone's (vision/backbone.py). Plain garments are split as in that script (every
5th held out); the patterned CCP garments labelled by eye (`CHECK_GARMENTS`) and the held-out plain
ones, with their true masks, are stored as the "check" split: real prints the head never sees.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from configs import Settings
from configs.manifest import load_manifest
from vision.backbone import GarmentBackbone
from vision.garments import pixel_box
from vision.model_files import model_files
from vision.training.train_pattern_classifier import (CHECK_GARMENTS, HOLDOUT_EVERY, PLAIN_GARMENTS, SEED, degrade,
                                                      load_garment, render)
from labels.vocabulary import PATTERNS

REPO_ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ccp", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "ccp")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-class", type=int, default=700)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.time()
    settings = Settings()
    backbone = GarmentBackbone.from_files(model_files(load_manifest().get("efficientnet-lite0"), settings.models.cache_dir))
    names = json.loads((args.ccp / "annotations.json").read_text())["label_names"]
    label_ids = {name: k for k, name in enumerate(names)}
    plain = [load_garment(args.ccp, key, label_ids) for key in PLAIN_GARMENTS]
    splits = {"train": [g for k, g in enumerate(plain) if k % HOLDOUT_EVERY],
              "holdout": [g for k, g in enumerate(plain) if not k % HOLDOUT_EVERY]}
    used = {key.split(":")[0] for key in PLAIN_GARMENTS}
    photo_ids = sorted(p.stem for p in (args.ccp / "images").glob("*.jpg") if p.stem not in used)[::8]
    photos = [np.asarray(Image.open(args.ccp / "images" / f"{i}.jpg").convert("RGB").reduce(2)) for i in photo_ids]

    features, rows = [], []
    for split, count, seed in (("train", args.per_class, SEED), ("holdout", args.per_class // 5, SEED + 1)):
        garments = splits[split]
        for index in range(count * len(PATTERNS)):
            rng = np.random.default_rng([seed, index])
            label = index % len(PATTERNS)
            garment = garments[int(rng.integers(len(garments)))]
            try:
                image, mask = degrade(rng, render(rng, garment, PATTERNS[label], photos), garment.mask)
            except ValueError:
                continue
            if mask.sum() < 64:
                continue
            crops = backbone.crops(image, [pixel_box(mask)])
            if rng.random() < 0.5:
                crops = torch.flip(crops, dims=[3])
            features.append(backbone(crops).half())
            rows.append({"source": "synthetic", "image": garment.key, "split": split, "pattern": label,
                         "mirrored": False})
            if len(rows) % 500 == 0:
                print(f"{split} {len(rows)} samples {time.time() - start:.0f} s", flush=True)
    check = [(PATTERNS.index(c), key) for c, keys in CHECK_GARMENTS.items() for key in keys]
    check += [(PATTERNS.index("solid"), g.key) for g in splits["holdout"]]
    for label, key in check:
        garment = load_garment(args.ccp, key, label_ids)
        features.append(backbone.features(garment.image, [pixel_box(garment.mask)]).half())
        rows.append({"source": "ccp-check", "image": key, "split": "check", "pattern": label, "mirrored": False})
    torch.save({"features": torch.cat(features), "rows": rows}, args.out)
    print(f"{len(rows)} samples -> {args.out} in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()

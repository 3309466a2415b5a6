"""Scratch (issue #14, 2026-12-02 seventh session): `vestis eval parsing --holdout-every 5` (garments
level) or `vestis eval attributes` with another garment parser file swapped into the garment stage,
one view, or with each crop's parse averaged with its mirror image's (`--mirror`: flip test-time
augmentation, `GarmentParser.mirror_average`, which the shipped stage turns on).
Figures: docs/models/garment-parsing.md, "Parser version 2, recipe a, and the mirror average" and
"Parser version 2 shipped".

    PYTHONPATH=$PWD .venv/bin/python bench/parser_v2/swap_eval.py parsing|attributes PARSER.pt[,MORE.pt]|- [--mirror]
"""
import argparse
import json
import os
from pathlib import Path

import torch

from configs import Settings
import vision.garments as garments
from evaluation.runner import evaluate_attributes, evaluate_parsing
from vision.garment_parser import GarmentParser

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("eval", choices=["parsing", "attributes"])
    ap.add_argument("parser", help="a parser file (train_garment_parser's --out), several joined by commas (their "
                                   "mean, GarmentParser's members), or - for the shipped one")
    ap.add_argument("--mirror", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("THREADS", "1")))
    init = garments.GarmentStage.__init__

    def patched(self, *a, **k):
        init(self, *a, **k)
        if args.parser != "-":
            files = {f"parser{i}.pt": Path(name) for i, name in enumerate(args.parser.split(","))}
            edge_guide = self.parser.edge_guide
            self.parser = GarmentParser.from_files(files, self.parser.pose).eval()
            self.parser.edge_guide = edge_guide  # the stage's setting, as for the shipped parser
        # one view unless --mirror, whatever the stage's setting (vision.versions.PARSER_MIRROR_AVERAGE)
        self.parser.mirror_average = args.mirror
    garments.GarmentStage.__init__ = patched
    settings = Settings(vision={"device": "cpu"})
    if args.eval == "parsing":
        ccp = DATA / "ccp"
        r = evaluate_parsing(settings, ccp / "images", ccp / "masks", ccp / "annotations.json", holdout_every=5)
        print(json.dumps({k: r[k] for k in ("mean_iou", "mean_iou_garments", "pixel_accuracy", "images_without_person")}))
        return
    dev = DATA / "attributes-dev"
    r = evaluate_attributes(settings, dev / "images", dev / "labels.csv")
    a = r["attributes"]
    print(json.dumps({"category": a["category"]["accuracy"], "sleeve": a["sleeve"]["accuracy"],
                      "pattern": a["pattern"]["accuracy"], "pattern_macro_f1": a["pattern"]["macro_f1"],
                      "color_mean": r["color_mean_accuracy"], "no_person": r["no_person"],
                      "f1": {c: round(a[f"color:{c}"]["f1"], 3) for c in ("black", "white", "gray")}}))


if __name__ == "__main__":
    main()

"""Scratch (issue #14, 2026-12-02 seventh session): `vestis eval parsing --holdout-every 5` (garments
level) or `vestis eval attributes` with another garment parser file swapped into the garment stage,
optionally averaging each crop's parse with its mirror image's (flip test-time augmentation).
Figures: docs/models/garment-parsing.md, "Parser version 2, recipe a, and the mirror average".

    PYTHONPATH=$PWD .venv/bin/python bench/parser_v2/swap_eval.py parsing|attributes PARSER.pt|- [--mirror]
"""
import argparse
import json
from pathlib import Path

import torch

from configs import Settings
import vision.garments as garments
from evaluation.runner import evaluate_attributes, evaluate_parsing
from vision.garment_parser import GarmentParser

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def mirror_averaged(parser: GarmentParser) -> None:
    """Pixel classes have no left or right: average the parse of the crop and of its mirror image."""
    once = parser.forward_crops

    def forward_crops(crops):
        out, probs = once(crops)
        _, mirrored = once(crops.flip(-1))
        return out, (probs + mirrored.flip(-1)) / 2
    parser.forward_crops = forward_crops


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("eval", choices=["parsing", "attributes"])
    ap.add_argument("parser", help="a parser file (train_garment_parser's --out), or - for the shipped one")
    ap.add_argument("--mirror", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    init = garments.GarmentStage.__init__

    def patched(self, *a, **k):
        init(self, *a, **k)
        if args.parser != "-":
            self.parser = GarmentParser.from_files({"parser.pt": Path(args.parser)}, self.parser.pose).eval()
        if args.mirror:
            mirror_averaged(self.parser)
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

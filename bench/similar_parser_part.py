"""Tried for the garment embedding: the garment parser's class mix over a garment's mask as (part of)
its category part, on the CCP held-out photos (every 5th by name; never trained on).

    .venv/bin/python bench/similar_parser_part.py [--parts /tmp/similar/parser-parts.pkl]   # ~4 min, then seconds

Runs person detection and the garment stage on the held-out photos as `vestis eval similar` does,
and keeps for every embedded garment its parts (crop features, the category label's probabilities,
the colour shares) with the mean of the parser's class probabilities over its mask, folded into the
vocabulary. Then prints the top-1 agreement of the heads' label and of the parser's mix with the
true category, and the eval's CCP shares (same category, same colour label in the 10 nearest from
other photos; evaluation/similar.py's `neighbour_shares`, float vectors) with the category part made
of the heads' probabilities (shipped), the parser's mix, or their mean, at three part weightings.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np

from configs import Settings
from evaluation import similar
from labels.masks import decode_mask
from labels.vocabulary import GARMENT_CATEGORIES
from vision import garment_embedding
from vision.garment_parser import PARSER_CLASSES, PersonParse
from vision.pose import INPUT_SIZE

REPO_ROOT = Path(__file__).resolve().parent.parent
VOCABULARY = list(GARMENT_CATEGORIES)


def mask_mix(parse: PersonParse, mask: np.ndarray) -> np.ndarray:
    """The parser's mean class probabilities over the mask's frame pixels inside its crop window."""
    ys, xs = np.nonzero(mask)
    w = parse.window
    inside = (xs >= w.x0) & (xs < w.x0 + w.side) & (ys >= w.y0) & (ys < w.y0 + w.side)
    scale = INPUT_SIZE / w.side
    us = np.clip(((xs[inside] + 0.5 - w.x0) * scale).astype(int), 0, INPUT_SIZE - 1)
    vs = np.clip(((ys[inside] + 0.5 - w.y0) * scale).astype(int), 0, INPUT_SIZE - 1)
    mix = parse.probs[:, vs, us].mean(axis=1) if inside.any() else np.zeros(len(PARSER_CLASSES), np.float32)
    folded = np.zeros(len(VOCABULARY), np.float32)
    for i, name in enumerate(PARSER_CLASSES):
        if name in VOCABULARY:
            folded[VOCABULARY.index(name)] += mix[i]
    return folded


def extract(ccp_root: Path) -> list[dict]:
    from vision.training.ccp import CCP

    stages = similar._stages(Settings())
    garment_stage = stages[-1]
    seen: list[tuple] = []
    describe = garment_stage.describe

    def keep_parses(frame, persons, parses):  # the stage's own parses, kept beside its garments
        seen.extend(zip(persons, parses))
        return describe(frame, persons, parses)

    garment_stage.describe = keep_parses
    ccp = CCP(ccp_root)
    rows = []
    for k, frame, truth in similar.ccp_frames(ccp, list(range(len(ccp.images)))[::similar.HOLDOUT_EVERY]):
        seen.clear()
        features = similar._run(stages, [frame])
        parse_of = {id(person): parse for person, parse in seen}
        for person in frame.labels.persons:
            for garment in person.garments:
                if garment.embedding is None or garment.mask is None:
                    continue
                mask = decode_mask(garment.mask)
                rows.append({**similar._parts(garment, features[id(garment)]), "photo": k,
                             "true_category": similar._true_category(mask, truth) or "",
                             "parser": mask_mix(parse_of[id(person)], mask)})
    return rows


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ccp", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "ccp")
    parser.add_argument("--parts", type=Path, default=Path("/tmp/similar/parser-parts.pkl"),
                        help="the extracted parts: read when present, else written")
    args = parser.parse_args()
    if args.parts.is_file():
        rows = pickle.loads(args.parts.read_bytes())
    else:
        rows = extract(args.ccp)
        args.parts.parent.mkdir(parents=True, exist_ok=True)
        args.parts.write_bytes(pickle.dumps(rows))
    rows = [r for r in rows if r["true_category"]]
    truth = np.array([r["true_category"] for r in rows])
    photos = np.array([r["photo"] for r in rows])
    heads = np.stack([r["category"] for r in rows])
    mix = np.stack([r["parser"] for r in rows])
    names = np.array(VOCABULARY)
    print(f"{len(rows)} judged garments; top-1 right: heads {np.mean(names[heads.argmax(1)] == truth):.3f}, "
          f"parser's mix {np.mean(names[mix.argmax(1)] == truth):.3f}")
    appearance = np.stack([garment_embedding.appearance(r["features"].astype(np.float32)) for r in rows])
    color = np.stack([garment_embedding.color_part(r["color"]) for r in rows])
    labels = {"category": truth, "color": np.array([r["color_label"] for r in rows])}
    for name, category in (("heads (shipped)", heads), ("parser's mix", mix), ("mean of both", (heads + mix) / 2)):
        for wa, wk, wc in ((0.3, 0.3, 0.4), (0.2, 0.4, 0.4), (0.15, 0.5, 0.35)):
            v = np.concatenate([np.sqrt(wa) * appearance, np.sqrt(wk) * _unit(category), np.sqrt(wc) * color], 1)
            shares = similar.neighbour_shares(v, photos, labels)
            print(f"{name:16s} weights appearance {wa} category {wk} colour {wc}: same category "
                  f"{shares['category']['top10_same']:.3f}, same colour {shares['color']['top10_same']:.3f}")


if __name__ == "__main__":
    main()

"""Train the garment parser on CCP (BlazePose stays frozen), then measure it on held-out photos.

    python -m vision.training.train_garment_parser --ccp ../shared/data/ccp --appearance \
        --frozen-blocks 3 --epochs 14 --encoder-lr 5e-4 \
        --out vision/weights/garment-parser-v2.pt --report /tmp/garment-parsing-v2.json

`--appearance` trains version 2, the shipped parser (docs/models/garment-parsing.md, "Parser
version 2"): an `AppearancePyramid` with the head, EfficientNet-Lite0 from Google's ImageNet weights
(record efficientnet-lite0), its stem and first blocks frozen (`--frozen-blocks`), the rest fine-tuned
at a fraction of the head's learning rate (one-cycle, each epoch a random half of the cached
variants), the crops' brightness and contrast jittered; the command above is the shipped weights'
recipe, which ships two draws of it (seed 0, and `--seed 2 --out vision/weights/garment-parser-v2-seed2.pt`)
whose class probabilities the parser averages (configs/models/garment-parser.yaml lists both files).
Without it: version 1's recipe, the head alone.

Recipe: every 5th CCP photo (by position) is held out for validation, the rest train. Each training
photo is cropped around the person detector's box as at run time (the ground-truth person box when the
detector misses), in 4 variants: plain, mirrored, and both again with the crop rescaled and shifted a
little. BlazePose's feature maps for every variant are computed once and cached; only the head
(vision.garment_parser.GarmentParserHead) trains: AdamW, cosine schedule, class-weighted cross
entropy (inverse square root of class frequency) at 128x128. Validation runs the full parser on the
held-out photos at their own resolution (vision.evaluation.parsing). Deterministic for a given seed
on CPU.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from configs import Settings
from configs.manifest import load_manifest
from torchvision.ops import box_iou
from vision.evaluation.parsing import ParsingScores, person_boxes
from vision.garment_parser import (PARSER_CLASSES, AppearancePyramid, GarmentParser, GarmentParserHead, head_inputs,
                                   lite0_blocks)
from vision.model_files import model_files
from vision.person_detection import PersonDetectionStage
from vision.pose import MODEL_NAME, CropWindow, PoseLandmarker, crops_tensor
from vision.versions import BACKBONE_MODEL
from vision.training.ccp import CCP, CCPImage

VARIANTS = 4
FEATURE_KEYS = ("dec64", "dec32", "dec16", "enc8", "seg128")  # the BlazePose features the head reads


def load_pose(settings: Settings) -> PoseLandmarker:
    record = load_manifest(settings.models.manifest).get(MODEL_NAME)
    return PoseLandmarker.from_record(record, model_files(record, settings.models.cache_dir))


def imagenet_appearance(settings: Settings, frozen_blocks: int) -> AppearancePyramid:
    """An AppearancePyramid on EfficientNet-Lite0 with Google's ImageNet weights (the backbone record's file)."""
    record = load_manifest(settings.models.manifest).get(BACKBONE_MODEL)
    [weights] = [p for p in model_files(record, settings.models.cache_dir).values() if Path(p).suffix == ".pth"]
    network = lite0_blocks(torch.load(weights, map_location="cpu", weights_only=True))
    return AppearancePyramid(network, frozen_blocks=frozen_blocks)


def main_person_box(boxes, truth: np.ndarray) -> tuple[float, float, float, float]:
    """The detected box that best covers the labelled person; the labelled extent when none does."""
    ys, xs = np.nonzero(truth)
    gt = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    if not boxes:
        return gt
    overlap = box_iou(torch.tensor(boxes, dtype=torch.float64), torch.tensor([gt], dtype=torch.float64))[:, 0]
    best = int(overlap.argmax())
    return boxes[best] if overlap[best] >= 0.5 else gt


def variant_window(box, variant: int, rng: np.random.Generator, crop_scale: float) -> CropWindow:
    if variant < 2:
        return CropWindow.around(box, crop_scale)
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1)
    dx, dy = rng.uniform(-0.05, 0.05, 2) * side
    return CropWindow.around((x1 + dx, y1 + dy, x2 + dx, y2 + dy), crop_scale * rng.uniform(0.9, 1.15))


def cut_mask(mask: np.ndarray, window: CropWindow, size: int) -> np.ndarray:
    crop = Image.fromarray(mask).crop((window.x0, window.y0, window.x0 + window.side, window.y0 + window.side))
    return np.asarray(crop.resize((size, size), Image.Resampling.NEAREST))


@torch.inference_mode()
def build_cache(items: list[CCPImage], ccp: CCP, pose: PoseLandmarker, detector, seed: int,
                keep_crops: bool = False) -> dict:
    """BlazePose features, head inputs and targets for every training variant (float16 to save memory);
    with keep_crops, the 256 crops too (uint8), which the appearance pyramid reads."""
    rng = np.random.default_rng(seed)
    store: dict[str, list] = {k: [] for k in (*FEATURE_KEYS, "rgb128", "mask128", "target", *(["crop"] if keep_crops else []))}
    for k, item in enumerate(items):
        image = np.asarray(Image.open(item.image_path).convert("RGB"))
        truth = ccp.parser_mask(item)
        box = main_person_box(person_boxes(detector, image), truth)
        crops, targets = [], []
        for variant in range(VARIANTS):
            window = variant_window(box, variant, rng, pose.crop_scale)
            crop, target = window.cut(image), cut_mask(truth, window, 128)
            if variant % 2:
                crop, target = crop[:, ::-1].copy(), target[:, ::-1].copy()
            crops.append(crop)
            targets.append(target)
        batch = crops_tensor(crops, torch.device("cpu"), torch.float32)
        out = pose(batch, with_features=True)
        rgb128, mask128 = head_inputs(batch, out.mask_logits)
        for key, value in out.features.items():
            store[key].append(value.half())
        store["rgb128"].append(rgb128.half())
        store["mask128"].append(mask128.half())
        store["target"].append(torch.from_numpy(np.stack(targets)).long())
        if keep_crops:
            store["crop"].append(torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous())
        if (k + 1) % 50 == 0:
            print(f"  features: {k + 1}/{len(items)} photos", flush=True)
    return {key: torch.cat(values) for key, values in store.items()}


def class_weights(targets: torch.Tensor) -> torch.Tensor:
    counts = torch.bincount(targets.flatten(), minlength=len(PARSER_CLASSES)).double()
    freq = counts / counts.sum()
    weights = torch.where(counts > 0, 1.0 / freq.clamp_min(1e-6).sqrt(), torch.zeros_like(freq))
    return (weights / weights[counts > 0].mean()).float()


def _fit(modules: list[torch.nn.Module], optimizer, scheduler, cache: dict, epochs: int, batch_size: int,
         share: int, generator: torch.Generator, logits_of) -> None:
    """The epochs of either recipe: each reads a random 1/`share` of the cached variants in batches,
    `logits_of(idx)` gives their logits, class-weighted cross entropy at 128x128 is the loss."""
    n = cache["target"].shape[0]
    taken = n // share
    weights = class_weights(cache["target"])
    for epoch in range(epochs):
        for module in modules:
            module.train()
        started, total = time.perf_counter(), 0.0
        for idx in torch.randperm(n, generator=generator)[:taken].split(batch_size):
            loss = F.cross_entropy(logits_of(idx), cache["target"][idx], weight=weights)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(idx)
        print(f"  epoch {epoch + 1}/{epochs}: loss {total / taken:.4f} ({time.perf_counter() - started:.0f} s)",
              flush=True)


def train_head(cache: dict, epochs: int, batch_size: int, lr: float, seed: int) -> GarmentParserHead:
    torch.manual_seed(seed)
    head = GarmentParserHead()
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    n = cache["target"].shape[0]
    steps = epochs * ((n + batch_size - 1) // batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)

    def logits_of(idx: torch.Tensor) -> torch.Tensor:
        features = {k: cache[k][idx] for k in FEATURE_KEYS}
        return head(features, cache["rgb128"][idx].float(), cache["mask128"][idx].float())

    _fit([head], optimizer, scheduler, cache, epochs, batch_size, 1, torch.Generator().manual_seed(seed), logits_of)
    return head.eval()


def train_with_appearance(cache: dict, appearance: AppearancePyramid, epochs: int, batch_size: int, lr: float,
                          encoder_lr: float, seed: int) -> tuple[GarmentParserHead, AppearancePyramid]:
    """Version 2: the head and the pyramid together. Each epoch reads a random half of the cached
    variants (a full pass of the network is the cost here, ~100 s an epoch on 2 cores); each crop's
    brightness and contrast are jittered (BlazePose's cached features keep the plain crop's)."""
    torch.manual_seed(seed)
    head = GarmentParserHead()
    network = list(appearance.network.parameters())
    in_network = {id(p) for p in network}
    rest = [p for p in [*appearance.parameters(), *head.parameters()] if id(p) not in in_network]
    optimizer = torch.optim.AdamW([{"params": network, "lr": encoder_lr}, {"params": rest, "lr": lr}], weight_decay=1e-4)
    per_epoch = len(torch.arange(cache["target"].shape[0] // 2).split(batch_size))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[encoder_lr, lr], total_steps=epochs * per_epoch,
                                                    pct_start=0.1)
    generator = torch.Generator().manual_seed(seed)

    def logits_of(idx: torch.Tensor) -> torch.Tensor:
        crop = cache["crop"][idx].float()
        gain = torch.empty(len(idx), 1, 1, 1).uniform_(0.75, 1.25, generator=generator)
        shift = torch.empty(len(idx), 1, 1, 1).uniform_(-25, 25, generator=generator)
        crops = (((crop - 128) * gain + 128 + shift).clamp(0, 255)) / 255.0
        rgb128 = F.interpolate(crops, size=(128, 128), mode="bilinear", align_corners=False, antialias=True)
        features = {k: cache[k][idx] for k in FEATURE_KEYS}
        return head(features, rgb128, cache["mask128"][idx].float(), appearance(crops))

    _fit([head, appearance], optimizer, scheduler, cache, epochs, batch_size, 2, generator, logits_of)
    return head.eval(), appearance.eval()


def evaluate(parser: GarmentParser, detector, items: list[CCPImage], ccp: CCP) -> ParsingScores:
    scores = ParsingScores()
    for item in items:
        scores.add_photo(parser, detector, np.asarray(Image.open(item.image_path).convert("RGB")), ccp.parser_mask(item))
    return scores


def _half(module: torch.nn.Module) -> dict:
    return {k: v.detach().half() if v.is_floating_point() else v for k, v in module.state_dict().items()}


def save_head(head: GarmentParserHead, path: Path, metrics: dict, appearance: AppearancePyramid | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    saved: dict[str, Any] = {"classes": list(PARSER_CLASSES), "state_dict": _half(head), "metrics": metrics}
    if appearance is not None:
        saved.update(appearance=_half(appearance), appearance_frozen_blocks=appearance.frozen_blocks)
    torch.save(saved, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ccp", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="head weights to write (.pt)")
    parser.add_argument("--report", type=Path, help="validation figures to write (JSON)")
    parser.add_argument("--appearance", action="store_true",
                        help="version 2: fine-tune EfficientNet-Lite0's appearance pyramid with the head")
    parser.add_argument("--epochs", type=int, help="default 16 (head alone), 7 (--appearance)")
    parser.add_argument("--batch-size", type=int, help="default 16 (head alone), 8 (--appearance)")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--encoder-lr", type=float, default=2e-4, help="the fine-tuned network's (--appearance)")
    parser.add_argument("--frozen-blocks", type=int, default=5, help="Lite0 blocks kept at ImageNet's weights")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, help="use only the first N training photos (smoke runs)")
    parser.add_argument("--feature-cache", type=Path, help="keep the BlazePose features here (a few GB) for re-runs")
    parser.add_argument("--threads", type=int, help="torch threads (1 avoids thrashing on a busy machine)")
    args = parser.parse_args()

    args.epochs = args.epochs or (7 if args.appearance else 16)
    args.batch_size = args.batch_size or (8 if args.appearance else 16)
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = Settings()
    ccp = CCP(args.ccp)
    train, validation = ccp.split()
    if args.limit:
        train, validation = train[: args.limit], validation[: max(1, args.limit // 4)]
    pose = load_pose(settings).eval()
    detector = PersonDetectionStage(settings)

    started = time.perf_counter()
    print(f"caching BlazePose features for {len(train)} training photos x {VARIANTS} variants", flush=True)
    if args.feature_cache and args.feature_cache.is_file():
        cache = torch.load(args.feature_cache, weights_only=True)
    else:
        cache = build_cache(train, ccp, pose, detector, args.seed, keep_crops=args.appearance)
        if args.feature_cache:
            torch.save(cache, args.feature_cache)
    cached = time.perf_counter()
    appearance = None
    if args.appearance:
        if "crop" not in cache:
            raise SystemExit(f"{args.feature_cache} was cached without crops: delete it or pass another path")
        head, appearance = train_with_appearance(cache, imagenet_appearance(settings, args.frozen_blocks), args.epochs,
                                                 args.batch_size, args.lr, args.encoder_lr, args.seed)
    else:
        head = train_head(cache, args.epochs, args.batch_size, args.lr, args.seed)
    trained = time.perf_counter()
    del cache

    scores = evaluate(GarmentParser(pose, head, appearance), detector, validation, ccp)
    report = scores.report()
    report.update({
        "split": "validation: every 5th CCP photo by position (vision.training.ccp.CCP.split)",
        "train_photos": len(train), "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
        **({"appearance": "efficientnet-lite0", "encoder_lr": args.encoder_lr, "frozen_blocks": args.frozen_blocks}
           if args.appearance else {}),
        "seed": args.seed, "feature_cache_s": round(cached - started, 1),
        "training_s": round(trained - cached, 1), "threads": torch.get_num_threads(),
    })
    save_head(head, args.out, {k: report[k] for k in ("mean_iou", "mean_iou_garments", "pixel_accuracy")}, appearance)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    for name, value in report["iou"].items():
        print(f"  IoU {name:<14} {'-' if value is None else f'{value:.3f}'}")
    print(f"mean IoU {report['mean_iou']:.3f} (garments only {report['mean_iou_garments']:.3f}), "
          f"pixel accuracy {report['pixel_accuracy']:.3f} on {report['images']} held-out photos")


if __name__ == "__main__":
    main()

"""Measure the person-detection stage on the shared data (the numbers in docs/models/person-detection.md).

    .venv/bin/python bench/person_detection_eval.py [--data ../shared/data] [--cache-dir DIR]
        [--input-size 416] [--zoom-out 1.6] [--threads 1] [--skip-ccp] [--skip-video]

CCP (704 street-fashion photos, one main person each, often with passers-by behind; pixel masks):
how many photos get exactly one person, how many get a box that matches the bounding box of the
mask (nonzero pixels = the main person and what they wear) with IoU > 0.6, and how many get none.
Video one-by-one-person-detection.mp4 (10 fps): frames inside hand-checked intervals where nobody
is in view (false positives) and frames where exactly one person stands fully in view.
Every number is given at several thresholds, from one run at the lowest.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from configs import Settings
from configs.manifest import load_manifest
from vision.model_files import fetch_model
from vision.person_detection import MODEL_NAME, PersonDetectionStage

REPO_ROOT = Path(__file__).resolve().parent.parent
VIDEO = "videos/one-by-one-person-detection.mp4"
# Seconds where nobody is in view, checked on frames every 0.5 s (people enter at the bottom edge
# and leave at the right edge; the intervals stop about half a second short of either).
EMPTY_INTERVALS = [(0.0, 5.0), (20.5, 22.0), (45.5, 49.5), (71.0, 73.5), (88.0, 91.5), (121.0, 122.5), (137.0, 139.4)]
# Seconds where exactly one person stands fully in view.
ONE_PERSON_INTERVALS = [(8.0, 17.0), (25.0, 42.0), (53.0, 66.0), (78.0, 84.0), (96.0, 116.0), (127.0, 134.0)]
THRESHOLDS = [0.1, 0.2, 0.25, 0.3, 0.4, 0.5]
BATCH = 8


def box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def mask_box(path: Path) -> tuple[float, float, float, float]:
    """Bounding box (x1, y1, x2, y2, pixel edges) of a CCP mask's nonzero pixels."""
    ys, xs = np.nonzero(np.asarray(Image.open(path)))
    return (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


def in_intervals(t: float, intervals) -> bool:
    return any(a <= t <= b for a, b in intervals)


def above(found, threshold):
    return [d for d in found if d[4] >= threshold]


def eval_ccp(stage: PersonDetectionStage, data: Path, limit: int | None) -> None:
    ids = sorted(p.stem for p in (data / "ccp" / "images").glob("*.jpg"))[:limit]
    results = []
    start, zoomed = time.perf_counter(), stage.zoom_passes
    for first in range(0, len(ids), BATCH):
        chunk = ids[first : first + BATCH]
        images = [np.asarray(Image.open(data / "ccp" / "images" / f"{i}.jpg").convert("RGB")) for i in chunk]
        for i, found in zip(chunk, stage.detect(images)):
            results.append((i, mask_box(data / "ccp" / "masks" / f"{i}.png"), found))
    n = len(results)
    print(f"\nCCP: {n} photos in {time.perf_counter() - start:.0f} s; the zoomed-out pass ran on {stage.zoom_passes - zoomed}")
    print("threshold | exactly one person | none | 2+ (passers-by) | main person found (IoU>0.6) | median IoU")
    for threshold in THRESHOLDS:
        counts = [len(above(found, threshold)) for _, _, found in results]
        best = [max((box_iou(d[:4], truth) for d in above(found, threshold)), default=0.0) for _, truth, found in results]
        one = sum(c == 1 for c in counts)
        hit = sum(v > 0.6 for v in best)
        print(
            f"{threshold:9.2f} | {one:4d} ({one / n:6.1%})     | {sum(c == 0 for c in counts):4d} |"
            f" {sum(c >= 2 for c in counts):15d} | {hit:4d} ({hit / n:6.1%})              | {np.median(best):.3f}"
        )
    main_conf = [max((d[4] for d in found if box_iou(d[:4], truth) > 0.5), default=0.0) for _, truth, found in results]
    print(f"main person's confidence: median {np.median(main_conf):.2f}, quartiles "
          f"{np.quantile(main_conf, 0.25):.2f} / {np.quantile(main_conf, 0.75):.2f}")


def eval_video(stage: PersonDetectionStage, data: Path) -> None:
    import av

    with av.open(str(data / VIDEO)) as container:
        frames = [
            (f.time, f.to_ndarray(format="rgb24"))
            for f in container.decode(video=0)
            if in_intervals(f.time, EMPTY_INTERVALS) or in_intervals(f.time, ONE_PERSON_INTERVALS)
        ]
    empty, one = [], []
    start, zoomed = time.perf_counter(), stage.zoom_passes
    for first in range(0, len(frames), BATCH):
        chunk = frames[first : first + BATCH]
        for (t, _), found in zip(chunk, stage.detect([image for _, image in chunk])):
            (empty if in_intervals(t, EMPTY_INTERVALS) else one).append((t, found))
    print(f"\nvideo {VIDEO}: {len(empty)} frames with nobody, {len(one)} frames with one person, in "
          f"{time.perf_counter() - start:.0f} s; the zoomed-out pass ran on {stage.zoom_passes - zoomed}")
    print("threshold | empty frames with a person | false boxes | one-person frames: exactly one | none | 2+")
    for threshold in THRESHOLDS:
        fp_frames = sum(bool(above(found, threshold)) for _, found in empty)
        fp_boxes = sum(len(above(found, threshold)) for _, found in empty)
        counts = [len(above(found, threshold)) for _, found in one]
        print(
            f"{threshold:9.2f} | {fp_frames:26d} | {fp_boxes:11d} | {sum(c == 1 for c in counts):30d} |"
            f" {sum(c == 0 for c in counts):4d} | {sum(c >= 2 for c in counts):2d}"
        )
    worst = max((d[4] for _, found in empty for d in found), default=0.0)
    conf = [max(d[4] for d in found) for _, found in one if found]
    print(f"highest person confidence on an empty frame: {worst:.3f}; "
          f"on one-person frames: median {np.median(conf):.2f}, lowest {min(conf):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    parser.add_argument("--cache-dir", type=Path, default=Path("~/.cache/vestis/models").expanduser())
    parser.add_argument("--input-size", type=int, default=None, help="square network input (default: the manifest's)")
    parser.add_argument("--zoom-out", type=float, default=None,
                        help="second pass on a canvas this much larger (default: the settings'; 1 = off)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="only the first N CCP photos")
    parser.add_argument("--skip-ccp", action="store_true")
    parser.add_argument("--skip-video", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    fetch_model(load_manifest().get(MODEL_NAME), args.cache_dir)
    settings = Settings(models={"cache_dir": args.cache_dir}, vision={"device": "cpu", "batch_size": BATCH})
    size = (args.input_size, args.input_size) if args.input_size else None
    stage = PersonDetectionStage(settings, confidence_threshold=min(THRESHOLDS), input_size=size, zoom_out=args.zoom_out)
    print(f"{stage.model_version}: input {stage.input_width}x{stage.input_height}, NMS IoU {stage.nms_iou}, "
          f"zoom-out pass {stage.zoom_out}")
    if not args.skip_ccp:
        eval_ccp(stage, args.data, args.limit)
    if not args.skip_video:
        eval_video(stage, args.data)


if __name__ == "__main__":
    main()

"""CPU throughput of the person-detection stage (the numbers in docs/models/person-detection.md).

    .venv/bin/python bench/person_detection_speed.py --threads 2 --batch-sizes 1 8

Runs the whole stage call (letterbox, network, decoding, NMS, labels) on CCP photos (550x832) and on
frames of one-by-one-person-detection.mp4 (768x432), after a warm-up, and prints images per second.
Falls back to random images when the shared data is absent.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from configs import Settings
from configs.manifest import load_manifest
from vision.model_files import fetch_model
from vision.person_detection import MODEL_NAME, PersonDetectionStage
from vision.stage import Frame

REPO_ROOT = Path(__file__).resolve().parent.parent


def load_images(data: Path, count: int) -> dict[str, list[np.ndarray]]:
    from PIL import Image

    sets: dict[str, list[np.ndarray]] = {}
    photos = sorted((data / "ccp" / "images").glob("*.jpg"))[:count]
    if photos:
        sets["CCP photos 550x832"] = [np.asarray(Image.open(p).convert("RGB")) for p in photos]
    video = data / "videos" / "one-by-one-person-detection.mp4"
    if video.is_file():
        import av

        with av.open(str(video)) as container:
            frames = []
            for i, frame in enumerate(container.decode(video=0)):
                if i % 10 == 0:
                    frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) == count:
                    break
        sets["video frames 768x432"] = frames
    if not sets:
        rng = np.random.default_rng(0)
        sets["random 640x480"] = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(count)]
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    parser.add_argument("--cache-dir", type=Path, default=Path("~/.cache/vestis/models").expanduser())
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--images", type=int, default=64, help="images per measurement")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    fetch_model(load_manifest().get(MODEL_NAME), args.cache_dir)
    print(f"torch {torch.__version__}, {args.threads} thread(s), device {args.device}, "
          f"{platform.processor() or platform.machine()}")
    for name, images in load_images(args.data, args.images).items():
        for batch_size in args.batch_sizes:
            settings = Settings(
                models={"cache_dir": args.cache_dir}, vision={"device": args.device, "batch_size": batch_size}
            )
            stage = PersonDetectionStage(settings)

            def frames():
                return [Frame.of_photo(im, str(i), media_id="m") for i, im in enumerate(images)]

            stage(frames()[: 2 * batch_size])  # warm-up
            todo = frames()
            start = time.perf_counter()
            for first in range(0, len(todo), batch_size):
                stage(todo[first : first + batch_size])
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            print(f"{name}: batch {batch_size}: {len(todo) / elapsed:.1f} images/s "
                  f"({1000 * elapsed / len(todo):.1f} ms per image)")


if __name__ == "__main__":
    main()

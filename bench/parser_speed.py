"""One person's garment parse on one CPU thread: the shipped parser as the stage loads it (members
ready for inference: batch norms folded, pyramid channels_last) against the same files loaded
plainly, interleaved in one process so that both meet the same machine.

    .venv/bin/python bench/parser_speed.py [--repeats 8]

Prints the median ms per person crop (mirror average and guided filter as the stage runs them) of
each, and the largest difference between their class probabilities. Benchmarks never assert on speed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from configs import Settings
from configs.manifest import load_manifest
from vision import versions
from vision.garment_parser import GarmentParser, ParserMember
from vision.model_files import model_files
from vision.pose import PoseLandmarker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = Settings()
    manifest = load_manifest(settings.models.manifest)
    pose_record, record = manifest.get(versions.POSE_MODEL), manifest.get(versions.PARSER_MODEL)
    pose = PoseLandmarker.from_record(pose_record, model_files(pose_record, settings.models.cache_dir))
    files = model_files(record, settings.models.cache_dir)
    ready = GarmentParser.from_files(files, pose).eval()
    first, *others = [ParserMember.from_file(path) for path in files.values()]
    plain = GarmentParser(pose, first.head, first.appearance, others=tuple(others)).eval()
    for p in (ready, plain):
        p.mirror_average, p.edge_guide = versions.PARSER_MIRROR_AVERAGE, versions.PARSER_EDGE_GUIDE
    crops = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    times: dict[str, list[float]] = {"ready for inference": [], "plain": []}
    probs = {}
    for _ in range(args.repeats + 1):  # the first round warms up
        for name, p in (("ready for inference", ready), ("plain", plain)):
            start = time.perf_counter()
            _, probs[name] = p.forward_crops(crops)
            times[name].append(time.perf_counter() - start)
    for name, seconds in times.items():
        print(f"{name}: {1000 * float(np.median(seconds[1:])):.0f} ms per person")
    difference = (probs["ready for inference"] - probs["plain"]).abs().max().item()
    print(f"largest difference of a class probability: {difference:.2e}")


if __name__ == "__main__":
    main()

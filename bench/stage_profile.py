"""Where the default stages spend their time on video frames: one thread, as a Dask worker runs them.

    .venv/bin/python bench/stage_profile.py [--video ../shared/data/videos/one-by-one-person-detection.mp4]
        [--frames 24] [--sort cumulative|tottime]

Decodes every 5th second of the video (after the first 5 s), runs the stages once to warm up and
once under cProfile, and prints ms per frame for each stage and the 25 most expensive calls.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from pathlib import Path

import av
import torch

from configs import Settings
from vision.registry import build_stages
from vision.stage import Frame

REPO_ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path,
                        default=REPO_ROOT.parent / "shared" / "data" / "videos" / "one-by-one-person-detection.mp4")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--sort", default="cumulative", choices=["cumulative", "tottime"],
                        help="order of the profile's calls: cumulative time, or time inside the call itself")
    args = parser.parse_args()
    torch.set_num_threads(1)
    stages = build_stages(Settings(vision={"device": "cpu"}))
    images = []
    with av.open(str(args.video)) as container:
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time > 5 and int(frame.time * 10) % 50 == 0:
                images.append(frame.to_ndarray(format="rgb24"))
            if len(images) >= args.frames:
                break

    def run():
        frames = [Frame.of_photo(image, f"f{k}") for k, image in enumerate(images)]
        seconds = {}
        for stage in stages:
            start = time.perf_counter()
            frames = stage(frames)
            seconds[stage.name] = time.perf_counter() - start
        return frames, seconds

    run()
    profile = cProfile.Profile()
    profile.enable()
    frames, seconds = run()
    profile.disable()
    persons = sum(len(f.labels.persons) for f in frames)
    garments = sum(len(p.garments) for f in frames for p in f.labels.persons)
    print(f"{len(images)} frames, {persons} persons, {garments} garments; ms per frame:",
          {name: round(s / len(images) * 1000) for name, s in seconds.items()})
    pstats.Stats(profile).sort_stats(args.sort).print_stats(25)


if __name__ == "__main__":
    main()

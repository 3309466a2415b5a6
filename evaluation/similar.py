"""How well garment embeddings find like garments: `vestis eval similar`.

Two measurements, both through the vision stages ingest runs (person detection, garments), on the
embeddings those stages attach (vision/garment_embedding.py), compared by cosine as the index does
(exactly: this measures the embedding, not the index's approximation):

- CCP photos (`ccp/`, pixel masks): every garment with an embedding is a query against the garments
  of the *other* photos. Its true category is the CCP class covering most of its pixels in the true
  mask, folded into our vocabulary (vision/training/ccp.py's table; garments over mostly background
  or "other" pixels have none and are neither queries nor judged neighbours). CCP has no colour
  annotation, so "same colour" is judged by the colour namer's label on both garments (what a user
  sees on the page), which tests that the embedding keeps colours apart, not that the namer is right.
  Reported: the share of the top 10 neighbours with the query's category and with its colour, mean
  over queries, with the random baseline beside each (the exact expectation for 10 neighbours drawn
  uniformly from the other photos' judged garments).
- Videos: frames sampled at `fps` and passed through the stages, then linked into person tracks by
  indexer/moments.py (the moments search shows). Every garment with an embedding queries the
  garments of all the video's other frames; a hit is when the nearest belongs to the same track (the
  same person in another frame). The tracks are the product's own linking, not human truth: they
  are what "same person" means on the page. Reported per video and pooled.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from configs import Settings
from indexer.moments import build_moments
from labels import FrameLabels
from labels.masks import decode_mask
from labels.vocabulary import GARMENT_CATEGORIES
from vision.garment_parser import PARSER_CLASSES
from vision.stage import Frame

Progress = Callable[[int, int], None]
TOP = 10
HOLDOUT_EVERY = 5  # the CCP split of vision/training (train_garment_parser, garment_head_data)
VIDEOS = ("bikes.mp4", "carphone_pristine.mp4", "one-by-one-person-detection.mp4")


def _stages(settings: Settings):
    from vision.garments import GarmentStage
    from vision.person_detection import PersonDetectionStage

    return [PersonDetectionStage(settings), GarmentStage(settings)]


def _run(stages, frames: list[Frame]) -> list[Frame]:
    for stage in stages:
        frames = stage(frames)
    return frames


def neighbour_shares(vectors: np.ndarray, groups: np.ndarray, attributes: dict[str, np.ndarray],
                     top: int = TOP) -> dict[str, dict[str, float]]:
    """For each row, its `top` nearest rows of other groups (photos): the share with the same value
    of each attribute, mean over rows; and the random expectation of that share."""
    sims = vectors @ vectors.T
    sims[groups[:, None] == groups[None, :]] = -np.inf  # never the same photo
    order = np.argsort(-sims, axis=1)[:, :top]
    report: dict[str, dict[str, float]] = {}
    for name, values in attributes.items():
        same = values[order] == values[:, None]
        others = groups[None, :] != groups[:, None]
        baseline = ((values[None, :] == values[:, None]) & others).sum(1) / np.maximum(others.sum(1), 1)
        report[name] = {"top10_same": round(float(same.mean()), 4), "random": round(float(baseline.mean()), 4)}
    return report


_GARMENT_CLASSES = np.array([i for i, c in enumerate(PARSER_CLASSES) if c in GARMENT_CATEGORIES])
MIN_TRUE_SHARE = 0.3  # of the garment's pixels that the true category must cover


def _true_category(garment_mask: np.ndarray, truth: np.ndarray) -> str | None:
    """The garment class covering most of the garment's pixels in the true mask (skin, hair and
    background left out: a predicted mask spills over its edges), if it covers MIN_TRUE_SHARE."""
    counts = np.bincount(truth[garment_mask], minlength=len(PARSER_CLASSES))
    best = int(_GARMENT_CLASSES[counts[_GARMENT_CLASSES].argmax()])
    return PARSER_CLASSES[best] if counts[best] >= MIN_TRUE_SHARE * max(int(garment_mask.sum()), 1) else None


def evaluate_ccp(settings: Settings, root: Path, limit: int | None, progress: Progress | None = None,
                 holdout_every: int | None = HOLDOUT_EVERY) -> dict:
    from vision.training.ccp import CCP

    ccp = CCP(root)
    # The parser and the garment heads were trained on the other CCP photos: only the held-out ones
    # (every 5th by name) say how the embedding does on photos it never saw.
    images = ccp.images[::holdout_every] if holdout_every else ccp.images
    images = images[:limit] if limit else images
    stages = _stages(settings)
    vectors, groups, categories, colours = [], [], [], []
    without = 0
    for k, item in enumerate(images):
        with Image.open(item.image_path) as im:
            rgb = np.asarray(im.convert("RGB"))
        truth = ccp.lookup[np.asarray(Image.open(item.mask_path))]
        [frame] = _run(stages, [Frame.of_photo(rgb, item.image_id)])
        for person in frame.labels.persons:
            for garment in person.garments:
                if garment.embedding is None or garment.mask is None:
                    continue
                category = _true_category(decode_mask(garment.mask), truth)
                if category is None:
                    without += 1
                    continue
                vectors.append(garment.embedding.unit())
                groups.append(k)
                categories.append(category)
                colours.append(garment.color.value if garment.color else "")
        if progress:
            progress(k + 1, len(images))
    if not vectors:
        raise ValueError(f"no garment with an embedding and a true category in {len(images)} photos")
    shares = neighbour_shares(np.stack(vectors), np.array(groups), {
        "category": np.array(categories), "color": np.array(colours)})
    return {"photos": len(images), "holdout_every": holdout_every, "garments": len(vectors), "garments_without_true_category": without,
            "category": shares["category"], "color": shares["color"],
            "categories": {c: categories.count(c) for c in sorted(set(categories))}}


def _video_frames(path: Path, fps: float, settings: Settings) -> list[Frame]:
    from pipelines.media import frame_id
    from pipelines.sampling import sample_frames

    media_id = path.stem
    sampled = list(sample_frames(path, fps=fps, shot_threshold=1.0, max_side=settings.sampling.max_side))
    start = min((s.pts_time for s in sampled), default=0.0)  # times from the first frame, as ingest counts
    return [Frame(s.image, FrameLabels(frame_id=frame_id(media_id, s.pts_time - start), media_id=media_id,
                                       timestamp=max(0.0, s.pts_time - start), reason="rate",
                                       width=s.image.shape[1], height=s.image.shape[0]))
            for s in sampled]


def same_person_first(labels: list[FrameLabels]) -> dict:
    """Share of garments whose nearest garment in another frame is the same person's (same track)."""
    track = {}
    for m in build_moments(labels):
        for track_person in m.persons:
            for frame_id, index in zip(track_person.frame_ids, track_person.person_indices):
                track[(frame_id, index)] = m.moment_id
    vectors, frames, owners = [], [], []
    for frame in labels:
        for p, person in enumerate(frame.persons):
            for garment in person.garments:
                if garment.embedding is not None and (frame.frame_id, p) in track:
                    vectors.append(garment.embedding.unit())
                    frames.append(frame.frame_id)
                    owners.append(track[(frame.frame_id, p)])
    if len(vectors) < 2:
        return {"queries": 0, "same_person_first": None}
    v, f, o = np.stack(vectors), np.array(frames), np.array(owners)
    sims = v @ v.T
    sims[f[:, None] == f[None, :]] = -np.inf
    # a query whose person is seen in no other frame has no right answer: not a query
    seen_elsewhere = np.array([np.any((o == o[i]) & (f != f[i])) for i in range(len(o))])
    nearest = sims.argmax(axis=1)
    hits = (o[nearest] == o) & seen_elsewhere
    others = np.array([np.mean(o[f != f[i]] == o[i]) if np.any(f != f[i]) else 0.0 for i in range(len(o))])
    n = int(seen_elsewhere.sum())
    return {"queries": n, "tracks": len(set(owners)),
            "same_person_first": round(float(hits.sum() / n), 4) if n else None,
            "random": round(float(others[seen_elsewhere].mean()), 4) if n else None}


def evaluate_videos(settings: Settings, folder: Path, fps: float, progress: Progress | None = None) -> dict:
    stages = _stages(settings)
    report: dict = {}
    pooled_hits = pooled = 0.0
    paths = [folder / name for name in VIDEOS if (folder / name).is_file()]
    for k, path in enumerate(paths):
        frames = _run(stages, _video_frames(path, fps, settings))
        result = same_person_first([f.labels for f in frames])
        report[path.name] = {"frames": len(frames), **result}
        if result["queries"]:
            pooled += result["queries"]
            pooled_hits += result["queries"] * result["same_person_first"]
        if progress:
            progress(k + 1, len(paths))
    report["pooled"] = {"queries": int(pooled), "same_person_first": round(pooled_hits / pooled, 4) if pooled else None}
    return report


def evaluate_similar(settings: Settings, data: Path, limit: int | None, fps: float,
                     progress: Progress | None = None, holdout_every: int | None = HOLDOUT_EVERY) -> dict:
    """Both measurements on a shared-data folder (ccp/ and videos/); a missing one is left out."""
    report: dict = {"definitions": {
        "category.top10_same": "share of a CCP garment's 10 nearest garments (other photos) with its true category",
        "color.top10_same": "... with its colour label (CCP has no colour truth)",
        "random": "the same share for 10 neighbours drawn at random",
        "same_person_first": "share of video garments whose nearest garment in another frame is the same "
                             "person's (indexer/moments.py tracks)",
    }}
    if (data / "ccp" / "annotations.json").is_file():
        report["ccp"] = evaluate_ccp(settings, data / "ccp", limit, progress, holdout_every)
    if (data / "videos").is_dir():
        report["videos"] = evaluate_videos(settings, data / "videos", fps, progress)
    if len(report) == 1:
        raise ValueError(f"{data} has neither ccp/annotations.json nor videos/")
    return report

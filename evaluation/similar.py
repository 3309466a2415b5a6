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

Both measure embeddings made from each garment's parts (`_parts`: crop features kept as float16, the
category and colour shares) by vision/garment_embedding.py, int8-rounded as stored: the garment
stage's own embedding is made the same way (tests/vision/test_garments.py). So a file of parts
(`--cache`) measures a changed embedding without running a model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from configs import Settings
from indexer.moments import build_moments
from labels import Embedding, FrameLabels, Garment, RuleSet
from labels.masks import decode_mask
from labels.vocabulary import COLORS, GARMENT_CATEGORIES
from vision import garment_embedding, versions
from vision.backbone import FEATURE_DIM
from vision.garment_parser import PARSER_CLASSES
from vision.stage import Frame

Progress = Callable[[int, int], None]
TOP = 10
HOLDOUT_EVERY = 5  # the CCP split of vision/training (train_garment_parser, garment_head_data)
VIDEOS = ("bikes.mp4", "carphone_pristine.mp4", "one-by-one-person-detection.mp4")


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


# What each embedded garment is made of, extracted once per garment stage: the crop's pooled backbone
# features, the category label's probabilities over the vocabulary and the colour namer's shares
# (vision/garment_embedding.py makes an embedding of these), with what the measures judge by. Kept
# as arrays, one row a garment, named ccp_* and video_*; a --cache file holds them for every CCP
# photo (both splits: the training photos are a learned embedding's training data) and the videos.

def _stages(settings: Settings) -> list:
    """Person detection and the garment stage, the garment stage keeping each garment's features."""
    from vision.garments import GarmentStage
    from vision.person_detection import PersonDetectionStage

    garments = GarmentStage(settings)
    garments.kept_features = []
    return [PersonDetectionStage(settings), garments]


def _run(stages: list, frames: list[Frame]) -> dict[int, np.ndarray]:
    """Run the stages; the crop features of each embedded garment, by the garment record's id()."""
    stages[-1].kept_features.clear()
    for stage in stages:
        frames = stage(frames)
    return {id(garment): features for garment, features in stages[-1].kept_features}


def _parts(garment: Garment, features: np.ndarray) -> dict:
    return {"features": np.asarray(features, dtype=np.float16),
            "category": garment_embedding.shares(garment.category, tuple(GARMENT_CATEGORIES)),
            "color": garment_embedding.shares(garment.color, COLORS),
            "color_label": garment.color.value if garment.color else ""}


def _stack(rows: list[dict], prefix: str) -> dict[str, np.ndarray]:
    """Rows of equal keys -> one array per key, named prefix + key."""
    if not rows:
        return {prefix + "features": np.zeros((0, FEATURE_DIM), np.float16),
                prefix + "category": np.zeros((0, len(GARMENT_CATEGORIES)), np.float32),
                prefix + "color": np.zeros((0, len(COLORS)), np.float32)}
    return {prefix + k: np.stack([r[k] for r in rows]) if np.ndim(v) else np.array([r[k] for r in rows])
            for k, v in rows[0].items()}


def ccp_frames(ccp, indices: list[int]) -> Iterator[tuple[int, Frame, np.ndarray]]:
    """(index, the photo as a Frame, its true pixel classes in PARSER_CLASSES) for these indices into
    a vision.training.ccp.CCP's photos sorted by name."""
    for k in indices:
        item = ccp.images[k]
        with Image.open(item.image_path) as im:
            rgb = np.asarray(im.convert("RGB"))
        with Image.open(item.mask_path) as im:
            truth = ccp.lookup[np.asarray(im)]
        yield k, Frame.of_photo(rgb, item.image_id), truth


def collect_ccp(settings: Settings, root: Path, photos: list[int] | None = None,
                progress: Progress | None = None) -> dict[str, np.ndarray]:
    """The parts of every embedded garment of the CCP photos (all, or these indices into the photos
    sorted by name), with its photo's index and its true category ("" where none covers MIN_TRUE_SHARE)."""
    from vision.training.ccp import CCP

    ccp = CCP(root)
    indices = list(range(len(ccp.images))) if photos is None else photos
    stages = _stages(settings)
    rows: list[dict] = []
    for done, (k, frame, truth) in enumerate(ccp_frames(ccp, indices)):
        features = _run(stages, [frame])
        for person in frame.labels.persons:
            for garment in person.garments:
                if garment.embedding is None or garment.mask is None:
                    continue
                category = _true_category(decode_mask(garment.mask), truth)
                rows.append({**_parts(garment, features[id(garment)]), "true_category": category or "", "photo": k})
        if progress:
            progress(done + 1, len(indices))
    return {**_stack(rows, "ccp_"), "ccp_photos": np.array(indices)}


def embeddings(arrays: dict[str, np.ndarray], prefix: str, provenance: RuleSet) -> np.ndarray:
    """The unit embeddings the garment stage gives these garments' parts, int8-rounded as stored."""
    return np.stack([Embedding.made_by(provenance, garment_embedding.vector(f, c, k)).unit() for f, c, k in
                     zip(arrays[prefix + "features"].astype(np.float32), arrays[prefix + "category"],
                         arrays[prefix + "color"])]) if len(arrays[prefix + "features"]) else np.zeros((0, 1))


def _provenance(settings: Settings) -> RuleSet:
    from configs.manifest import load_manifest

    return garment_embedding.embedder(versions.backbone_features(load_manifest(settings.models.manifest)))


def evaluate_ccp(settings: Settings, root: Path, limit: int | None, progress: Progress | None = None,
                 holdout_every: int | None = HOLDOUT_EVERY, arrays: dict[str, np.ndarray] | None = None) -> dict:
    """The CCP measure; `arrays` are garment parts already extracted (`collect_ccp`, from a --cache
    file) for at least the photos measured."""
    from vision.training.ccp import CCP

    # The parser and the garment heads were trained on the other CCP photos: only the held-out ones
    # (every 5th by name) say how the embedding does on photos it never saw.
    photos = list(range(len(CCP(root).images)))
    photos = photos[::holdout_every] if holdout_every else photos
    photos = photos[:limit] if limit else photos
    if arrays is None:
        arrays = collect_ccp(settings, root, photos, progress)
    missing = set(photos) - set(arrays["ccp_photos"].tolist())
    if missing:
        raise ValueError(f"the garment parts given lack {len(missing)} of the photos measured")
    chosen = np.isin(arrays["ccp_photo"], photos)
    judged = chosen & (arrays["ccp_true_category"] != "")
    without = int((chosen & ~judged).sum())
    if not judged.any():
        raise ValueError(f"no garment with an embedding and a true category in {len(photos)} photos")
    arrays = {k: v[judged] for k, v in arrays.items() if k.startswith("ccp_") and k != "ccp_photos"}
    categories = arrays["ccp_true_category"]
    shares = neighbour_shares(embeddings(arrays, "ccp_", _provenance(settings)), arrays["ccp_photo"], {
        "category": categories, "color": arrays["ccp_color_label"]})
    return {"photos": len(photos), "holdout_every": holdout_every, "garments": int(judged.sum()),
            "garments_without_true_category": without,
            "category": shares["category"], "color": shares["color"],
            "categories": {str(c): int((categories == c).sum()) for c in sorted(set(categories.tolist()))}}


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


def _tracks(labels: list[FrameLabels]) -> dict[tuple[str, int], str]:
    """(frame id, person index) -> the moment (track) the person belongs to (indexer/moments.py)."""
    track = {}
    for m in build_moments(labels):
        for track_person in m.persons:
            for frame_id, index in zip(track_person.frame_ids, track_person.person_indices):
                track[(frame_id, index)] = m.moment_id
    return track


def nearest_is_same_track(v: np.ndarray, f: np.ndarray, o: np.ndarray) -> dict:
    """Rows of vectors with their frame and track: the share whose nearest row in another frame is
    of the same track, over rows whose track is seen in another frame."""
    if len(v) < 2:
        return {"queries": 0, "same_person_first": None}
    sims = v @ v.T
    sims[f[:, None] == f[None, :]] = -np.inf
    # a query whose person is seen in no other frame has no right answer: not a query
    seen_elsewhere = np.array([np.any((o == o[i]) & (f != f[i])) for i in range(len(o))])
    nearest = sims.argmax(axis=1)
    hits = (o[nearest] == o) & seen_elsewhere
    others = np.array([np.mean(o[f != f[i]] == o[i]) if np.any(f != f[i]) else 0.0 for i in range(len(o))])
    n = int(seen_elsewhere.sum())
    return {"queries": n, "tracks": len(set(o.tolist())),
            "same_person_first": round(float(hits.sum() / n), 4) if n else None,
            "random": round(float(others[seen_elsewhere].mean()), 4) if n else None}


def collect_videos(settings: Settings, folder: Path, fps: float, progress: Progress | None = None) -> dict[str, np.ndarray]:
    """The parts of every embedded garment in the shared videos' sampled frames, with its video,
    frame and track ("" for a person in no track)."""
    stage_list = _stages(settings)
    rows: list[dict] = []
    paths = [folder / name for name in VIDEOS if (folder / name).is_file()]
    frame_counts = []
    for k, path in enumerate(paths):
        frames = _video_frames(path, fps, settings)
        features = _run(stage_list, frames)
        labels = [f.labels for f in frames]
        track = _tracks(labels)
        frame_counts.append(len(frames))
        for frame in labels:
            for p, person in enumerate(frame.persons):
                for garment in person.garments:
                    if garment.embedding is not None:
                        rows.append({**_parts(garment, features[id(garment)]),
                                     "file": path.name, "frame": frame.frame_id,
                                     "track": track.get((frame.frame_id, p), "")})
        if progress:
            progress(k + 1, len(paths))
    return {**_stack(rows, "video_"),
            "video_names": np.array([p.name for p in paths]), "video_frames": np.array(frame_counts)}


def evaluate_videos(settings: Settings, folder: Path, fps: float, progress: Progress | None = None,
                    arrays: dict[str, np.ndarray] | None = None) -> dict:
    if arrays is None:
        arrays = collect_videos(settings, folder, fps, progress)
    report: dict = {}
    pooled_hits = pooled = 0.0
    provenance = _provenance(settings)
    for name, count in zip(arrays["video_names"].tolist(), arrays["video_frames"].tolist()):
        rows = (arrays.get("video_file", np.array([])) == name) & (arrays.get("video_track", np.array([])) != "")
        mine = {k: v[rows] for k, v in arrays.items()
                if k.startswith("video_") and k not in ("video_names", "video_frames")}
        result = nearest_is_same_track(embeddings(mine, "video_", provenance), mine["video_frame"], mine["video_track"])
        report[name] = {"frames": int(count), **result}
        if result["queries"]:
            pooled += result["queries"]
            pooled_hits += result["queries"] * result["same_person_first"]
    report["pooled"] = {"queries": int(pooled), "same_person_first": round(pooled_hits / pooled, 4) if pooled else None}
    return report


def write_parts(path: Path, arrays: dict[str, np.ndarray], key: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:  # a file object: savez would add ".npz" to a name without it
        # numpy's stub types **arrays as its bool options: the names here are never theirs
        np.savez_compressed(f, key=np.array(json.dumps(key, sort_keys=True)), **arrays)  # type: ignore[arg-type]


def read_parts(path: Path, key: dict | None = None) -> dict[str, np.ndarray] | None:
    """The arrays of a parts file written with this key (any key when None); None when the file is
    absent or was written for another garment stage, frame rate or data."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if key is not None and json.loads(str(data["key"])) != json.loads(json.dumps(key, sort_keys=True)):
                return None
            return {k: data[k] for k in data.files if k != "key"}
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path} is not a parts file of vestis eval similar: {exc} (delete it to start afresh)") from None


def evaluate_similar(settings: Settings, data: Path, limit: int | None, fps: float,
                     progress: Progress | None = None, holdout_every: int | None = HOLDOUT_EVERY,
                     cache: Path | None = None) -> dict:
    """Both measurements on a shared-data folder (ccp/ and videos/); a missing one is left out.

    With `cache`, the garments' parts (features, labels, truth) of every CCP photo, both splits, and
    of the videos are read from that file when it was made by the same garment stage and frame rate,
    else extracted and written there: the embedding is then measured in seconds, and the file is
    also the learned projection's training data (vision/training/train_garment_embedding.py)."""
    report: dict = {"definitions": {
        "category.top10_same": "share of a CCP garment's 10 nearest garments (other photos) with its true category",
        "color.top10_same": "... with its colour label (CCP has no colour truth)",
        "random": "the same share for 10 neighbours drawn at random",
        "same_person_first": "share of video garments whose nearest garment in another frame is the same "
                             "person's (indexer/moments.py tracks)",
    }}
    has_ccp, has_videos = (data / "ccp" / "annotations.json").is_file(), (data / "videos").is_dir()
    if not (has_ccp or has_videos):
        raise ValueError(f"{data} has neither ccp/annotations.json nor videos/")
    arrays: dict[str, np.ndarray] | None = None
    if cache is not None:
        # what the parts depend on: the garment stage's models and rules, not the embedding
        key = {"parts_version": versions.garments(settings, embedding=False), "fps": fps,
               "ccp": has_ccp, "videos": has_videos}
        arrays = read_parts(cache, key)
        report["cache"] = {"path": str(cache), "reused": arrays is not None}
        if arrays is None:
            arrays = {**(collect_ccp(settings, data / "ccp", None, progress) if has_ccp else {}),
                      **(collect_videos(settings, data / "videos", fps, progress) if has_videos else {})}
            write_parts(cache, arrays, key)
    if has_ccp:
        report["ccp"] = evaluate_ccp(settings, data / "ccp", limit, progress, holdout_every, arrays)
    if has_videos:
        report["videos"] = evaluate_videos(settings, data / "videos", fps, progress, arrays)
    return report

"""bench/similar_embedding_experiments.py on a small hand-made parts file."""

from __future__ import annotations

import sys

import numpy as np

from bench import similar_embedding_experiments as experiments
from evaluation.similar import write_parts
from labels.vocabulary import COLORS, GARMENT_CATEGORIES
from vision.backbone import FEATURE_DIM

CATEGORIES = tuple(GARMENT_CATEGORIES)


def test_lda_finds_the_direction_that_tells_two_classes_apart():
    rng = np.random.default_rng(0)
    y = np.repeat(np.array(["dress", "skirt"]), 100)
    x = rng.normal(size=(200, 5)) * np.array([5, 5, 5, 5, 0.5])  # the classes differ on the quiet axis only
    x[:, 4] += np.where(y == "dress", 1.0, -1.0)
    mean, projection = experiments.lda(x, y, shrink=0.0)
    assert projection.shape == (5, 1)
    z = ((x - mean) @ projection).ravel()
    right = np.mean((z > np.median(z)) == (y == "dress"))  # the direction's sign is arbitrary
    assert max(right, 1 - right) > 0.95
    loud = np.mean((x[:, 0] > np.median(x[:, 0])) == (y == "dress"))  # the largest-variance axis: chance
    assert max(loud, 1 - loud) < 0.7


def _kind_rows(n: int, rng) -> dict[str, np.ndarray]:
    kind = np.arange(n) % 2
    features = np.abs(rng.normal(size=(n, FEATURE_DIM))).astype(np.float32)
    features[:, :640] += 2 * kind[:, None]
    category = np.zeros((n, len(CATEGORIES)), np.float32)
    category[np.arange(n), np.where(kind, CATEGORIES.index("dress"), CATEGORIES.index("pants/jeans"))] = 0.9
    color = np.zeros((n, len(COLORS)), np.float32)
    color[np.arange(n), np.where(kind, COLORS.index("red"), COLORS.index("blue"))] = 1
    return {"features": features.astype(np.float16), "category": category, "color": color,
            "color_label": np.where(kind, "red", "blue"), "kind": kind}


def test_the_experiments_run_on_a_parts_file(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(1)
    photos = np.repeat(np.arange(60), 3)
    ccp = _kind_rows(len(photos), rng)
    video = _kind_rows(12, rng)
    arrays = {**{f"ccp_{k}": v for k, v in ccp.items() if k != "kind"},
              "ccp_true_category": np.where(ccp["kind"], "dress", "pants/jeans"), "ccp_photo": photos,
              "ccp_photos": np.arange(60),
              **{f"video_{k}": v for k, v in video.items() if k != "kind"},
              "video_file": np.array(["a.mp4"] * 12), "video_frame": np.repeat([f"f{k}" for k in range(6)], 2),
              "video_track": np.where(video["kind"], "m1", "m2"), "video_names": np.array(["a.mp4"]),
              "video_frames": np.array([6])}
    write_parts(tmp_path / "parts.npz", arrays, {"test": True})
    monkeypatch.setattr(sys, "argv", ["experiments", "--parts", str(tmp_path / "parts.npz")])
    experiments.main()
    out = capsys.readouterr().out
    for section in ("1. colour power", "2. appearance part alone", "3. learned parts added", "4. bounds"):
        assert section in out
    assert "true category, w=0.7: (1.0, 1.0)" in out  # the categories and colours go together here

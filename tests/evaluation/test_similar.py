"""The measures of `vestis eval similar` on hand-made vectors, where the right answer is known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from configs import Settings
from evaluation import similar
from evaluation.similar import evaluate_ccp, evaluate_similar, nearest_is_same_track, neighbour_shares
from labels import Embedding, RuleSet
from labels.vocabulary import COLORS, GARMENT_CATEGORIES
from vision.backbone import FEATURE_DIM
from tests.indexer.test_search import black_jacket_blue_jeans, frames, red_striped_dress

SPACE = RuleSet("garment-embedding", "test-1")
CATEGORIES = tuple(GARMENT_CATEGORIES)


def test_neighbour_shares_and_their_random_baseline():
    # two categories, three photos each; a vector per photo pointing at its category's axis
    vectors = np.array([[1, 0], [1, 0.1], [1, -0.1], [0, 1], [0.1, 1], [-0.1, 1]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    groups = np.arange(6)
    categories = np.array(["dress"] * 3 + ["skirt"] * 3)
    report = neighbour_shares(vectors, groups, {"category": categories}, top=2)
    assert report["category"]["top10_same"] == 1.0
    assert report["category"]["random"] == 0.4  # 2 of the 5 other photos share the category
    # the same photo never counts as a neighbour of itself
    report = neighbour_shares(vectors, np.array([0, 0, 0, 1, 1, 1]), {"category": categories}, top=2)
    assert report["category"]["top10_same"] == 0.0


def test_the_nearest_garment_in_another_frame_is_the_same_track():
    def with_vectors(labels, seeds):
        for frame in labels:
            for person in frame.persons:
                for k, garment in enumerate(person.garments):
                    garment.embedding = Embedding.made_by(SPACE, np.random.default_rng(seeds[k]).standard_normal(8))
        return labels

    # a dress for 3 s, then (after a gap that ends the track) a man in a jacket for 3 s
    labels = with_vectors(frames("v", [0.0, 1.0, 2.0], red_striped_dress()), [1]) + \
        with_vectors(frames("v", [10.0, 11.0, 12.0], black_jacket_blue_jeans()), [2, 3])
    track = similar._tracks(labels)  # the moments' person tracks, as collect_videos reads them
    rows = [(garment.embedding.unit(), frame.frame_id, track[(frame.frame_id, p)]) for frame in labels
            for p, person in enumerate(frame.persons) for garment in person.garments]
    vectors, frame_ids, owners = zip(*rows)
    result = nearest_is_same_track(np.stack(vectors), np.array(frame_ids), np.array(owners))
    assert result["tracks"] == 2 and result["queries"] == 9
    assert result["same_person_first"] == 1.0
    assert 0 < result["random"] < 1


def _fake_ccp(root, photos: int):
    """A CCP folder with only its annotations (the measure reads garment parts, not the photos)."""
    (root / "ccp").mkdir(parents=True)
    (root / "ccp" / "annotations.json").write_text(json.dumps({"label_names": ["null", "skin"], "images": [
        {"file": f"images/{k:04d}.jpg", "mask": f"masks/{k:04d}.png"} for k in range(photos)]}))
    return root / "ccp"


def _parts(photos: list[int], per_photo: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Garment parts as collect_ccp gives them: two true categories, each with its own features,
    category label and colour, and every third garment without a true category."""
    rng = np.random.default_rng(seed)
    n = len(photos) * per_photo
    kind = np.arange(n) % 2
    features = np.abs(rng.normal(size=(n, FEATURE_DIM))).astype(np.float32)
    features[:, :640] += 3 * kind[:, None]  # the categories look unlike
    category = np.zeros((n, len(CATEGORIES)), np.float32)
    category[np.arange(n), np.where(kind, CATEGORIES.index("dress"), CATEGORIES.index("pants/jeans"))] = 1
    color = np.zeros((n, len(COLORS)), np.float32)
    color[np.arange(n), np.where(kind, COLORS.index("red"), COLORS.index("blue"))] = 1
    truth = np.where(kind, "dress", "pants/jeans").astype(object)
    truth[np.arange(n) % 3 == 2] = ""
    return {"ccp_features": features.astype(np.float16), "ccp_category": category, "ccp_color": color,
            "ccp_color_label": np.where(kind, "red", "blue"), "ccp_true_category": truth.astype(str),
            "ccp_photo": np.repeat(photos, per_photo), "ccp_photos": np.array(photos)}


def test_ccp_measure_reads_only_held_out_photos_with_a_true_category(tmp_path):
    root = _fake_ccp(tmp_path, 100)
    arrays = _parts(list(range(100)), per_photo=3)
    report = evaluate_ccp(Settings(), root, limit=None, holdout_every=5, arrays=arrays)
    assert report["photos"] == 20  # photos 0, 5, ..., 95
    assert report["garments"] == 40 and report["garments_without_true_category"] == 20
    assert report["category"]["top10_same"] == 1.0 and report["color"]["top10_same"] == 1.0
    assert report["category"]["random"] < 1.0
    # parts that lack a photo measured are an error, not a smaller measure
    with pytest.raises(ValueError, match="lack"):
        evaluate_ccp(Settings(), root, limit=None, holdout_every=5, arrays=_parts(list(range(50)), per_photo=3))


def test_the_cache_is_reused_while_the_garment_stage_is_the_same(tmp_path, monkeypatch):
    _fake_ccp(tmp_path, 10)
    extracted = []

    def collect(settings, root, photos, progress=None):
        extracted.append(photos)
        return _parts(list(range(10)), per_photo=2)

    monkeypatch.setattr(similar, "collect_ccp", collect)
    cache = tmp_path / "parts"  # no suffix: written where asked all the same
    first = evaluate_similar(Settings(), tmp_path, None, 1.0, holdout_every=2, cache=cache)
    assert extracted == [None] and first["cache"]["reused"] is False and cache.is_file()
    second = evaluate_similar(Settings(), tmp_path, None, 1.0, holdout_every=2, cache=cache)
    assert extracted == [None] and second["cache"]["reused"] is True
    assert second["ccp"] == first["ccp"]
    # another garment stage (its models or rules) extracts again
    monkeypatch.setattr(similar.versions, "garments", lambda settings, **kw: "other-stage")
    evaluate_similar(Settings(), tmp_path, None, 1.0, holdout_every=2, cache=cache)
    assert extracted == [None, None]
    cache.write_bytes(b"not a parts file")
    with pytest.raises(ValueError, match="not a parts file"):
        evaluate_similar(Settings(), tmp_path, None, 1.0, holdout_every=2, cache=cache)

"""MTCNN in torch with the facenet-pytorch weights: NMS and pyramid, then real faces in CCP photos."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from configs.manifest import load_manifest
from vision.model_files import ModelFilesMissing, fetch_model
from vision.mtcnn import MTCNN, nms


CACHE_DIR = Path(os.environ.get("VESTIS_MODELS__CACHE_DIR", "~/.cache/vestis/models")).expanduser()
FACE_PARTS = {"skin", "sunglasses", "glasses", "hair"}  # CCP mask classes a face centre may fall on


# -- no weights needed -------------------------------------------------------------------------


def test_nms_keeps_best_of_overlapping_boxes_and_separate_ones():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.5]], dtype=float)
    scores = np.array([0.8, 0.9, 0.5, 0.7])
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    # "min" overlap: a box inside a bigger one is suppressed even though its IoU is small
    nested = np.array([[0, 0, 100, 100], [10, 10, 30, 30]], dtype=float)
    assert nms(nested, np.array([0.9, 0.8]), 0.7, mode="min").tolist() == [0]
    assert nms(nested, np.array([0.9, 0.8]), 0.7, mode="union").tolist() == [0, 1]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_pyramid_scales_follow_min_face_size_and_factor():
    detector = MTCNN(min_face_size=20, factor=0.709)
    scales = detector.scales(160, 160)
    assert scales[0] == pytest.approx(12 / 20)
    assert all(b == pytest.approx(a * 0.709) for a, b in zip(scales, scales[1:]))
    assert 160 * scales[-1] >= 12 and 160 * scales[-1] * 0.709 < 12


def test_blank_batch_has_no_face_and_keeps_batch_order():
    found = MTCNN().detect(torch.full((3, 3, 64, 80), 127.0))  # random weights: still runs, finds nothing real
    assert len(found) == 3
    with pytest.raises(ValueError):
        MTCNN().detect(torch.zeros(3, 64, 64))


# -- real weights, real photos -----------------------------------------------------------------


@pytest.fixture(scope="session")
def detector() -> MTCNN:
    record = load_manifest().get("mtcnn")
    try:
        files = fetch_model(record, CACHE_DIR)
    except ModelFilesMissing as exc:
        pytest.skip(f"could not fetch the MTCNN weights from PyPI (facenet-pytorch wheel): {exc}")
    pre = record.preprocessing
    return MTCNN.from_files(files, min_face_size=pre["min_face_size"], thresholds=tuple(pre["thresholds"]),
                            factor=pre["pyramid_factor"])


@pytest.fixture(scope="module")
def ccp(shared_data: Path) -> list[dict]:
    folder = shared_data / "ccp"
    if not (folder / "annotations.json").is_file():
        pytest.skip(f"{folder} is absent")
    images = json.loads((folder / "annotations.json").read_text())["images"]
    for rec in images:
        boxes = np.array([r["bbox_xyxy"] for r in rec["regions"]], dtype=float)
        rec["person"] = (boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max())
        rec["path"] = folder / rec["file"]
        rec["mask_path"] = folder / rec["mask"]
    return images


def _rgb(path: Path) -> np.ndarray:
    from PIL import Image

    return np.array(Image.open(path).convert("RGB"))


def _batch(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()


def test_state_dicts_load_strictly_into_the_torch_nets(detector: MTCNN):
    assert detector.pnet.conv1.weight.shape == (10, 3, 3, 3)
    assert detector.onet.dense6_3.weight.shape == (10, 256)
    assert not torch.all(detector.rnet.dense4.weight == 0)


def test_finds_the_face_in_the_upper_part_of_the_person_in_ccp_photos(detector: MTCNN, ccp):
    from PIL import Image

    label_names = json.loads((ccp[0]["path"].parent.parent / "annotations.json").read_text())["label_names"]
    found, on_face = 0, 0
    sample = ccp[:40]
    for rec in sample:
        image = _rgb(rec["path"])
        x1, y1, x2, y2 = rec["person"]
        top = int(y1 + 0.5 * (y2 - y1))
        crop = image[int(y1) : top, int(x1) : int(x2)]
        faces = detector.detect(_batch(crop))[0]
        if not len(faces) or faces.scores[0] < 0.9:
            continue
        found += 1
        fx1, fy1, fx2, fy2 = faces.boxes[0]
        cx, cy = int((fx1 + fx2) / 2 + x1), int((fy1 + fy2) / 2 + y1)
        mask = np.array(Image.open(rec["mask_path"]))
        on_face += label_names[mask[cy, cx]] in FACE_PARTS
        # a face, not a whole body: a small part of the person's height, plausibly shaped
        assert 0.03 < (fy2 - fy1) / (y2 - y1) < 0.3
        assert 0.5 < (fx2 - fx1) / (fy2 - fy1) < 1.3
    assert found >= 0.9 * len(sample)
    assert on_face >= 0.95 * found  # the box centre lies on the face's skin or glasses in the CCP mask


def test_landmarks_are_in_face_order_for_upright_faces(detector: MTCNN, ccp):
    for rec in ccp[:10]:
        faces = detector.detect(_batch(_rgb(rec["path"])))[0]
        assert len(faces) >= 1
        marks = faces.landmarks[0]  # left eye, right eye, nose, left mouth, right mouth
        x1, y1, x2, y2 = faces.boxes[0]
        assert np.all((marks[:, 0] > x1 - 5) & (marks[:, 0] < x2 + 5) & (marks[:, 1] > y1 - 5) & (marks[:, 1] < y2 + 5))
        assert max(marks[0, 1], marks[1, 1]) < marks[2, 1] < min(marks[3, 1], marks[4, 1])  # eyes, nose, mouth
        assert marks[0, 0] < marks[1, 0] and marks[3, 0] < marks[4, 0]


def test_batch_gives_the_same_faces_as_one_image_at_a_time(detector: MTCNN, ccp):
    crops = []
    for rec in ccp[:4]:
        image = _rgb(rec["path"])
        crops.append(torch.nn.functional.interpolate(_batch(image), size=(240, 160), mode="area")[0])
    batched = detector.detect(torch.stack(crops))
    for crop, together in zip(crops, batched):
        alone = detector.detect(crop[None])[0]
        assert len(alone) == len(together)
        np.testing.assert_allclose(alone.boxes, together.boxes, atol=1e-3)
        np.testing.assert_allclose(alone.scores, together.scores, atol=1e-5)


# background strips beside the person in CCP photos (checked by eye: pavement, road, walls, steps)
BACKGROUND = [("0002", "left"), ("0003", "left"), ("0010", "left"), ("0013", "left"), ("0034", "left"),
              ("0065", "left"), ("0032", "right"), ("0079", "right")]


def test_no_face_in_plain_background(detector: MTCNN, ccp):
    by_id = {Path(rec["file"]).stem: rec for rec in ccp}
    for image_id, side in BACKGROUND:
        rec = by_id[image_id]
        image = _rgb(rec["path"])
        height, width = image.shape[:2]
        x1, _, x2, _ = rec["person"]
        strip = image[int(0.45 * height) :, : int(x1) - 10] if side == "left" else image[int(0.45 * height) :, int(x2) + 10 :]
        assert strip.shape[1] >= 120
        faces = detector.detect(_batch(strip))[0]
        assert not len(faces) or faces.scores[0] < 0.9, f"{image_id} {side}: {faces.scores}"

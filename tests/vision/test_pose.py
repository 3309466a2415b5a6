"""BlazePose GHUM through the TFLite converter: the resize op, and real landmarks and person masks on
CCP photos (checked against the photos' own pixel labels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from configs import Settings
from configs.manifest import load_manifest
from vision.model_files import ModelFilesMissing, fetch_model
from vision.pose import MODEL_NAME, CropWindow, PoseLandmarker, crops_tensor
from vision.tflite_to_torch import _resize_bilinear

CACHE_DIR = Settings().models.cache_dir.expanduser()
PHOTOS = ["0002", "0010", "0020", "0046"]  # one person each, fully in view


def test_resize_bilinear_legacy_sampling():
    x = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    y = _resize_bilinear(x, [4, 4], align_corners=False, half_pixel=False)
    # TF's legacy rule samples source = destination * in/out, clamped: 0, 0.5, 1, 1(.5)
    assert y[0, 0, 0].tolist() == [0.0, 0.5, 1.0, 1.0]
    assert y[0, 0, :, 0].tolist() == [0.0, 1.0, 2.0, 2.0]
    half = _resize_bilinear(x, [4, 4], align_corners=False, half_pixel=True)
    torch.testing.assert_close(half, torch.nn.functional.interpolate(x, size=(4, 4), mode="bilinear"))


def test_crop_window_maps_back_to_the_frame():
    window = CropWindow.around((100, 50, 200, 250), crop_scale=1.25)
    assert window.side == 250 and (window.x0, window.y0) == (25, 25)
    corners = window.to_frame(np.array([[0, 0], [256, 256]], dtype=np.float32))
    np.testing.assert_allclose(corners, [[25, 25], [275, 275]])
    image = np.full((100, 100, 3), 200, np.uint8)
    crop = CropWindow(-50, -50, 100).cut(image, size=64)  # three quarters outside: black there
    assert crop.shape == (64, 64, 3) and crop[:20, :20].max() == 0 and crop[-10:, -10:].min() == 200


@pytest.fixture(scope="module")
def pose() -> PoseLandmarker:
    record = load_manifest().get(MODEL_NAME)
    try:
        files = fetch_model(record, CACHE_DIR)
    except ModelFilesMissing as exc:
        pytest.skip(f"could not fetch the mediapipe wheel from PyPI: {exc}")
    return PoseLandmarker.from_record(record, files)


def _person_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


@pytest.mark.parametrize("photo", PHOTOS)
def test_landmarks_and_mask_on_real_photos(pose, shared_data: Path, photo: str):
    image = np.asarray(Image.open(shared_data / "ccp" / "images" / f"{photo}.jpg").convert("RGB"))
    person = np.asarray(Image.open(shared_data / "ccp" / "masks" / f"{photo}.png")) > 0
    window = pose.windows([_person_box(person)])[0]
    with torch.no_grad():
        out = pose(crops_tensor([window.cut(image)], torch.device("cpu"), torch.float32), with_features=True)
    assert float(out.pose_score[0]) > 0.9
    points = window.to_frame(out.landmarks[0, :, :2].numpy())
    nose, shoulders, hips, ankles = points[0], points[[11, 12]], points[[23, 24]], points[[27, 28]]
    assert nose[1] < shoulders[:, 1].min() and shoulders[:, 1].max() < hips[:, 1].min() < ankles[:, 1].min()
    # the nose lies on the labelled person (face skin or hair), not beside them
    assert person[int(nose[1]), int(nose[0])]
    # BlazePose's own person mask, pasted back into the photo, agrees with the labelled person
    crop_mask = torch.sigmoid(out.mask_logits[0, 0]).numpy() > 0.5
    cells = np.clip(((np.indices(person.shape) + 0.5 - np.array([window.y0, window.x0])[:, None, None])
                     * 256 / window.side).astype(int), 0, 255)
    pasted = crop_mask[cells[0], cells[1]]
    iou = (pasted & person).sum() / (pasted | person).sum()
    assert iou > 0.8, f"person mask IoU {iou:.2f}"
    assert {k: tuple(v.shape[1:]) for k, v in out.features.items()} == {
        "enc8": (144, 8, 8), "dec16": (48, 16, 16), "dec32": (48, 32, 32), "dec64": (48, 64, 64),
        "seg128": (8, 128, 128)}

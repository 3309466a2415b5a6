"""Body landmarks and person features from BlazePose GHUM (manifest record `blazepose-ghum-full`).

One square crop per person box (MediaPipe's ROI: the box's longer side x 1.25, centred on the box),
scaled to 256x256, goes through the converted TFLite model in a batch. Out come 33 body landmarks
(mapped back to frame pixels), a person-segmentation logit map, and, when asked, the decoder's inner
feature maps: a person-centred feature pyramid on which the garment parser's head is trained
(vision/garment_parser.py), so the heavy part of parsing is a network someone trained on many people.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from configs.manifest import ModelRecord
from vision import versions
from vision.model_files import build_model
from vision.tflite_to_torch import TFLiteModule

MODEL_NAME = versions.POSE_MODEL
INPUT_SIZE = 256
BODY_LANDMARKS = 33

# Decoder tensors tapped as features (name in the .tflite graph -> short key): the three 48-channel
# decoder levels, the encoder's 8x8 bottleneck (whole-body context) and the 8-channel 128x128 map
# that feeds the segmentation output (sharp person edges).
FEATURE_TAPS: dict[str, str] = {
    "model_1/model/add_8/add": "enc8",
    "model_1/model/add_9/add": "dec16",
    "model_1/model/add_10/add": "dec32",
    "model_1/model/add_11/add": "dec64",
    "model_1/model/re_lu_71/Relu6;model_1/model/add_25/add": "seg128",
}


@dataclass(frozen=True)
class CropWindow:
    """The square of the frame (integer pixels, may reach outside it) that became the model's input."""

    x0: int
    y0: int
    side: int

    @classmethod
    def around(cls, box: tuple[float, float, float, float], crop_scale: float) -> "CropWindow":
        x1, y1, x2, y2 = box
        side = max(1, round(max(x2 - x1, y2 - y1) * crop_scale))
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        return cls(round(cx - side / 2), round(cy - side / 2), side)

    def to_frame(self, xy: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
        """Crop-input pixel coordinates (..., 2) -> frame pixel coordinates."""
        return xy * (self.side / size) + np.array([self.x0, self.y0], dtype=np.float32)

    def cut(self, image: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
        """The window as a size x size RGB uint8 array; outside the frame is black (MediaPipe pads so)."""
        crop = Image.fromarray(image).crop((self.x0, self.y0, self.x0 + self.side, self.y0 + self.side))
        return np.asarray(crop.resize((size, size), Image.Resampling.BILINEAR))


@dataclass
class PoseOutput:
    landmarks: torch.Tensor  # N x 33 x 5: x, y (crop-input pixels), z, visibility logit, presence logit
    pose_score: torch.Tensor  # N: the model's probability that a person is in the crop
    mask_logits: torch.Tensor  # N x 1 x 256 x 256: person segmentation (logits)
    features: dict[str, torch.Tensor]  # FEATURE_TAPS keys -> N x C x H x W (empty unless asked)


class PoseLandmarker(torch.nn.Module):
    """BlazePose GHUM full as a torch module: `forward(crops)` on N x 3 x 256 x 256 floats in [0, 1]."""

    def __init__(self, net: TFLiteModule, crop_scale: float = 1.25):
        super().__init__()
        self.net = net
        self.crop_scale = float(crop_scale)
        self.tap_indices = [net.tensor_index(name) for name in FEATURE_TAPS]

    @classmethod
    def from_record(cls, record: ModelRecord, files: dict[str, Path]) -> "PoseLandmarker":
        net = build_model(record, files)  # the record's entry point: a TFLiteModule
        return cls(net, record.preprocessing.get("crop_scale", 1.25)).eval()

    def windows(self, boxes: list[tuple[float, float, float, float]]) -> list[CropWindow]:
        return [CropWindow.around(box, self.crop_scale) for box in boxes]

    def forward(self, crops: torch.Tensor, with_features: bool = False) -> PoseOutput:
        taps = self.tap_indices if with_features else None
        result = self.net(crops, taps=taps)
        (landmarks, score, mask, _heatmap, _world), tapped = result if with_features else (result, [])
        return PoseOutput(
            landmarks=landmarks.reshape(-1, 39, 5)[:, :BODY_LANDMARKS],
            pose_score=score.reshape(-1),
            mask_logits=mask,
            features=dict(zip(FEATURE_TAPS.values(), tapped)),
        )


def crops_tensor(crops: list[np.ndarray], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """RGB uint8 crops -> the model's N x 3 x 256 x 256 input in [0, 1]."""
    batch = torch.from_numpy(np.stack(crops)).to(device).permute(0, 3, 1, 2)
    return batch.to(dtype) / 255.0

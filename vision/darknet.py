"""Darknet networks in pure torch: parse a darknet `.cfg`, load its `.weights`, decode YOLO heads.

Enough of darknet for the YOLOv3 family (yolov3, yolov3-tiny, and the yolov4-tiny style
`route groups=`): convolutional (with batch norm), maxpool, route, shortcut, upsample and yolo layers.

Batch norm is folded into the convolution when the weights are loaded, with darknet's own formula
`(x - mean) / (sqrt(var) + 1e-6) * scale + bias` (torch's BatchNorm2d puts eps inside the square root),
so the module is conv + bias + activation per block and runs unchanged in fp16.

`Darknet.forward` returns the decoded predictions of every YOLO head, concatenated:
a float32 tensor (batch, boxes, 5 + classes) holding centre x, centre y, width, height in pixels of
the network input, objectness and per-class probabilities (sigmoids). A class-aware confidence is
objectness * class probability, as darknet computes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Darknet", "DarknetError", "parse_cfg", "boxes_cxcywh_to_xyxy", "nms"]

_DARKNET_BN_EPS = 1e-6


class DarknetError(ValueError):
    """A cfg or weights file that this loader cannot use; the message says why."""


def parse_cfg(text: str) -> list[dict[str, str]]:
    """Sections of a darknet cfg in order, each a dict of its options plus `type` (e.g. "convolutional")."""
    sections: list[dict[str, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise DarknetError(f"cfg line {number}: unclosed section header {raw!r}")
            sections.append({"type": line[1:-1].strip().lower()})
        elif "=" in line:
            if not sections:
                raise DarknetError(f"cfg line {number}: option before the first section")
            key, _, value = line.partition("=")
            sections[-1][key.strip()] = value.strip()
        else:
            raise DarknetError(f"cfg line {number}: expected `key=value`, got {raw!r}")
    if not sections or sections[0]["type"] not in {"net", "network"}:
        raise DarknetError("cfg must start with a [net] section")
    return sections


def _ints(value: str) -> list[int]:
    return [int(v) for v in value.replace(" ", "").split(",") if v]


def _floats(value: str) -> list[float]:
    return [float(v) for v in value.replace(" ", "").split(",") if v]


class _Activation(nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        if kind not in {"leaky", "linear", "relu", "logistic", "mish", "swish", "silu"}:
            raise DarknetError(f"unsupported activation {kind!r}")
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "leaky":
            return F.leaky_relu(x, 0.1, inplace=True)  # x is the convolution's fresh output
        if self.kind == "relu":
            return F.relu(x)
        if self.kind == "logistic":
            return torch.sigmoid(x)
        if self.kind == "mish":
            return F.mish(x)
        if self.kind in {"swish", "silu"}:
            return F.silu(x)
        return x


class ConvBlock(nn.Module):
    """Darknet [convolutional]: conv (+ batch norm, folded in at load time) + activation."""

    def __init__(self, in_channels: int, options: dict[str, str]):
        super().__init__()
        filters = int(options.get("filters", 1))
        size = int(options.get("size", 1))
        stride = int(options.get("stride", 1))
        groups = int(options.get("groups", 1))
        padding = size // 2 if int(options.get("pad", 0)) else int(options.get("padding", 0))
        self.batch_normalize = bool(int(options.get("batch_normalize", 0)))
        self.conv = nn.Conv2d(in_channels, filters, size, stride, padding, groups=groups, bias=True)
        self.act = _Activation(options.get("activation", "logistic"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))

    def load_darknet(self, weights: np.ndarray, offset: int) -> int:
        """Read this layer's parameters from the flat weights array at `offset`; return the new offset."""
        conv = self.conv
        n = conv.out_channels
        n_weights = conv.weight.numel()

        def take(count: int) -> np.ndarray:
            nonlocal offset
            if offset + count > weights.size:
                raise DarknetError("weights file ends before the cfg's last layer: wrong cfg for these weights?")
            chunk = weights[offset : offset + count]
            offset += count
            return chunk

        bias = torch.from_numpy(take(n).astype(np.float32))
        if self.batch_normalize:
            scale = torch.from_numpy(take(n).astype(np.float32))
            mean = torch.from_numpy(take(n).astype(np.float32))
            var = torch.from_numpy(take(n).astype(np.float32))
        weight = torch.from_numpy(take(n_weights).astype(np.float32)).view_as(conv.weight)
        if self.batch_normalize:
            factor = scale / (var.clamp(min=0).sqrt() + _DARKNET_BN_EPS)
            weight = weight * factor.view(-1, 1, 1, 1)
            bias = bias - mean * factor
        with torch.no_grad():
            conv.weight.copy_(weight)
            assert conv.bias is not None  # the conv is built with a bias to fold batch norm into
            conv.bias.copy_(bias)
        return offset


class MaxPool(nn.Module):
    """Darknet [maxpool]: pads `size - 1` (left/top gets half, rounded down), so size=2 stride=1 keeps the size."""

    def __init__(self, options: dict[str, str]):
        super().__init__()
        self.size = int(options.get("size", 1))
        self.stride = int(options.get("stride", 1))
        padding = int(options.get("padding", self.size - 1))
        self.pad_before = padding // 2
        self.pad_after = padding - padding // 2

    def _pad_needed(self, size: int) -> bool:
        """Whether padding changes the output along an axis of this size: with nothing before, the
        pixels after are read only when they add an output (stride 2 on an even size never does)."""
        if self.pad_before:
            return True
        return (size + self.pad_after - self.size) // self.stride != (size - self.size) // self.stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._pad_needed(x.shape[-2]) or self._pad_needed(x.shape[-1]):
            # Darknet skips outside positions; padding with -inf gives the same maxima.
            p = (self.pad_before, self.pad_after, self.pad_before, self.pad_after)
            x = F.pad(x, p, mode="constant", value=float("-inf"))
        return F.max_pool2d(x, self.size, self.stride)


class Upsample(nn.Module):
    def __init__(self, options: dict[str, str]):
        super().__init__()
        self.stride = int(options.get("stride", 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.stride, mode="nearest")


class Route(nn.Module):
    """Darknet [route]: concatenate earlier outputs along channels (optionally one channel group of each)."""

    def __init__(self, layers: list[int], groups: int = 1, group_id: int = 0):
        super().__init__()
        self.layers = layers  # absolute indices
        self.groups = groups
        self.group_id = group_id

    def forward(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        parts = []
        for i in self.layers:
            out = outputs[i]
            if self.groups > 1:
                out = out.chunk(self.groups, dim=1)[self.group_id]
            parts.append(out)
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


class Shortcut(nn.Module):
    def __init__(self, source: int, activation: str):
        super().__init__()
        self.source = source  # absolute index
        self.act = _Activation(activation)

    def forward(self, x: torch.Tensor, outputs: list[torch.Tensor]) -> torch.Tensor:
        return self.act(x + outputs[self.source])


class YoloHead(nn.Module):
    """Darknet [yolo]: turn a conv output into boxes (pixels of the network input) and probabilities."""

    anchors: torch.Tensor

    def __init__(self, options: dict[str, str]):
        super().__init__()
        anchors = _ints(options["anchors"]) if "anchors" in options else []
        pairs = [(anchors[i], anchors[i + 1]) for i in range(0, len(anchors), 2)]
        mask = _ints(options["mask"]) if "mask" in options else list(range(len(pairs)))
        if not pairs or any(m >= len(pairs) for m in mask):
            raise DarknetError(f"yolo layer: mask {mask} does not index anchors {anchors}")
        self.classes = int(options.get("classes", 80))
        self.scale_x_y = float(options.get("scale_x_y", 1.0))
        self.register_buffer("anchors", torch.tensor([pairs[m] for m in mask], dtype=torch.float32), persistent=False)

    @property
    def num_anchors(self) -> int:
        return self.anchors.shape[0]

    def forward(self, x: torch.Tensor, input_height: int, input_width: int) -> torch.Tensor:
        """Boxes for a conv output `x`; the network input's size turns grid cells into pixels."""
        n, channels, h, w = x.shape
        a = self.num_anchors
        if channels != a * (5 + self.classes):
            raise DarknetError(
                f"yolo layer gets {channels} channels, expects {a} anchors x (5 + {self.classes} classes)"
            )
        # Decode in float32 whatever the network runs in: exp() of fp16 overflows easily.
        p = x.float().view(n, a, 5 + self.classes, h, w).permute(0, 1, 3, 4, 2)
        gy, gx = torch.meshgrid(
            torch.arange(h, device=x.device, dtype=torch.float32),
            torch.arange(w, device=x.device, dtype=torch.float32),
            indexing="ij",
        )
        sxy = torch.sigmoid(p[..., 0:2])
        if self.scale_x_y != 1.0:
            sxy = sxy * self.scale_x_y - (self.scale_x_y - 1.0) / 2
        cx = (sxy[..., 0] + gx) * (input_width / w)
        cy = (sxy[..., 1] + gy) * (input_height / h)
        anchors = self.anchors.to(device=x.device, dtype=torch.float32).view(1, a, 1, 1, 2)
        wh = torch.exp(p[..., 2:4].clamp(max=20.0)) * anchors
        probs = torch.sigmoid(p[..., 4:])
        out = torch.cat([cx.unsqueeze(-1), cy.unsqueeze(-1), wh, probs], dim=-1)
        return out.reshape(n, a * h * w, 5 + self.classes)


class Darknet(nn.Module):
    """A darknet network built from its cfg; call `load_weights` (or use `from_files`) for trained weights."""

    def __init__(self, cfg: str | Path | list[dict[str, str]], yolo_masks: list[list[int]] | None = None):
        """yolo_masks: the anchor indices of each [yolo] layer in cfg order, replacing the cfg's `mask`
        lines (a cfg shipped with the wrong mask for its weights is corrected in the model record)."""
        super().__init__()
        if isinstance(cfg, Path) or (isinstance(cfg, str) and "\n" not in cfg and Path(cfg).is_file()):
            cfg = parse_cfg(Path(cfg).read_text())
        elif isinstance(cfg, str):
            cfg = parse_cfg(cfg)
        if yolo_masks is not None:
            cfg = _with_yolo_masks(cfg, yolo_masks)
        net, layers = cfg[0], cfg[1:]
        self.width = int(net.get("width", 416))
        self.height = int(net.get("height", 416))
        self.channels = int(net.get("channels", 3))
        self.cfg = cfg
        self.layers = nn.ModuleList()
        self.kinds: list[str] = []
        out_channels: list[int] = []
        channels = self.channels
        for index, options in enumerate(layers):
            kind = options["type"]
            if kind == "convolutional":
                conv_block = ConvBlock(channels, options)
                channels = conv_block.conv.out_channels
                module: nn.Module = conv_block
            elif kind == "maxpool":
                module = MaxPool(options)
            elif kind == "upsample":
                module = Upsample(options)
            elif kind == "route":
                refs = [r if r >= 0 else index + r for r in _ints(options["layers"])]
                if any(r < 0 or r >= index for r in refs):
                    raise DarknetError(f"layer {index}: route to {options['layers']} points outside 0..{index - 1}")
                groups = int(options.get("groups", 1))
                module = Route(refs, groups, int(options.get("group_id", 0)))
                channels = sum(out_channels[r] for r in refs) // groups
            elif kind == "shortcut":
                source = int(options["from"])
                source = source if source >= 0 else index + source
                module = Shortcut(source, options.get("activation", "linear"))
            elif kind == "yolo":
                module = YoloHead(options)
            else:
                raise DarknetError(f"layer {index}: darknet layer type [{kind}] is not supported")
            self.layers.append(module)
            self.kinds.append(kind)
            out_channels.append(channels)
        if "yolo" not in self.kinds:
            raise DarknetError("cfg has no [yolo] layer")
        self.classes = next(m.classes for m in self.layers if isinstance(m, YoloHead))
        self.header: dict[str, Any] = {}

    @classmethod
    def from_files(cls, files: dict[str, Path], yolo_masks: list[list[int]] | None = None) -> "Darknet":
        """Build from a model's files by name (as `vision.model_files.model_files` returns them)."""
        cfgs = [p for p in files.values() if Path(p).suffix == ".cfg"]
        weights = [p for p in files.values() if Path(p).suffix == ".weights"]
        if len(cfgs) != 1 or len(weights) != 1:
            raise DarknetError(f"need exactly one .cfg and one .weights file, got {sorted(files)}")
        model = cls(Path(cfgs[0]), yolo_masks=yolo_masks)
        model.load_weights(weights[0])
        return model.eval()

    def load_weights(self, path: str | Path) -> None:
        """Load darknet weights: a header (major, minor, revision, images seen), then each conv in cfg order."""
        with open(path, "rb") as handle:
            major, minor, revision = np.fromfile(handle, dtype=np.int32, count=3)
            seen_type = np.int64 if (major * 10 + minor) >= 2 and major < 1000 and minor < 1000 else np.int32
            (seen,) = np.fromfile(handle, dtype=seen_type, count=1)
            weights = np.fromfile(handle, dtype="<f4")
        self.header = {"major": int(major), "minor": int(minor), "revision": int(revision), "seen": int(seen)}
        offset = 0
        for module in self.layers:
            if isinstance(module, ConvBlock):
                offset = module.load_darknet(weights, offset)
        if offset != weights.size:
            raise DarknetError(
                f"weights file has {weights.size - offset} values left over after the last layer: "
                "wrong cfg for these weights?"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, boxes, 5 + classes) for an input (batch, channels, H, W), H and W multiples of 32 for YOLOv3."""
        input_height, input_width = x.shape[-2:]
        outputs: list[torch.Tensor] = []
        detections: list[torch.Tensor] = []
        for module, kind in zip(self.layers, self.kinds):
            if kind == "route":
                x = module(outputs)
            elif kind == "shortcut":
                x = module(x, outputs)
            elif kind == "yolo":
                detections.append(module(x, input_height, input_width))
            else:
                x = module(x)
            outputs.append(x)
        return torch.cat(detections, dim=1)


def _with_yolo_masks(cfg: list[dict[str, str]], masks: list[list[int]]) -> list[dict[str, str]]:
    yolo = [k for k, options in enumerate(cfg) if options.get("type") == "yolo"]
    if len(masks) != len(yolo):
        raise DarknetError(f"yolo_masks has {len(masks)} entries, the cfg has {len(yolo)} [yolo] layers")
    cfg = [dict(options) for options in cfg]
    for k, mask in zip(yolo, masks):
        cfg[k]["mask"] = ",".join(str(int(m)) for m in mask)
    return cfg

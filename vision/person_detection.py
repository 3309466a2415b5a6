"""Person detection: YOLOv3-tiny (darknet, COCO) keeps its "person" class and adds a Person per detection.

The model comes from the manifest record `yolov3-tiny-coco` (configs/models/yolov3-tiny-coco.yaml);
its files must be in the model cache (`vestis models fetch`). Each frame is letterboxed to the
network input (aspect ratio kept, grey padding, as darknet does), the YOLO heads are decoded, the
class-aware confidence objectness * P(person) is thresholded, overlapping boxes are merged by NMS,
and the boxes are mapped back to the frame's pixels.

A second pass sees the frame shrunk into a larger grey canvas (`vision.person_detection.zoom_out`):
YOLOv3-tiny scores a person who fills the whole input at 0.1-0.25 (close portraits, tight crops,
the astronaut photo) and the same person with room around them at 0.8-0.99. Both passes' boxes go
through one NMS. The second pass runs only on frames where the first saw a large box that no sure
box (>= 0.9) explains: most video frames (people found at 0.99, or nobody large) skip it, most
close-up photos do not. Model card: docs/models/person-detection.md
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import box_convert, box_iou, clip_boxes_to_image, nms

from configs import Settings
from configs.manifest import load_manifest
from labels import Box, Label, Person
from vision import versions
from vision.device import resolve_device
from vision.model_files import build_model, model_files
from vision.stage import Frame, Stage

MODEL_NAME = versions.DETECTOR_MODEL
PERSON_CLASS = "person"

MAX_PERSONS_PER_FRAME = 100
# The zoomed-out pass keeps only boxes at least this share of the frame's width or height: smaller
# people are seen at a better resolution in the full-size pass, and the coarse pass would add
# duplicates of their parts.
LARGE_SHARE = 0.5
# Score of a large full-size box that makes a frame worth the zoomed-out pass (measured on CCP: see
# docs/models/person-detection.md); frames without such a box (most video frames) skip it.
ZOOM_HINT_SCORE = 0.01
# A full-size box this sure explains the weaker large boxes around it: no zoomed-out pass for them.
SURE_SCORE = 0.9
STRIDE = 32  # the network's coarsest stride: its input sides must be multiples of it


class PersonDetectionStage(Stage):
    name = "person_detection"

    @classmethod
    def version(cls, settings: Settings, model_name: str = MODEL_NAME) -> str:
        return versions.person_detection(settings, model_name)

    def __init__(
        self,
        settings: Settings,
        confidence_threshold: float | None = None,
        nms_iou: float | None = None,
        input_size: tuple[int, int] | None = None,
        model_name: str = MODEL_NAME,
        zoom_out: float | None = None,
    ):
        options = settings.vision.person_detection
        confidence_threshold = options.confidence_threshold if confidence_threshold is None else confidence_threshold
        if not 0.0 < confidence_threshold <= 1.0:
            raise ValueError(f"confidence_threshold must be in (0, 1], got {confidence_threshold}")
        self.record = load_manifest(settings.models.manifest).get(model_name)
        if PERSON_CLASS not in self.record.classes:
            raise ValueError(f"model {model_name} has no {PERSON_CLASS!r} class")
        self.person_index = self.record.classes.index(PERSON_CLASS)
        # Instance value: the record actually used (a user manifest may hold another version).
        self.model_version = f"{self.record.name}@{self.record.version}"
        self.confidence_threshold = float(confidence_threshold)
        pre = self.record.preprocessing
        self.nms_iou = float(options.nms_iou if nms_iou is None else nms_iou)
        self.zoom_out = float(options.zoom_out if zoom_out is None else zoom_out)
        if self.zoom_out < 1.0:
            raise ValueError(f"zoom_out must be at least 1, got {self.zoom_out}")
        self.pad_value = float(pre.get("pad_value", 0.5))
        # A large box scoring this much at full size is the hint that runs the zoomed-out pass.
        self.zoom_gate = min(ZOOM_HINT_SCORE, self.confidence_threshold)
        self.zoom_passes = 0  # frames that needed the zoomed-out pass (benchmarks report it)
        batch_size = options.batch_size

        files = model_files(self.record, settings.models.cache_dir)
        self.device = resolve_device(settings.vision.device)
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        if batch_size is None:
            batch_size = settings.vision.batch_size if self.device.type == "cuda" else 1
        self.batch_size: int = batch_size
        masks = pre.get("yolo_masks")  # the record's correction of the cfg's anchor masks
        model = build_model(self.record, files, **({"yolo_masks": masks} if masks is not None else {}))
        size = input_size or pre.get("input_size") or (model.width, model.height)
        self.input_width, self.input_height = int(size[0]), int(size[1])
        if self.input_width % STRIDE or self.input_height % STRIDE or min(size) <= 0:
            raise ValueError(f"model {model_name}: input size must be positive multiples of {STRIDE}, got {size}")
        # channels-last: oneDNN (CPU) and tensor cores (CUDA) run these convolutions much faster so.
        self.model = model.to(self.device, self.dtype, memory_format=torch.channels_last).eval()

    # -- preprocessing -----------------------------------------------------------------------

    def _canvas_size(self, height: int, width: int) -> tuple[int, int, float]:
        """(canvas width, canvas height, scale) for a frame: the frame scaled to fit the network input
        with its aspect ratio kept, padded only up to the next multiple of 32 on each side. The network
        is fully convolutional, so a 16:9 frame runs at 416x256 rather than 416x416: the same pixels
        for 0.6x the work (square letterboxing only adds grey)."""
        scale = min(self.input_width / width, self.input_height / height)
        canvas_w = min(self.input_width, -(-max(1, round(width * scale)) // STRIDE) * STRIDE)
        canvas_h = min(self.input_height, -(-max(1, round(height * scale)) // STRIDE) * STRIDE)
        return canvas_w, canvas_h, scale

    def _letterbox(self, image: np.ndarray, zoom_out: float = 1.0) -> tuple[torch.Tensor, tuple[float, float], int, int]:
        """The frame scaled into its canvas (see `_canvas_size`) with its aspect ratio kept (and shrunk
        `zoom_out` times more, centred); (x, y) scale; x and y offset."""
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        image = image[:, :, :3]
        height, width = image.shape[:2]
        canvas_w, canvas_h, scale = self._canvas_size(height, width)
        scale /= zoom_out
        new_w = max(1, min(canvas_w, round(width * scale)))
        new_h = max(1, min(canvas_h, round(height * scale)))
        image = np.ascontiguousarray(image)
        if not image.flags.writeable:  # torch warns on read-only arrays (e.g. np.asarray of a PIL image)
            image = image.copy()
        tensor = torch.from_numpy(image).to(self.device).permute(2, 0, 1).unsqueeze(0)
        resize = (new_h, new_w) != (height, width)
        if resize and self.device.type == "cpu" and tensor.dtype == torch.uint8:
            # Bilinear on uint8 is ~8x faster on CPU than on float and differs by at most 1/255.
            tensor = F.interpolate(tensor, size=(new_h, new_w), mode="bilinear", align_corners=False)
            resize = False
        tensor = tensor.to(torch.float32).div_(255.0)
        if resize:
            tensor = F.interpolate(tensor, size=(new_h, new_w), mode="bilinear", align_corners=False)
        canvas = torch.full((3, canvas_h, canvas_w), self.pad_value, device=self.device)
        dx, dy = (canvas_w - new_w) // 2, (canvas_h - new_h) // 2
        canvas[:, dy : dy + new_h, dx : dx + new_w] = tensor[0]
        # The scale actually used on each axis once the resized size is rounded to whole pixels.
        return canvas, (new_w / width, new_h / height), dx, dy

    # -- inference ---------------------------------------------------------------------------

    @torch.inference_mode()
    def detect(self, images: list[np.ndarray]) -> list[list[tuple[float, float, float, float, float]]]:
        """Person boxes (x1, y1, x2, y2, confidence) in each image's pixels, highest confidence first."""
        found: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in images]
        hinted: list[int] = []
        for k, boxes, score in self._pass(images, range(len(images)), 1.0):
            keep = score >= self.confidence_threshold
            found[k].append((boxes[keep], score[keep]))
            if self.zoom_out != 1.0 and self._hints_large_person(boxes, score, images[k]):
                hinted.append(k)
        if hinted:
            # The zoomed-out pass, only where the full-size one saw a hint of somebody large (a large box
            # at a low score): a person who fills the frame scores 0.1-0.25 at full size, but a box is there.
            self.zoom_passes += len(hinted)
            for k, boxes, score in self._pass(images, hinted, self.zoom_out):
                keep = (score >= self.confidence_threshold) & self._large(boxes, images[k])
                found[k].append((boxes[keep], score[keep]))
        return [self._merge(passes) for passes in found]

    def _hints_large_person(self, boxes: torch.Tensor, score: torch.Tensor, image: np.ndarray) -> bool:
        """Whether the full-size pass saw a large box that no sure box (SURE_SCORE) explains: somebody
        filling the frame, whom the zoomed-out pass sees better."""
        large = self._large(boxes, image)
        sure = score >= SURE_SCORE
        weak = boxes[large & ~sure]
        if not len(weak):
            return False
        if not sure.any():
            return True
        return bool((box_iou(weak, boxes[sure]).max(dim=1).values < self.nms_iou).any())

    @staticmethod
    def _large(boxes: torch.Tensor, image: np.ndarray) -> torch.Tensor:
        """Boxes at least LARGE_SHARE of the image's width or height."""
        return ((boxes[:, 2] - boxes[:, 0]) >= LARGE_SHARE * image.shape[1]) | (
            (boxes[:, 3] - boxes[:, 1]) >= LARGE_SHARE * image.shape[0])

    def _pass(self, images: list[np.ndarray], indices, zoom: float):
        """(index, boxes in the image's pixels, scores) of one network pass over `images[indices]`, every
        box at least `zoom_gate`."""
        # Images of one canvas size go together: a batch is one tensor (frames of a video share a size).
        sizes = {k: self._canvas_size(*images[k].shape[:2])[:2] for k in indices}
        ordered = sorted(sizes, key=lambda k: sizes[k])
        chunks = [same[start : start + self.batch_size]
                  for same in (list(group) for _, group in itertools.groupby(ordered, key=lambda k: sizes[k]))
                  for start in range(0, len(same), self.batch_size)]
        for chunk in chunks:
            letterboxed = [self._letterbox(images[k], zoom) for k in chunk]
            batch = torch.stack([item[0] for item in letterboxed]).to(self.dtype)
            batch = batch.contiguous(memory_format=torch.channels_last)
            predictions = self.model(batch)  # (n, boxes, 5 + classes), float32
            scores = predictions[..., 4] * predictions[..., 5 + self.person_index]
            for k, (_, scale, dx, dy), preds, score in zip(chunk, letterboxed, predictions, scores):
                yield (k, *self._candidates(images[k].shape[0], images[k].shape[1], scale, dx, dy, preds, score))

    def _candidates(self, height, width, scale, dx, dy, preds, score) -> tuple[torch.Tensor, torch.Tensor]:
        """One pass's boxes scoring at least `zoom_gate` (at most the threshold), in the frame's pixels."""
        keep = score >= self.zoom_gate
        boxes = box_convert(preds[keep, :4], "cxcywh", "xyxy")
        score = score[keep]
        sx, sy = scale
        boxes = boxes - torch.tensor([dx, dy, dx, dy], device=boxes.device, dtype=boxes.dtype)
        boxes = boxes / torch.tensor([sx, sy, sx, sy], device=boxes.device, dtype=boxes.dtype)
        boxes = clip_boxes_to_image(boxes, (height, width))
        inside = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # not wholly in the padding
        return boxes[inside], score[inside]

    def _merge(self, passes: list[tuple[torch.Tensor, torch.Tensor]]) -> list[tuple[float, float, float, float, float]]:
        boxes = torch.cat([b for b, _ in passes])
        score = torch.cat([s for _, s in passes])
        if not len(score):
            return []
        kept = nms(boxes, score, self.nms_iou)[:MAX_PERSONS_PER_FRAME]
        return [(*box, conf) for box, conf in zip(boxes[kept].cpu().tolist(), score[kept].cpu().tolist())]

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        detections = self.detect([frame.image for frame in frames])
        for frame, found in zip(frames, detections):
            for x1, y1, x2, y2, confidence in found:
                frame.labels.persons.append(Person(detection=Label.made_by(self.record, PERSON_CLASS, confidence),
                                                   box=Box(x1=x1, y1=y1, x2=x2, y2=y2)))
        return frames

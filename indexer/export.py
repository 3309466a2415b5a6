"""Reviewed labels as training data: COCO JSON and YOLO folders, for retraining the garment models.

Both formats point at the frame JPEGs stored under the data dir, and every coordinate is in the
pixels of that file (width and height are the file's own: a 1280x720 frame stored 640x360 has its
boxes and masks halved), so COCO loaders (pycocotools, torchvision, Detectron2) and YOLO trainers read
boxes that sit on the picture they load. `vestis_frame_width`/`_height`, `vestis_media_path` and
`vestis_timestamp` say where to take the full-size frame from.

COCO: one image per reviewed frame, one annotation per person (category `person`) and per garment
(its category), boxes as [x, y, width, height]; every annotation has a segmentation, the label's mask
as uncompressed RLE (our Mask is that layout) or, for a box a reviewer drew, the box as a polygon;
`area` is the segmentation's pixel count. Garment attributes and who reviewed each label go into
`attributes`. A frame whose JPEG is missing is left out (and counted in `info`): no file, no image.

YOLO: `images/<media>/<frame>.jpg` (copies), `labels/<media>/<frame>.txt` (`class cx cy w h`,
normalised), `data.yaml` naming the classes: Ultralytics' detection layout.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from indexer.frame_images import FrameImageStore
from indexer.review import ReviewStatus, review_status
from indexer.store import LabelStore
from labels import Box, FrameLabels, Label, Mask
from labels.masks import decode_mask, encode_mask
from labels.vocabulary import GARMENT_CATEGORIES, GARMENT_LABEL_FIELDS

CATEGORIES = ["person", *GARMENT_CATEGORIES]
CATEGORY_ID = {name: i + 1 for i, name in enumerate(CATEGORIES)}  # COCO ids start at 1; YOLO's are these - 1


@dataclass(frozen=True)
class StoredFrame:
    """A reviewed frame, the JPEG it is exported with, and the scale from label pixels to JPEG pixels."""

    labels: FrameLabels
    status: ReviewStatus
    image: Path
    width: int
    height: int

    @property
    def file_name(self) -> str:
        return f"frames/{self.labels.media_id}/{self.labels.frame_id}.jpg"

    def box(self, box: Box) -> Box:
        sx, sy = self.width / self.labels.width, self.height / self.labels.height
        return Box(x1=box.x1 * sx, y1=box.y1 * sy, x2=box.x2 * sx, y2=box.y2 * sy)

    def mask(self, mask: Mask) -> Mask:
        if (mask.width, mask.height) == (self.width, self.height):
            return mask
        pixels = Image.fromarray(decode_mask(mask).astype(np.uint8) * 255)
        return encode_mask(np.asarray(pixels.resize((self.width, self.height), Image.Resampling.NEAREST)) > 127)


def stored_frames(frames: Iterable[FrameLabels], images: FrameImageStore, only: set[ReviewStatus],
                  missing: list[str]) -> Iterator[StoredFrame]:
    """The frames in the `only` review states whose JPEG is there; the ids of those without go to `missing`."""
    for frame in frames:
        status = review_status(frame)
        if status not in only:
            continue
        path = images.path_for(frame.media_id, frame.frame_id)
        try:
            with Image.open(path) as picture:
                width, height = picture.size
        except OSError:
            missing.append(frame.frame_id)
            continue
        yield StoredFrame(frame, status, path, width, height)


def selected_states(fully_reviewed_only: bool) -> set[ReviewStatus]:
    return {ReviewStatus.REVIEWED} if fully_reviewed_only else {ReviewStatus.REVIEWED, ReviewStatus.PARTIAL}


# --- COCO ----------------------------------------------------------------------------------------


def _bbox(box: Box) -> list[float]:
    return [box.x1, box.y1, box.x2 - box.x1, box.y2 - box.y1]


def _segmentation(frame: StoredFrame, box: Box, mask: Mask | None) -> tuple[dict | list, float]:
    """(segmentation, area): the mask as RLE and its pixel count, or the box as a polygon and its area."""
    if mask is not None:
        scaled = frame.mask(mask)
        return {"size": [scaled.height, scaled.width], "counts": list(scaled.counts)}, float(sum(scaled.counts[1::2]))
    return [[box.x1, box.y1, box.x2, box.y1, box.x2, box.y2, box.x1, box.y2]], box.area


def _label(label: Label | None) -> dict | None:
    if label is None:
        return None
    return {"value": label.value, "confidence": label.confidence, "model": label.model,
            "reviewed_by": label.reviewed_by}


def coco_from_frames(frames: Iterable[StoredFrame], media_paths: dict[str, str]) -> dict[str, Any]:
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []

    def annotate(image_id: int, category: str, box: Box, mask: Mask | None, frame: StoredFrame, **extra) -> int:
        scaled = frame.box(box)
        segmentation, area = _segmentation(frame, scaled, mask)
        annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": CATEGORY_ID[category],
                            "bbox": _bbox(scaled), "area": area, "iscrowd": 0, "segmentation": segmentation,
                            **extra})
        return len(annotations)

    for frame in frames:
        labels = frame.labels
        image_id = len(images) + 1
        images.append({
            "id": image_id, "file_name": frame.file_name, "width": frame.width, "height": frame.height,
            "vestis_frame_id": labels.frame_id, "vestis_media_id": labels.media_id,
            "vestis_media_path": media_paths.get(labels.media_id, ""), "vestis_timestamp": labels.timestamp,
            "vestis_frame_width": labels.width, "vestis_frame_height": labels.height,
            "vestis_review_status": frame.status.value,
        })
        for person in labels.persons:
            expression = person.face.expression if person.face is not None else None
            person_id = annotate(image_id, "person", person.box, person.mask, frame, attributes={
                "detection": _label(person.detection), "expression": _label(expression)})
            for garment in person.garments:
                if garment.category.value not in CATEGORY_ID:
                    continue  # a category from an older vocabulary: not one the models train on
                annotate(image_id, garment.category.value, garment.box, garment.mask, frame,
                         attributes={name: _label(getattr(garment, name)) for name in GARMENT_LABEL_FIELDS},
                         vestis_person_annotation_id=person_id)
    return {
        "info": {"description": "Vestis reviewed labels", "date_created": datetime.now(timezone.utc).isoformat()},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": CATEGORY_ID[name], "name": name, "supercategory": "person" if name == "person"
                        else "garment"} for name in CATEGORIES],
    }


def export_reviewed(store: LabelStore, images: FrameImageStore, *, fully_reviewed_only: bool = False) -> dict[str, Any]:
    """The store's reviewed frames as COCO (file names relative to the data dir); `fully_reviewed_only`:
    leave out partly reviewed frames."""
    paths = {m.media_id: m.path for m in store.list_media()}
    missing: list[str] = []
    coco = coco_from_frames(stored_frames(store.reviewed_frames(), images, selected_states(fully_reviewed_only),
                                          missing), paths)
    coco["info"]["vestis_frames_without_image"] = missing
    return coco


# --- YOLO ----------------------------------------------------------------------------------------


def yolo_lines(frame: StoredFrame) -> list[str]:
    """`class cx cy w h`, normalised to the image: persons and garments of known categories."""
    rows: list[tuple[str, Box]] = []
    for person in frame.labels.persons:
        rows.append(("person", person.box))
        rows += [(g.category.value, g.box) for g in person.garments if g.category.value in CATEGORY_ID]
    lines = []
    for category, box in rows:
        w, h = frame.labels.width, frame.labels.height  # normalised: the same on the label grid and the JPEG
        cx, cy = (box.x1 + box.x2) / 2 / w, (box.y1 + box.y2) / 2 / h
        lines.append(f"{CATEGORY_ID[category] - 1} {cx:.6f} {cy:.6f} {(box.x2 - box.x1) / w:.6f} "
                     f"{(box.y2 - box.y1) / h:.6f}")
    return lines


def export_reviewed_yolo(store: LabelStore, images: FrameImageStore, out: Path, *,
                         fully_reviewed_only: bool = False) -> tuple[int, int, list[str]]:
    """Write the YOLO folder `out`; (frames, boxes, ids of frames left out for want of a JPEG)."""
    missing: list[str] = []
    frames = boxes = 0
    for frame in stored_frames(store.reviewed_frames(), images, selected_states(fully_reviewed_only), missing):
        image = out / "images" / frame.labels.media_id / f"{frame.labels.frame_id}.jpg"
        label = out / "labels" / frame.labels.media_id / f"{frame.labels.frame_id}.txt"
        image.parent.mkdir(parents=True, exist_ok=True)
        label.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(frame.image, image)
        lines = yolo_lines(frame)
        label.write_text("".join(line + "\n" for line in lines))
        frames, boxes = frames + 1, boxes + len(lines)
    (out / "data.yaml").write_text(yaml.safe_dump({
        "path": str(out.resolve()), "train": "images", "val": "images",
        "names": {i: name for i, name in enumerate(CATEGORIES)},
    }, sort_keys=False))
    return frames, boxes, missing

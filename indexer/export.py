"""Reviewed labels as COCO JSON, for retraining the garment models.

One image per reviewed frame, one annotation per person (category `person`) and per garment (its
category), boxes as COCO [x, y, width, height] and masks as COCO uncompressed RLE (our Mask is
already that layout). Garment attributes and who reviewed each label go into `attributes`.
Coordinates are those of the frame as sampled (`width`, `height`); `file_name` is the stored JPEG
under the data dir, which may be smaller, so `vestis_media_path` and `vestis_timestamp` say where to
take the full-size frame from.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from indexer.review import ReviewStatus, review_status
from indexer.store import LabelStore
from labels import Box, FrameLabels, Label, Mask
from labels.vocabulary import GARMENT_CATEGORIES, GARMENT_LABEL_FIELDS

CATEGORIES = ["person", *GARMENT_CATEGORIES]


def _bbox(box: Box) -> list[float]:
    return [box.x1, box.y1, box.x2 - box.x1, box.y2 - box.y1]


def _rle(mask: Mask | None) -> dict | None:
    return {"size": [mask.height, mask.width], "counts": list(mask.counts)} if mask is not None else None


def _label(label: Label | None) -> dict | None:
    if label is None:
        return None
    return {"value": label.value, "confidence": label.confidence, "model": label.model,
            "reviewed_by": label.reviewed_by}


def coco_from_frames(frames: Iterable[FrameLabels], media_paths: dict[str, str], *,
                     only: set[ReviewStatus] | None = None) -> dict[str, Any]:
    """COCO for these frames; `only`: keep frames in these review states."""
    category_id = {name: i + 1 for i, name in enumerate(CATEGORIES)}
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for frame in frames:
        status = review_status(frame)
        if only is not None and status not in only:
            continue
        image_id = len(images) + 1
        images.append({
            "id": image_id, "file_name": f"frames/{frame.media_id}/{frame.frame_id}.jpg",
            "width": frame.width, "height": frame.height, "vestis_frame_id": frame.frame_id,
            "vestis_media_id": frame.media_id, "vestis_media_path": media_paths.get(frame.media_id, ""),
            "vestis_timestamp": frame.timestamp, "vestis_review_status": status.value,
        })
        for person in frame.persons:
            person_id = len(annotations) + 1
            expression = person.face.expression if person.face is not None else None
            annotations.append({
                "id": person_id, "image_id": image_id, "category_id": category_id["person"],
                "bbox": _bbox(person.box), "area": person.box.area,
                "iscrowd": 0, **({"segmentation": _rle(person.mask)} if person.mask is not None else {}),
                "attributes": {"detection": _label(person.detection), "expression": _label(expression)},
            })
            for garment in person.garments:
                if garment.category.value not in category_id:
                    continue  # a category from an older vocabulary: not one the models train on
                annotations.append({
                    "id": len(annotations) + 1, "image_id": image_id,
                    "category_id": category_id[garment.category.value], "bbox": _bbox(garment.box),
                    "area": garment.box.area, "iscrowd": 0,
                    **({"segmentation": _rle(garment.mask)} if garment.mask is not None else {}),
                    "attributes": {name: _label(getattr(garment, name)) for name in GARMENT_LABEL_FIELDS},
                    "vestis_person_annotation_id": person_id,
                })
    return {
        "info": {"description": "Vestis reviewed labels", "date_created": datetime.now(timezone.utc).isoformat()},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": category_id[name], "name": name, "supercategory": "person" if name == "person"
                        else "garment"} for name in CATEGORIES],
    }


def export_reviewed(store: LabelStore, *, fully_reviewed_only: bool = False) -> dict[str, Any]:
    """The store's reviewed frames as COCO; `fully_reviewed_only`: leave out partly reviewed frames."""
    paths = {m.media_id: m.path for m in store.list_media()}
    only = {ReviewStatus.REVIEWED} if fully_reviewed_only else {ReviewStatus.REVIEWED, ReviewStatus.PARTIAL}
    return coco_from_frames(store.reviewed_frames(), paths, only=only)

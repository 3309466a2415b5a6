"""The training-data exports round-trip: pycocotools loads the COCO file, its areas are the masks',
its images are the files it names at the size they have, and COCOeval with the export as ground truth
scores its own annotations AP 1 (bbox and segm) and moved boxes lower; YOLO lines sit on the same
boxes; frames whose labels were only removed count as reviewed."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.embedded import EmbeddedStore
from indexer.export import CATEGORIES, export_reviewed, export_reviewed_yolo
from indexer.frame_images import FrameImageStore
from indexer.review import AcceptAll, AddBox, Reject, edit_frame
from labels import Box
from labels.masks import encode_mask
from tests.indexer.test_search import frame_id, frames, red_striped_dress
from tests.indexer.test_store_search import index

pycocotools = pytest.importorskip("pycocotools", reason="pycocotools is not installed: pip install -e '.[dev]'")
from pycocotools import mask as mask_utils  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

MASKED, DRAWN, EMPTIED, UNTOUCHED = (frame_id("catwalk", t) for t in (1.0, 2.0, 3.0, 4.0))


def ellipse(width: int, height: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """A filled ellipse inside `box` on a width x height grid: a mask whose area is not its box's."""
    x1, y1, x2, y2 = box
    ys, xs = np.mgrid[0:height, 0:width]
    cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
    return ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1


@pytest.fixture
def reviewed(tmp_path) -> tuple[EmbeddedStore, FrameImageStore]:
    """A 1280x720 video (stored as 640x360 JPEGs): a masked person in a dress, accepted; a frame where
    a reviewer drew a hat box; a frame whose only person was rejected; a frame nobody touched."""
    labels = frames("catwalk", [1.0, 2.0, 3.0, 4.0], red_striped_dress())
    masked = labels[0].persons[0]
    masked.mask = encode_mask(ellipse(1280, 720, (500, 100, 600, 400)))
    masked.garments[0].box = Box(x1=510, y1=200, x2=590, y2=380)
    masked.garments[0].mask = encode_mask(ellipse(1280, 720, (510, 200, 590, 380)))
    store = EmbeddedStore(tmp_path / "data")
    index(store, "catwalk", labels)
    images = FrameImageStore(tmp_path / "data")
    for frame in labels:
        images.save("catwalk", frame.frame_id, np.full((720, 1280, 3), 128, dtype=np.uint8))
    edit_frame(store, MASKED, AcceptAll(), "0", "alice")
    edit_frame(store, DRAWN, AddBox(category="hat", box=Box(x1=520, y1=100, x2=580, y2=140)), "0", "alice")
    edit_frame(store, EMPTIED, Reject(path="persons.0.detection"), "0", "bob")
    yield store, images
    store.close()


def test_coco_export_loads_in_pycocotools_with_areas_sizes_and_segmentations(reviewed, tmp_path):
    store, images = reviewed
    coco_json = export_reviewed(store, images)
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(coco_json))
    coco = COCO(str(path))

    by_frame = {img["vestis_frame_id"]: img for img in coco.dataset["images"]}
    assert set(by_frame) == {MASKED, DRAWN, EMPTIED}  # removing the only person is a review: nothing there
    assert by_frame[EMPTIED]["vestis_review_status"] == "reviewed" and not coco.getAnnIds(imgIds=by_frame[EMPTIED]["id"])
    for image in coco.dataset["images"]:
        with Image.open(tmp_path / "data" / image["file_name"]) as stored:
            assert (image["width"], image["height"]) == stored.size == (640, 360)
    for ann in coco.dataset["annotations"]:
        assert ann["segmentation"], ann
        rle = coco.annToRLE(ann)
        assert list(rle["size"]) == [360, 640]
        if isinstance(ann["segmentation"], dict):
            assert ann["area"] == pytest.approx(float(mask_utils.area(rle)))
        else:  # a box as a polygon: its area, and pycocotools rasterises it onto about as many pixels
            assert ann["area"] == pytest.approx(ann["bbox"][2] * ann["bbox"][3])
            assert float(mask_utils.area(rle)) == pytest.approx(ann["area"], rel=0.1)

    names = {c["id"]: c["name"] for c in coco.dataset["categories"]}
    masked = {names[a["category_id"]]: a for a in coco.imgToAnns[by_frame[MASKED]["id"]]}
    assert masked["person"]["bbox"] == [250.0, 50.0, 50.0, 150.0]  # (500,100)-(600,400) on the 1280 grid, halved
    ellipse_area = np.pi * 25 * 75  # the person's ellipse on the 640x360 grid
    assert masked["person"]["area"] == pytest.approx(ellipse_area, rel=0.05)
    assert masked["person"]["area"] < 0.85 * 50 * 150  # the mask's area, not the box's
    drawn = {names[a["category_id"]]: a for a in coco.imgToAnns[by_frame[DRAWN]["id"]]}
    assert drawn["hat"]["bbox"] == [260.0, 50.0, 30.0, 20.0] and drawn["hat"]["attributes"]["category"]["model"] == "human:alice"


def evaluate(coco: COCO, detections: list[dict], kind: str) -> float:
    results = coco.loadRes(detections)
    run = COCOeval(coco, results, kind)
    run.evaluate()
    run.accumulate()
    run.summarize()
    return float(run.stats[0])  # AP at IoU .50:.95


@pytest.mark.parametrize("kind", ["bbox", "segm"])
def test_cocoeval_takes_the_export_as_ground_truth(reviewed, tmp_path, kind):
    store, images = reviewed
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(export_reviewed(store, images)))
    coco = COCO(str(path))
    own = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
            "segmentation": coco.annToRLE(a), "score": 1.0} for a in coco.dataset["annotations"]]
    assert evaluate(coco, copy.deepcopy(own), kind) == pytest.approx(1.0)
    moved = []
    for det in copy.deepcopy(own):
        x, y, w, h = det["bbox"]
        det["bbox"] = [x + w / 2, y + h / 2, w, h]
        det["segmentation"] = mask_utils.frPyObjects([[x + w / 2, y + h / 2, x + 1.5 * w, y + h / 2, x + 1.5 * w,
                                                       y + 1.5 * h, x + w / 2, y + 1.5 * h]], 360, 640)[0]
        moved.append(det)
    assert evaluate(coco, moved, kind) < 0.2


def test_yolo_export_writes_normalised_boxes_on_the_same_pictures(reviewed, tmp_path):
    store, images = reviewed
    out = tmp_path / "yolo"
    frames_written, boxes, missing = export_reviewed_yolo(store, images, out)
    assert (frames_written, boxes, missing) == (3, 5, [])  # person+dress, person+dress+hat, nothing
    lines = (out / "labels" / "catwalk" / f"{MASKED}.txt").read_text().splitlines()
    person_line = next(line for line in lines if line.startswith("0 "))
    cls, cx, cy, w, h = person_line.split()
    assert (float(cx), float(cy), float(w), float(h)) == pytest.approx((550 / 1280, 250 / 720, 100 / 1280, 300 / 720), abs=1e-6)
    assert (out / "labels" / "catwalk" / f"{EMPTIED}.txt").read_text() == ""  # a background image
    with Image.open(out / "images" / "catwalk" / f"{MASKED}.jpg") as copied:
        assert copied.size == (640, 360)
    import yaml

    data = yaml.safe_load((out / "data.yaml").read_text())
    assert [data["names"][i] for i in range(len(CATEGORIES))] == CATEGORIES


def test_a_frame_without_its_jpeg_is_left_out_and_counted(reviewed):
    store, images = reviewed
    images.path_for("catwalk", DRAWN).unlink()
    coco = export_reviewed(store, images)
    assert {i["vestis_frame_id"] for i in coco["images"]} == {MASKED, EMPTIED}
    assert coco["info"]["vestis_frames_without_image"] == [DRAWN]
    assert Path(images.path_for("catwalk", MASKED)).is_file()

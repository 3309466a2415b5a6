"""The label records' own behaviour: box geometry written once, and the one constructor of a machine label."""

from __future__ import annotations

import pytest

from configs.manifest import load_manifest
from labels import Box, Label, RuleSet
from labels.vocabulary import GARMENT_LABEL_FIELDS, GARMENT_LABEL_VOCABULARY, LABEL_VOCABULARY


def test_box_geometry():
    box = Box(x1=10, y1=20, x2=30, y2=60)
    assert box.xyxy == (10, 20, 30, 60)
    assert (box.width, box.height, box.area) == (20, 40, 800)
    assert box.centre == (20, 40)
    assert box.contains(10, 60) and not box.contains(31, 40)
    assert Box(x1=5, y1=5, x2=1, y2=1).area == 0.0  # an inverted box has no area


def test_box_iou():
    a = Box(x1=0, y1=0, x2=10, y2=10)
    assert a.iou(a) == 1.0
    assert a.iou(Box(x1=5, y1=0, x2=15, y2=10)) == pytest.approx(50 / 150)
    assert a.iou(Box(x1=10, y1=0, x2=20, y2=10)) == 0.0  # touching is not overlapping
    assert a.iou(Box(x1=3, y1=3, x2=3, y2=3)) == 0.0


def test_a_machine_label_is_clamped_and_names_its_model():
    record = load_manifest().get("yolov3-tiny-coco")
    label = Label.made_by(record, "person", 1.0000001)
    assert (label.value, label.confidence, label.model, label.model_version) == (
        "person", 1.0, record.name, record.version)
    assert Label.made_by(RuleSet("color-namer", "1"), "red", -0.01).confidence == 0.0
    assert label.alternatives == []
    ranked = Label.made_by(record, "suit", 0.6, alternatives=[("suit", 0.6), ("coat/jacket", 1.0000002)])
    assert [(a.value, a.probability) for a in ranked.alternatives] == [("suit", 0.6), ("coat/jacket", 1.0)]


def test_one_table_of_garment_label_fields():
    assert GARMENT_LABEL_FIELDS == ("category", "color", "secondary_color", "pattern", "sleeve")
    assert set(GARMENT_LABEL_VOCABULARY) <= set(LABEL_VOCABULARY) and "expression" in LABEL_VOCABULARY


def test_embedding_is_int8_and_unit_on_the_way_out():
    import numpy as np

    from labels import Embedding, RuleSet

    v = np.array([3.0, -4.0, 0.0, 0.5])
    e = Embedding.made_by(RuleSet("m", "1"), v)
    assert e.dim == 4 and len(__import__("base64").b64decode(e.vector)) == 4
    assert abs(float(np.linalg.norm(e.unit())) - 1.0) < 1e-6
    assert float(e.unit() @ (v / np.linalg.norm(v))) > 0.999
    with pytest.raises(ValueError, match="non-zero"):
        Embedding.made_by(RuleSet("m", "1"), np.zeros(3))
    with pytest.raises(ValueError, match="base64"):
        Embedding(model="m", model_version="1", dim=2, vector="!!")

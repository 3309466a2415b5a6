"""Parsing IoU bookkeeping and the merge of several persons' parses into one frame map."""

from __future__ import annotations

import numpy as np
import pytest

from vision.evaluation.parsing import ParsingScores, merged_label_map
from vision.garment_parser import PARSER_CLASSES, PersonParse
from vision.pose import CropWindow

DRESS, SKIN = PARSER_CLASSES.index("dress"), PARSER_CLASSES.index("skin")


def test_iou_per_class_and_mean():
    truth = np.zeros((4, 4), np.uint8)
    truth[:2] = DRESS
    predicted = np.zeros((4, 4), np.uint8)
    predicted[:3] = DRESS  # 8 true dress pixels, 4 more predicted
    scores = ParsingScores()
    scores.add(predicted, truth)
    iou = scores.iou()
    assert iou["dress"] == pytest.approx(8 / 12) and iou["background"] == pytest.approx(4 / 8)
    assert iou["skin"] is None  # in neither: not part of the mean
    assert scores.mean_iou() == pytest.approx((8 / 12 + 4 / 8) / 2)
    assert scores.report()["mean_iou_garments"] == pytest.approx(8 / 12)
    with pytest.raises(ValueError, match="differ in size"):
        scores.add(predicted[:2], truth)


def _parse(x0: int, y0: int, side: int, cls: int, prob: float) -> PersonParse:
    probs = np.full((len(PARSER_CLASSES), 256, 256), (1 - prob) / (len(PARSER_CLASSES) - 1), np.float32)
    probs[cls] = prob
    return PersonParse(CropWindow(x0, y0, side), probs, np.zeros((33, 2)), np.zeros(33), 1.0)


def test_merge_keeps_the_more_confident_person_and_never_paints_background():
    near = _parse(0, 0, 10, DRESS, 0.9)
    far = _parse(5, 0, 10, SKIN, 0.6)
    back = _parse(0, 0, 20, 0, 0.99)  # a person window that is all background
    labels = merged_label_map([near, far, back], 12, 20)
    assert (labels[:10, :5] == DRESS).all() and (labels[:10, 5:10] == DRESS).all()
    assert (labels[:10, 10:15] == SKIN).all() and (labels[10:] == 0).all() and (labels[:, 15:] == 0).all()

"""`vestis eval parsing|attributes|similar` end to end on a few real photos (CCP and the attribute set)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import vestis.cli as cli

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("plain_cli")


def _link(files: list[Path], folder: Path) -> Path:
    folder.mkdir(parents=True)
    for f in files:
        (folder / f.name).symlink_to(f)
    return folder


def test_eval_parsing_on_three_photos(shared_data: Path, tmp_path: Path):
    ccp = shared_data / "ccp"
    photos = ["0001", "0009", "0015"]  # held-out photos (every 5th)
    images = _link([ccp / "images" / f"{p}.jpg" for p in photos], tmp_path / "images")
    masks = _link([ccp / "masks" / f"{p}.png" for p in photos], tmp_path / "masks")
    out = tmp_path / "parsing.json"
    result = runner.invoke(cli.app, ["eval", "parsing", "--images", str(images), "--masks", str(masks),
                                     "--labels", str(ccp / "annotations.json"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["images"] == 3
    # a person is parsed: the background is mostly right and some garment overlaps its truth
    assert report["iou"]["background"] > 0.8 and 0.05 < report["mean_iou"] < 1.0
    assert "mean" in result.output and "pants/jeans" in result.output


def test_eval_parsing_without_matching_masks_exits_2(shared_data: Path, tmp_path: Path):
    ccp = shared_data / "ccp"
    images = _link([ccp / "images" / "0001.jpg"], tmp_path / "images")
    (tmp_path / "masks").mkdir()
    result = runner.invoke(cli.app, ["eval", "parsing", "--images", str(images), "--masks", str(tmp_path / "masks"),
                                     "--labels", str(ccp / "annotations.json")])
    assert result.exit_code == 2 and "has a mask" in result.output


def test_eval_attributes_on_four_photos(shared_data: Path, tmp_path: Path):
    source = shared_data / "attributes-dev"
    lines = (source / "labels.csv").read_text().splitlines()
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join(lines[:5]) + "\n")
    out = tmp_path / "attributes.json"
    result = runner.invoke(cli.app, ["eval", "attributes", "--images", str(source / "images"),
                                     "--labels", str(labels), "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["images"] == 4 and {"category", "sleeve", "color:black"} <= set(report["attributes"])
    assert all(0.0 <= a["accuracy"] <= 1.0 for a in report["attributes"].values())
    assert "macro-F1" in result.output


def test_eval_attributes_cache_reuses_labels_and_names_colours_again(shared_data: Path, tmp_path: Path):
    source = shared_data / "attributes-dev"
    lines = (source / "labels.csv").read_text().splitlines()
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join(lines[:4]) + "\n")
    cache, first, second = tmp_path / "labels-cache.json", tmp_path / "first.json", tmp_path / "second.json"
    args = ["eval", "attributes", "--images", str(source / "images"), "--labels", str(labels), "--cache", str(cache)]
    result = runner.invoke(cli.app, [*args, "--out", str(first)])
    assert result.exit_code == 0, result.output
    assert json.loads(first.read_text())["cache"] == {"path": str(cache), "reused": 0, "labelled": 3}
    stage_labels = json.loads(cache.read_text())["photos"]

    # Colours wiped in the cache come back, named again from the photos as the stage named them.
    stored = json.loads(cache.read_text())
    for photo in stored["photos"].values():
        for person in photo["labels"]["persons"]:
            for garment in person["garments"]:
                garment["color"] = garment["secondary_color"] = None
    cache.write_text(json.dumps(stored))
    result = runner.invoke(cli.app, [*args, "--out", str(second)])
    assert result.exit_code == 0, result.output
    assert "3 photos reused" in result.output
    report = json.loads(second.read_text())
    assert report["cache"]["reused"] == 3
    assert report["attributes"] == json.loads(first.read_text())["attributes"]
    assert json.loads(cache.read_text())["photos"] == stage_labels


def test_eval_attributes_refuses_a_cache_it_cannot_read(shared_data: Path, tmp_path: Path):
    source = shared_data / "attributes-dev"
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join((source / "labels.csv").read_text().splitlines()[:2]) + "\n")
    cache = tmp_path / "cache.json"
    cache.write_text("[1, 2")
    result = runner.invoke(cli.app, ["eval", "attributes", "--images", str(source / "images"), "--labels",
                                     str(labels), "--cache", str(cache)])
    assert result.exit_code == 2 and "label cache" in result.output
    assert cache.read_text() == "[1, 2"  # left as it was


def test_eval_similar_keeps_the_parts_and_reuses_them(shared_data: Path, tmp_path: Path):
    """Real photos through the stages once, into --cache; the second run reads the file (no stage)."""
    ccp = tmp_path / "data" / "ccp"
    (ccp / "images").mkdir(parents=True)
    (ccp / "masks").mkdir()
    meta = json.loads((shared_data / "ccp" / "annotations.json").read_text())
    meta["images"] = meta["images"][:10]  # photos 0 and 5 held out
    for entry in meta["images"]:
        for key in ("file", "mask"):
            (ccp / entry[key]).symlink_to(shared_data / "ccp" / entry[key])
    (ccp / "annotations.json").write_text(json.dumps(meta))
    cache, out = tmp_path / "parts.npz", tmp_path / "similar.json"
    args = ["eval", "similar", "--data", str(tmp_path / "data"), "--cache", str(cache), "--out", str(out)]
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    first = json.loads(out.read_text())
    assert first["cache"]["reused"] is False and first["ccp"]["photos"] == 2
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    second = json.loads(out.read_text())
    assert second["cache"]["reused"] is True and second["ccp"] == first["ccp"]
    assert "same category in the top 10" in result.output

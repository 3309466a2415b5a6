"""The pipeline version follows the configured model manifest (issue 19, finding 13): a user manifest
that changes a model's version must make `vestis ingest` redo the files, not skip them as done."""

from __future__ import annotations

import shutil

import yaml

from configs import load_settings
from configs.manifest import BUNDLED_MANIFEST, load_manifest
from pipelines.ingest import pipeline_version
from vision.registry import stages_version

STAGES = ["person_detection", "garments", "face_expression"]


def _user_manifest(tmp_path, model: str, version: str):
    folder = tmp_path / "manifest"
    shutil.copytree(BUNDLED_MANIFEST, folder)
    for path in folder.glob("*.yaml"):
        record = yaml.safe_load(path.read_text())
        if record["name"] == model:
            record["version"] = version
            path.write_text(yaml.safe_dump(record))
    return folder


def test_a_user_manifest_with_a_new_model_version_changes_the_pipeline_version(tmp_path):
    bundled = load_settings(None, [{"vision": {"stages": STAGES}}])
    for model in ("yolov3-tiny-coco", "garment-parser", "blazepose-ghum-full", "efficientnet-lite0", "garment-heads",
                  "mtcnn", "fer-mini-xception"):
        folder = _user_manifest(tmp_path / model, model, "user-retrained-1")
        assert load_manifest(folder).get(model).version == "user-retrained-1"
        user = load_settings(None, [{"vision": {"stages": STAGES}}, {"models": {"manifest": str(folder)}}])
        assert "user-retrained-1" in stages_version(STAGES, user), model
        assert stages_version(STAGES, user) != stages_version(STAGES, bundled), model
        assert pipeline_version(user) != pipeline_version(bundled), model


def test_the_same_manifest_copied_elsewhere_keeps_the_version(tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(BUNDLED_MANIFEST, folder)
    bundled = load_settings(None, [{"vision": {"stages": STAGES}}])
    user = load_settings(None, [{"vision": {"stages": STAGES}}, {"models": {"manifest": str(folder)}}])
    assert pipeline_version(user) == pipeline_version(bundled)  # the version is content, not a path

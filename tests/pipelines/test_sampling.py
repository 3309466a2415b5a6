"""Sampled timestamps against an independent truth: every frame's presentation time from PyAV.

The documented rule: a fixed-rate ("rate") sample is the first frame whose floor(t * fps)
differs from the previous sample's; shot changes between rate samples come out as "shot".
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from pipelines.media import MediaError
from pipelines.sampling import ffmpeg_binary, load_image, sample_frames

VIDEOS = ["bikes.mp4", "carphone_pristine.mp4", "one-by-one-person-detection.mp4"]
# showinfo prints pts_time with 6 decimals; far below any frame interval here (>= 1/30 s).
TIME_TOL = 1e-5


def frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [frame.time for frame in container.decode(video=0)]


def rate_rule(times: list[float], fps: float) -> list[float]:
    kept: list[float] = []
    previous = None
    for t in times:
        bucket = math.floor(t * fps)
        if previous is None or bucket != previous:
            kept.append(t)
            previous = bucket
    return kept


def sample(path, fps, max_side=1280, **kwargs):
    return list(sample_frames(path, fps=fps, shot_threshold=0.4, max_side=max_side, **kwargs))


def ffmpeg(*args: str) -> None:
    result = subprocess.run([ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y", *args],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def frame_changes(path: Path) -> dict[float, float]:
    """Each frame's mean absolute difference from the frame before (64x36 grey): large at a cut."""
    changes: dict[float, float] = {}
    previous = None
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            grey = frame.to_ndarray(format="gray", width=64, height=36).astype(np.int16)
            if previous is not None:
                changes[round(frame.time, 4)] = float(np.abs(grey - previous).mean())
            previous = grey
    return changes


# bikes.mp4's hard cuts change 45-82 grey levels on average; nothing else in the videos passes 20.
CUT = 30.0


@pytest.fixture(scope="module")
def truth(shared_videos) -> dict[str, list[float]]:
    return {name: frame_times(shared_videos / name) for name in VIDEOS}


@pytest.fixture(scope="module")
def changes(shared_videos) -> dict[str, dict[float, float]]:
    return {name: frame_changes(shared_videos / name) for name in VIDEOS}


def assert_times(got: list[float], expected: list[float]) -> None:
    assert len(got) == len(expected), (got, expected)
    for g, e in zip(got, expected):
        assert g == pytest.approx(e, abs=TIME_TOL), (got, expected)


@pytest.mark.parametrize("fps", [1.0, 2.0])
@pytest.mark.parametrize("name", VIDEOS)
def test_rate_samples_match_frame_times(shared_videos, truth, changes, name, fps):
    times = truth[name]
    frames = sample(shared_videos / name, fps, max_side=64)
    got = [f.pts_time for f in frames]
    assert got == sorted(got) and len(set(got)) == len(got)
    assert_times([f.pts_time for f in frames if f.reason == "rate"], rate_rule(times, fps))
    assert {f.reason for f in frames} <= {"rate", "shot"}

    # shot samples are real frames, lie between rate samples (same bucket as the sample before)
    previous = None
    for f in frames:
        if f.reason == "shot":
            assert min(abs(f.pts_time - t) for t in times) < TIME_TOL
            assert previous is not None
            assert math.floor(f.pts_time * fps) == math.floor(previous * fps)
            assert changes[name][round(f.pts_time, 4)] > CUT, f"shot at {f.pts_time} is no cut"
        previous = f.pts_time


def test_expected_sample_counts(shared_videos, truth):
    # guards the rule helper itself: one rate sample per started second / half second
    assert len(rate_rule(truth["bikes.mp4"], 1)) == 10
    assert len(rate_rule(truth["bikes.mp4"], 2)) == 20
    assert len(rate_rule(truth["carphone_pristine.mp4"], 2)) == 8
    assert len(rate_rule(truth["one-by-one-person-detection.mp4"], 1)) == 140


def test_bikes_has_shot_changes_with_real_cuts(shared_videos, changes):
    frames = sample(shared_videos / "bikes.mp4", 1.0, max_side=64)
    shots = [round(f.pts_time, 4) for f in frames if f.reason == "shot"]
    strongest = max(changes["bikes.mp4"], key=changes["bikes.mp4"].get)
    assert strongest == 1.2 and strongest in shots  # the hardest cut is found
    assert all(changes["bikes.mp4"][t] > CUT for t in shots)
    assert 3 <= len(shots) <= 5  # five cuts by this measure; ffmpeg's scene score passes 0.4 on four


def test_frame_pixels_belong_to_their_timestamp(shared_videos):
    """Each image is the decoded frame at its pts_time (no off-by-one between pictures and times)."""
    path = shared_videos / "bikes.mp4"
    with av.open(str(path)) as container:
        decoded = {round(fr.time, 4): fr.to_ndarray(format="rgb24") for fr in container.decode(video=0)}
    keys = sorted(decoded)
    for f in sample(path, 2.0):
        i = keys.index(round(f.pts_time, 4))
        diffs = {j: np.abs(f.image.astype(int) - decoded[keys[j]].astype(int)).mean()
                 for j in (i - 1, i, i + 1) if 0 <= j < len(keys)}
        assert diffs[i] < 1.0, (f.pts_time, diffs)
        assert f.image.dtype == np.uint8 and f.image.shape == (272, 640, 3)


def test_segment_bounds_select_subset(shared_videos, truth):
    path = shared_videos / "bikes.mp4"
    whole = sample(path, 2.0, max_side=64)
    part = sample(path, 2.0, max_side=64, start=3.0, end=6.0)
    assert part and all(3.0 <= f.pts_time < 6.0 for f in part)
    assert [(round(f.pts_time, 6), f.reason) for f in part] == [
        (round(f.pts_time, 6), f.reason) for f in whole if 3.0 <= f.pts_time < 6.0
    ]
    tail = sample(path, 2.0, max_side=64, start=9.0)
    assert_times([f.pts_time for f in tail if f.reason == "rate"],
                 [t for t in rate_rule(truth["bikes.mp4"], 2.0) if t >= 9.0])
    assert [round(f.pts_time, 6) for f in tail if f.reason == "rate"] == [9.0, 9.52]  # no frame at 9.5
    head = sample(path, 2.0, max_side=64, end=1.0)
    assert [round(f.pts_time, 6) for f in head] == [0.0, 0.52]


@pytest.mark.parametrize(
    ("name", "max_side", "expected"),
    [
        ("bikes.mp4", 320, (136, 320)),        # 640x272 halves exactly
        ("bikes.mp4", 1280, (272, 640)),       # never enlarged
        ("carphone_pristine.mp4", 100, None),  # 176x144 -> 100 wide, even height
    ],
)
def test_max_side_keeps_aspect(shared_videos, name, max_side, expected):
    with av.open(str(shared_videos / name)) as container:
        ctx = container.streams.video[0].codec_context
        width, height = ctx.width, ctx.height
    frames = sample(shared_videos / name, 1.0, max_side=max_side)
    assert frames
    for f in frames:
        h, w = f.image.shape[:2]
        if expected:
            assert (h, w) == expected
        assert max(h, w) == min(max_side, max(width, height))
        assert abs(w / h - width / height) < 2.0 / min(h, w)


def _encode_test_video(target: Path, size: str = "320x180", rate: int = 10, seconds: int = 2) -> None:
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}",
           "-c:v", "mpeg4", "-q:v", "3", "-pix_fmt", "yuv420p", str(target))


def _rotate(source: Path, target: Path) -> None:
    """Stream copy with a 90 degree display rotation, with whichever option this ffmpeg has."""
    attempts = [
        ["-display_rotation", "90", "-i", str(source), "-c", "copy", str(target)],
        ["-i", str(source), "-c", "copy", "-metadata:s:v", "rotate=90", str(target)],
    ]
    for args in attempts:
        result = subprocess.run([ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y", *args],
                                capture_output=True, text=True)
        if result.returncode == 0 and _has_rotation(target):
            return
    pytest.fail("this ffmpeg can write neither -display_rotation nor rotate metadata")


def _has_rotation(path: Path) -> bool:
    probe = subprocess.run([ffmpeg_binary(), "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    return "rotation of" in probe.stderr or "rotate" in probe.stderr


def test_rotation_metadata_is_applied(tmp_path):
    plain, rotated = tmp_path / "plain.mp4", tmp_path / "rotated.mp4"
    _encode_test_video(plain)
    _rotate(plain, rotated)
    upright = sample(plain, 1.0)
    turned = sample(rotated, 1.0)
    assert [f.pts_time for f in turned] == [f.pts_time for f in upright] == [0.0, 1.0]
    for a, b in zip(upright, turned):
        assert a.image.shape == (180, 320, 3)
        assert b.image.shape == (320, 180, 3)
        # display rotation 90 is counter-clockwise: same pixels as np.rot90 (stream copy, same decode)
        assert np.abs(np.rot90(a.image, 1).astype(int) - b.image.astype(int)).mean() < 1.0
    small = sample(rotated, 1.0, max_side=100)
    assert small[0].image.shape[0] == 100 and small[0].image.shape[1] in (56, 57, 58)


def test_variable_frame_rate_timestamps(tmp_path):
    # 10 fps with a 1.5 s hole, then 25 fps: frame intervals of 0.1, 1.6 and 0.04 s
    vfr = tmp_path / "vfr.mkv"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=3",
        "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=3",
        "-filter_complex", "[0:v]select='not(between(t,1.15,2.65))'[a];[a][1:v]concat=n=2:v=1,settb=1/1000[v]",
        "-map", "[v]", "-fps_mode", "vfr", "-c:v", "mpeg4", "-q:v", "3", str(vfr),
    )
    times = frame_times(vfr)
    gaps = sorted({round(b - a, 3) for a, b in zip(times, times[1:])})
    assert 0.04 in gaps and 0.1 in gaps and max(gaps) > 1.0, gaps
    # a constant-rate reading of this file would be wrong
    assert [round(t, 3) for t in times] != [round(i * times[1], 3) for i in range(len(times))]
    for fps in (1.0, 2.0, 3.3):
        frames = sample(vfr, fps)
        assert_times([f.pts_time for f in frames if f.reason == "rate"], rate_rule(times, fps))
        for f in frames:
            assert min(abs(f.pts_time - t) for t in times) < TIME_TOL
    assert 2.7 in [round(f.pts_time, 3) for f in sample(vfr, 1.0)]  # first frame after the hole


def test_corrupt_video_raises_media_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 40_000, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError, match="ffmpeg could not decode") as info:
        sample(bad, 1.0)
    assert "\n" not in str(info.value)


def test_load_image_applies_exif_rotation_and_max_side(tmp_path, shared_data):
    from PIL import Image

    source = sorted((shared_data / "ccp" / "images").glob("*.jpg"))[0]
    with Image.open(source) as image:
        width, height = image.size
        image.save(tmp_path / "plain.jpg")
        exif = image.getexif()
        exif[0x0112] = 6  # orientation: rotate 90 clockwise on display
        image.save(tmp_path / "turned.jpg", exif=exif)
    plain = load_image(tmp_path / "plain.jpg", 4096)
    turned = load_image(tmp_path / "turned.jpg", 4096)
    assert plain.shape == (height, width, 3)
    assert turned.shape == (width, height, 3)
    small = load_image(tmp_path / "plain.jpg", 128)
    assert max(small.shape[:2]) == 128
    assert abs(small.shape[1] / small.shape[0] - width / height) < 2.0 / min(small.shape[:2])
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(MediaError, match="not a readable image"):
        load_image(tmp_path / "broken.jpg", 128)

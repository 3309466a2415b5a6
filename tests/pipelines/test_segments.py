"""Segments: together they sample exactly what a whole-file decode samples."""

from __future__ import annotations

import math

import pytest

from pipelines.probe import probe_video
from pipelines.sampling import sample_frames
from pipelines.segments import Segment, plan_segments


def samples(path, fps, start=None, end=None):
    return [
        (round(f.pts_time, 6), f.reason)
        for f in sample_frames(path, fps=fps, shot_threshold=0.4, max_side=96, start=start, end=end)
    ]


def segmented(path, duration, segment_seconds, fps):
    segments = plan_segments(duration, segment_seconds, fps)
    union = []
    for segment in segments:
        union += samples(path, fps, segment.start, segment.end)
    return segments, union


def test_plan_covers_the_file_contiguously():
    segments = plan_segments(139.4, 20, 1.0)
    assert len(segments) == 7
    assert segments[0].start is None and segments[-1].end is None
    for a, b in zip(segments, segments[1:]):
        assert a.end == b.start
    assert [s.start for s in segments[1:]] == [20.0, 40.0, 60.0, 80.0, 100.0, 120.0]


@pytest.mark.parametrize(
    ("duration", "segment_seconds", "fps", "count"),
    [
        (0.0, 60, 1.0, 1),      # unknown duration: one segment for the whole file
        (10.0, 60, 1.0, 1),
        (10.0, 3, 1.0, 4),
        (9.0, 3, 1.0, 3),       # exact multiple: no empty trailing segment
        (10.0, 0.1, 2.0, 20),   # shorter than a sampling period: one period per segment
        (4.004, 1, 2.0, 5),
    ],
)
def test_plan_counts(duration, segment_seconds, fps, count):
    segments = plan_segments(duration, segment_seconds, fps)
    assert len(segments) == count
    if count == 1:
        assert segments == [Segment(None, None)]


@pytest.mark.parametrize(("segment_seconds", "fps"), [(3, 1.0), (1.2, 2.5), (0.6, 5.0), (0.3, 10.0), (3.4, 0.3)])
def test_boundaries_start_a_sampling_bucket(segment_seconds, fps):
    # t >= boundary exactly when floor(t * fps) reaches the boundary's bucket
    for segment in plan_segments(10.0, segment_seconds, fps)[1:]:
        b = segment.start
        k = math.floor(b * fps)
        assert k == round(b * fps)
        assert math.floor(math.nextafter(b, -math.inf) * fps) == k - 1


@pytest.mark.parametrize("fps", [1.0, 2.0])
def test_union_of_segments_equals_whole_file_bikes(shared_videos, fps):
    path = shared_videos / "bikes.mp4"
    info = probe_video(path)
    whole = samples(path, fps)
    segments, union = segmented(path, info.duration, 3, fps)
    assert len(segments) == 4
    assert union == whole
    assert any(reason == "shot" for _, reason in whole)  # shot detection survives the cuts too


@pytest.mark.parametrize(("segment_seconds", "fps"), [(1.2, 2.5), (0.6, 5.0)])
def test_union_with_fractional_boundaries(shared_videos, segment_seconds, fps):
    """Boundaries that are not whole seconds must not duplicate or drop samples (float rounding)."""
    path = shared_videos / "bikes.mp4"
    whole = samples(path, fps)
    _, union = segmented(path, probe_video(path).duration, segment_seconds, fps)
    assert union == whole


def test_union_of_segments_other_videos(shared_videos):
    for name, segment_seconds, fps in [("carphone_pristine.mp4", 1, 2.0), ("one-by-one-person-detection.mp4", 30, 1.0)]:
        path = shared_videos / name
        whole = samples(path, fps)
        segments, union = segmented(path, probe_video(path).duration, segment_seconds, fps)
        assert len(segments) > 1
        assert union == whole, name


def test_last_segment_runs_past_a_short_claimed_duration(shared_videos):
    # a container that under-reports its duration must not lose the tail
    path = shared_videos / "bikes.mp4"
    _, union = segmented(path, 5.5, 3, 1.0)
    assert union == samples(path, 1.0)


def test_segments_are_balanced_over_the_workers():
    # 139 s at 1 fps in 60-s segments: 60 + 60 + 19 alone; over 2 workers, 4 equal segments.
    def sizes(plan, duration):
        ends = [s.end if s.end is not None else duration for s in plan]
        starts = [s.start if s.start is not None else 0.0 for s in plan]
        return [round(e - b) for b, e in zip(starts, ends)]

    assert sizes(plan_segments(139.0, 60.0, 1.0), 139.0) == [60, 60, 19]
    assert sizes(plan_segments(139.0, 60.0, 1.0, parallel=2), 139.0) == [35, 35, 35, 34]
    assert len(plan_segments(30.0, 60.0, 1.0, parallel=2)) == 2  # a short video still uses both
    assert len(plan_segments(1.0, 60.0, 1.0, parallel=4)) == 1  # one sample: one segment
    assert len(plan_segments(10.0, 60.0, 1.0, parallel=2)) == 1  # too short to be worth two ffmpegs
    assert all(len(plan_segments(d, 60.0, 1.0, parallel=2)) % 2 == 0 for d in (20.0, 59.0, 61.0, 200.0))

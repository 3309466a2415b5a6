"""Split a video into time segments so that one long video spreads over many Dask workers."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Segment:
    start: float | None  # None: from the file's first frame
    end: float | None    # None: to the file's last frame


def bucket_start(bucket: int, fps: float) -> float:
    """The smallest float t with floor(t * fps) >= bucket.

    A boundary there splits frames exactly as the sampling rule buckets them (t >= boundary
    if and only if the frame's bucket is >= bucket), whatever the rounding of bucket / fps.
    """
    t = bucket / fps
    while t > 0 and math.floor(t * fps) >= bucket:
        t = math.nextafter(t, -math.inf)
    while math.floor(t * fps) < bucket:
        t = math.nextafter(t, math.inf)
    return t


MIN_SEGMENT_SECONDS = 10.0


def plan_segments(duration: float, segment_seconds: float, fps: float, parallel: int = 1) -> list[Segment]:
    """Boundaries fall on multiples of the sampling period, so the segments' samples together
    are exactly the whole file's samples; the last segment runs to the end of the file whatever
    the container claims its duration is.

    parallel: how many workers share the work. The segment count is then rounded up to whole
    rounds over the workers and the segments made equal (at most `segment_seconds` each), so the
    workers finish together: 139 s over 2 workers is 4 segments of about 35 s, not 60 + 60 + 19 s
    (one worker with twice the other's work), and a 30-s video uses both workers; a video under
    twice MIN_SEGMENT_SECONDS stays whole."""
    buckets = max(1, round(segment_seconds * fps))  # sampling periods per segment
    count = max(1, math.ceil(duration * fps / buckets - 1e-9)) if duration > 0 else 1
    samples = max(1, math.ceil(duration * fps - 1e-9)) if duration > 0 else 1
    if parallel > 1:
        # whole rounds over the workers, but no segment much shorter than MIN_SEGMENT_SECONDS: each
        # one decodes a warm-up second and starts its own ffmpeg
        balanced = min(samples, parallel * math.ceil(count / parallel),
                       max(count, math.floor(duration / MIN_SEGMENT_SECONDS)))
        if balanced > count:
            buckets = math.ceil(samples / balanced)
            count = max(1, math.ceil(duration * fps / buckets - 1e-9))
    bounds = [bucket_start(i * buckets, fps) for i in range(count)]
    return [
        Segment(start=None if i == 0 else bounds[i], end=None if i == count - 1 else bounds[i + 1])
        for i in range(count)
    ]

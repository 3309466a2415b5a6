"""Split a video into time segments so that one long video spreads over many Dask workers."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Segment:
    start: float | None  # None: from the file's first frame
    end: float | None    # None: to the file's last frame


def plan_segments(duration: float, segment_seconds: float, fps: float) -> list[Segment]:
    """Boundaries fall on multiples of the sampling period, so the segments' samples together
    are exactly the whole file's samples; the last segment runs to the end of the file whatever
    the container claims its duration is."""
    period = 1.0 / fps
    length = max(period, round(segment_seconds / period) * period)
    count = max(1, math.ceil(duration / length - 1e-9)) if duration > 0 else 1
    bounds = [i * length for i in range(count)]
    return [
        Segment(start=None if i == 0 else bounds[i], end=None if i == count - 1 else bounds[i + 1])
        for i in range(count)
    ]

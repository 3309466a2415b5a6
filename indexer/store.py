"""What every store backend offers: media run status for resume, and bulk frame writes.

A media file's frames become visible only when its run finishes: frames are written under a
run id, and finishing a run makes that run the visible one and drops older runs' frames in one
step. A failed or interrupted run therefore never leaves half a video searchable, and never
hides what an earlier successful run indexed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from vision.labels import FrameLabels


class MediaStatus(str, Enum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


@dataclass
class MediaRecord:
    media_id: str
    path: str
    kind: str
    status: MediaStatus
    pipeline_version: str = ""
    reason: str = ""
    duration: float = 0.0
    width: int = 0
    height: int = 0
    frames: int = 0
    persons: int = 0
    garments: int = 0
    seconds: float = 0.0
    run_id: str = ""          # the run being written (pending) or last attempted
    visible_run_id: str = ""  # the run whose frames are searchable
    updated_at: float = 0.0

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


class LabelStore(Protocol):
    def get_media(self, media_id: str) -> MediaRecord | None: ...

    def list_media(self) -> list[MediaRecord]: ...

    def record_failure(self, path: str, kind: str, reason: str, media_id: str | None = None) -> None:
        """A file that could not even be probed (no media id of its own unless given)."""

    def begin_run(self, record: MediaRecord) -> None:
        """Mark a media file pending under record.run_id; earlier visible frames stay visible."""

    def write_frames(self, run_id: str, frames: list[FrameLabels]) -> None:
        """Bulk-write frames of a pending run (idempotent on frame id)."""

    def finish_run(self, media_id: str, run_id: str, frames: int, persons: int, garments: int, seconds: float) -> None:
        """Make the run's frames the visible ones and mark the media done."""

    def fail_run(self, media_id: str, run_id: str, reason: str) -> None:
        """Drop the run's frames and mark the media failed with a one-line reason."""

    def frames_of(self, media_id: str) -> list[FrameLabels]:
        """The visible frames of a media file, in time order."""

    def close(self) -> None: ...

"""What every store backend offers: media run status for resume, and bulk frame writes.

A media file's frames become visible only when its run finishes: frames are written under a
run id, and finishing a run makes that run the visible one and drops older runs' frames in one
step. A failed or interrupted run therefore never leaves half a video searchable, and never
hides what an earlier successful run indexed.

Search answers with moments (indexer/moments.py), which a backend builds from the run's frames when
the run finishes and swaps in the same step, so moments always describe the visible frames.
Matching and ranking are indexer/search.py's, shared by every backend: a backend only narrows
candidates, so two backends holding the same frames return the same pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from indexer.moments import Moment
from indexer.review import AuditEntry, QueuePage, QueueRequest, ReviewedFrame
from indexer.search import BoundSearch, SearchPage, SearchRequest
from indexer.similar import SimilarRequest
from labels import FrameLabels


class StoreUnavailable(RuntimeError):
    """The store cannot be reached or refused a write (after retries); the message says which setting."""


class StoreInconsistent(StoreUnavailable):
    """The store is in a state Vestis cannot use or repair by itself; the message names the command
    that clears it."""


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
        return media_name(self.path)


def media_name(path: str) -> str:
    """A media file's name as results show it and free text matches it: the last part of its path."""
    return path.rsplit("/", 1)[-1]


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
        """Make the run's frames the visible ones and mark the media done; the media's moments are
        rebuilt from those frames and replaced in the same step (an error leaves the old ones)."""

    def fail_run(self, media_id: str, run_id: str, reason: str) -> None:
        """Drop the run's frames and mark the media failed with a one-line reason."""

    def frames_of(self, media_id: str) -> list[FrameLabels]:
        """The visible frames of a media file, in time order."""

    def frame_ids_of(self, media_id: str) -> set[str]:
        """The ids of the visible frames of a media file, without reading the frames themselves."""

    def moment(self, moment_id: str) -> Moment | None:
        """A visible moment by id (what a result link points to), or None."""

    def moments_of(self, media_id: str) -> list[Moment]:
        """The visible moments of a media file, by start (then the order they were built in)."""

    def rebuild_moments(self, media_ids: list[str] | None = None, *, only_missing: bool = False) -> int:
        """Rebuild moments from the visible frames (all media, or these), e.g. after the merging rules
        changed; `only_missing`: just media whose visible run has none built. Returns how many."""

    def search(self, request: SearchRequest) -> SearchPage:
        """One page of the moments that match, ranked by indexer.search.match_moment: the page
        indexer.search.rank_moments gives over all moments.

        Raises indexer.search.InvalidCursor for a cursor that is not from this search.
        """

    def search_counted(self, request: SearchRequest) -> BoundSearch:
        """`search`, with how many moment documents the store read to answer it (tests, benchmarks)."""

    def similar(self, request: SimilarRequest) -> SearchPage:
        """The moments whose garments look most like request.embedding, by cosine similarity, with the
        request's search filters applied (indexer/similar.py); one page, no cursor."""

    # -- review (indexer/review.py) --------------------------------------------------------------
    def reviewed_frame(self, frame_id: str) -> ReviewedFrame | None:
        """A visible frame as reviewers see it (human version if any), with its edit version."""

    def save_review(self, frame_id: str, labels: FrameLabels, expected_version: str, entry: AuditEntry) -> ReviewedFrame:
        """Keep `labels` as the frame's human version if it is still at `expected_version` (else
        EditConflict), audit `entry`, and rebuild the media's moments, as one step."""

    def audit_log(self, *, frame_id: str | None = None, media_id: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """Audit entries, newest first."""

    def review_queue(self, request: QueueRequest) -> QueuePage:
        """Visible frames for review, filtered and sorted as asked."""

    def reviewed_frames(self) -> list[FrameLabels]:
        """The human version of every reviewed, still visible frame (for export)."""

    def close(self) -> None: ...

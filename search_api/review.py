"""The review API and page: browse frames by queue, see their labels, edit them with a reviewer token.

Reading is open; every write needs `Authorization: Bearer <token>` of a reviewer named in the
settings (`review.reviewers`), and carries the version of the frame the reviewer saw: a frame changed
by someone else since answers 409 with the version it has now, and nothing is overwritten.

Every parameter is bounded (ids, id lists, numbers, versions); the id limits live here because the
search endpoints in search_api/app.py share them.
"""

# No `from __future__ import annotations`: FastAPI must see the closures in Depends() at definition time.
import hmac
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from configs import Settings
from indexer import LabelStore
from indexer.review import (
    AuditEntry,
    Edit,
    EditConflict,
    InvalidEdit,
    QueueItem,
    QueueRequest,
    ReviewedFrame,
    ReviewStatus,
    edit_frame,
    label_paths,
    undo_last,
)
from labels import Alternative, FrameLabels
from labels.vocabulary import GARMENT_LABEL_FIELDS, LABEL_VOCABULARY

_bearer = HTTPBearer(auto_error=False, description="a reviewer token from the settings (review.reviewers)")

# --- limits shared with the search endpoints ---------------------------------------------------------
# Media ids are short digests (pipelines/probe.py), frame ids "<media id>-<milliseconds>", moment ids
# 32 hex digits: 128 characters is far more than any of them, and bounds what a lookup is given.
MAX_ID_CHARS = 128
MAX_MEDIA_FILTER = 100  # media ids in one filter (repeated or comma-separated)
MAX_VERSION_CHARS = 64  # a frame version: "12" (embedded) or "<seq_no>.<primary_term>" (Elasticsearch)

Id = Annotated[str, PathParam(min_length=1, max_length=MAX_ID_CHARS)]
# A label path as indexer.review.label_paths writes it, indices in plain decimal: the indexer reads an
# index with int(), which also takes "-1", "0_1" and " 1", so such a path would edit another label
# than the one the audit trail records.
_INDEX = r"(?:0|[1-9][0-9]{0,3})"
LABEL_PATH = re.compile(rf"persons\.{_INDEX}\.(?:detection|face\.expression"
                        rf"|garments\.{_INDEX}(?:\.(?:{'|'.join(GARMENT_LABEL_FIELDS[1:])}))?)")
# One `media` value may hold several comma-separated ids, so an item may be as long as the whole filter.
MediaFilter = Annotated[
    list[Annotated[str, StringConstraints(max_length=MAX_MEDIA_FILTER * (MAX_ID_CHARS + 1))]] | None,
    Query(max_length=MAX_MEDIA_FILTER, description=f"only these media ids (repeat or comma-separate; "
                                                   f"at most {MAX_MEDIA_FILTER})"),
]


def media_ids(media: list[str] | None) -> list[str] | None:
    """The ids of a `media` filter (repeated, comma-separated or both); None for no filter.

    422 for more than MAX_MEDIA_FILTER ids or an id longer than MAX_ID_CHARS: the schema can bound
    the repeats and each value, not the ids a value holds.
    """
    ids = [m.strip() for item in media or [] for m in item.split(",") if m.strip()]
    if len(ids) > MAX_MEDIA_FILTER:
        raise HTTPException(422, f"at most {MAX_MEDIA_FILTER} media ids in a filter, not {len(ids)}")
    long = next((m for m in ids if len(m) > MAX_ID_CHARS), None)
    if long is not None:
        raise HTTPException(422, f"media id {long[:40]!r}… is longer than {MAX_ID_CHARS} characters")
    return ids or None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabelRow(_Model):
    """One label of the frame, flat, for the label list."""

    path: str = Field(description="where it is in the frame; what edits name")
    field: str
    value: str
    confidence: float
    model: str
    reviewed_by: str | None
    box: list[float] | None = Field(None, description="x1, y1, x2, y2 of the person or garment it belongs to")
    alternatives: list[Alternative] = Field([], description="the model's most probable values, best first")


class FrameView(_Model):
    frame_id: str
    media_id: str
    media_name: str
    timestamp: float
    width: int
    height: int
    version: str
    status: ReviewStatus
    image_url: str
    previous_frame_id: str | None
    next_frame_id: str | None
    labels: list[LabelRow]
    frame: FrameLabels


class QueueItemOut(QueueItem):
    media_name: str
    thumbnail_url: str


class QueueOut(_Model):
    items: list[QueueItemOut]
    total: int


class EditIn(_Model):
    version: str = Field(max_length=MAX_VERSION_CHARS, description="FrameView.version as the reviewer saw it")
    edit: Edit


class UndoIn(_Model):
    version: str = Field(max_length=MAX_VERSION_CHARS)


def _box_of(frame: FrameLabels, path: str) -> list[float] | None:
    parts = path.split(".")
    person = frame.persons[int(parts[1])]
    box = person.garments[int(parts[3])].box if len(parts) >= 4 and parts[2] == "garments" else person.box
    return [box.x1, box.y1, box.x2, box.y2]


def label_rows(frame: FrameLabels) -> list[LabelRow]:
    rows = []
    for path, label in label_paths(frame):
        last = path.split(".")[-1]
        field = last if not last.isdigit() else "category"
        rows.append(LabelRow(path=path, field=field, value=label.value, confidence=label.confidence, model=label.model,
                             reviewed_by=label.reviewed_by, box=_box_of(frame, path),
                             alternatives=label.alternatives))
    return rows


def review_router(
    store: LabelStore,
    settings: Settings,
    neighbours: Callable[[str, str], tuple[str | None, str | None]],
    changed: Callable[[str], None],
    static_dir: Path,
) -> APIRouter:
    """`neighbours(media_id, frame_id)`: the frames before and after; `changed(media_id)`: a frame
    of it was edited (the app drops what it cached)."""
    router = APIRouter(tags=["review"])
    tokens = {name: secret.get_secret_value() for name, secret in settings.review.reviewers.items()}

    def reviewer(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
        if not tokens:
            raise HTTPException(403, "review edits are switched off: the operator sets review.reviewers "
                                     "(name: token) to allow them")
        if credentials is None:
            raise HTTPException(401, "a reviewer token is needed: Authorization: Bearer <token>",
                                headers={"WWW-Authenticate": "Bearer"})
        given = credentials.credentials.encode()
        for name, token in tokens.items():
            if hmac.compare_digest(given, token.encode()):  # no timing hint about how much matched
                return name
        raise HTTPException(403, "unknown reviewer token")

    def view(current: ReviewedFrame) -> FrameView:
        frame = current.labels
        record = store.get_media(frame.media_id)
        previous, following = neighbours(frame.media_id, frame.frame_id)
        return FrameView(
            frame_id=frame.frame_id, media_id=frame.media_id, media_name=record.name if record else "",
            timestamp=frame.timestamp, width=frame.width, height=frame.height, version=current.version,
            status=current.status, image_url=f"/frames/{frame.frame_id}.jpg", previous_frame_id=previous,
            next_frame_id=following, labels=label_rows(frame), frame=frame,
        )

    def saved(work: Callable[[], ReviewedFrame], media_id: str) -> FrameView:
        try:
            result = work()
        except EditConflict as exc:
            raise HTTPException(409, {"message": str(exc), "current_version": exc.current}) from None
        except InvalidEdit as exc:
            raise HTTPException(422, str(exc)) from None
        changed(media_id)
        return view(result)

    def reviewed(frame_id: str) -> ReviewedFrame:
        current = store.reviewed_frame(frame_id)
        if current is None:
            raise HTTPException(404, f"no visible frame {frame_id!r}")
        return current

    @router.get("/review", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(static_dir / "review.html", media_type="text/html")

    @router.get("/api/review/vocabulary", operation_id="get_review_vocabulary", summary="The values each label field may take")
    def vocabulary() -> dict[str, list[str]]:
        return {field: list(values) for field, values in LABEL_VOCABULARY.items()}

    @router.get("/api/review/queue", operation_id="get_review_queue", response_model=QueueOut, summary="Frames to review, least sure first")
    def queue(
        media: MediaFilter = None,
        label: Annotated[str | None, Query(max_length=40, description="only frames with a label of this value")] = None,
        min_confidence: Annotated[float, Query(ge=0, le=1)] = 0.0,
        max_confidence: Annotated[float, Query(ge=0, le=1)] = 1.0,
        status: Annotated[ReviewStatus | None, Query()] = None,
        sort: Annotated[str, Query(pattern="^(confidence|time)$")] = "confidence",
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> QueueOut:
        request = QueueRequest(media_ids=media_ids(media), label=label or None, min_confidence=min_confidence,
                               max_confidence=max_confidence, status=status, sort=sort, limit=limit, offset=offset)
        page = store.review_queue(request)
        names = {m: (r.name if (r := store.get_media(m)) else "") for m in {i.media_id for i in page.items}}
        items = [QueueItemOut(**item.model_dump(), media_name=names[item.media_id],
                              thumbnail_url=f"/frames/{item.frame_id}.jpg") for item in page.items]
        return QueueOut(items=items, total=page.total)

    @router.get("/api/review/frames/{frame_id}", operation_id="get_review_frame", response_model=FrameView, summary="A frame and its labels")
    def frame(frame_id: Id) -> FrameView:
        return view(reviewed(frame_id))

    @router.post("/api/review/frames/{frame_id}/edits", operation_id="edit_review_frame", response_model=FrameView,
                 summary="Accept, reject, change, delete or draw a label (needs a reviewer token)",
                 responses={409: {"description": "someone else changed the frame since `version`"}})
    def edit(frame_id: Id, body: EditIn, who: Annotated[str, Depends(reviewer)]) -> FrameView:
        path = getattr(body.edit, "path", None)
        if path is not None and not LABEL_PATH.fullmatch(path):
            raise HTTPException(422, f"no label path {path[:80]!r}: paths look like persons.0.garments.1.color "
                                     "(the label list's `path`)")
        current = reviewed(frame_id)
        return saved(lambda: edit_frame(store, frame_id, body.edit, body.version, who), current.labels.media_id)

    @router.post("/api/review/frames/{frame_id}/undo", operation_id="undo_review_edit", response_model=FrameView,
                 summary="Revert the frame's latest edit (needs a reviewer token)",
                 responses={409: {"description": "someone else changed the frame since `version`"}})
    def undo(frame_id: Id, body: UndoIn, who: Annotated[str, Depends(reviewer)]) -> FrameView:
        current = reviewed(frame_id)
        return saved(lambda: undo_last(store, frame_id, body.version, who), current.labels.media_id)

    @router.get("/api/review/audit", operation_id="get_review_audit", response_model=list[AuditEntry], summary="Who changed what, newest first")
    def audit(
        frame_id: Annotated[str | None, Query(max_length=MAX_ID_CHARS)] = None,
        media: Annotated[str | None, Query(max_length=MAX_ID_CHARS)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[AuditEntry]:
        return store.audit_log(frame_id=frame_id, media_id=media, limit=limit)

    return router

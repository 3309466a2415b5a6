"""Human review of frame labels: the edits a reviewer can make, what they leave behind, and the queue.

A reviewed frame is kept as a whole human version of its FrameLabels beside the machine labels (the
store's reviews); every read of the frame, and every moment built from it, uses that version, so a
re-ingest of the video never puts a machine label back over a human one. Each edit is checked
against the version the reviewer saw (optimistic concurrency) and recorded in the audit trail with
the frame before and after, which is also what undo restores.

Label marks: an accepted label keeps its value and model and gets `reviewed_by` and confidence 1.0;
a changed or drawn label has model `human:<reviewer>`. Rejecting or deleting a label removes it (a
garment with its attributes, a person with everything on it); the audit keeps what was removed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from enum import Enum
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from labels import Box, FrameLabels, Garment, Label, Person
from labels.vocabulary import GARMENT_LABEL_FIELDS, LABEL_VOCABULARY

HUMAN_MODEL_VERSION = "review"



class ReviewStatus(str, Enum):
    UNREVIEWED = "unreviewed"
    PARTIAL = "partial"
    REVIEWED = "reviewed"


class InvalidEdit(ValueError):
    """The edit does not fit the frame (no such label, a value outside the vocabulary, ...)."""


class EditConflict(RuntimeError):
    """The frame changed since the reviewer read it: `current` is the version it has now."""

    def __init__(self, frame_id: str, expected: str, current: str):
        super().__init__(f"frame {frame_id} was changed by someone else (you had version {expected}, "
                         f"it is now {current}): reload it and redo your change")
        self.frame_id, self.expected, self.current = frame_id, expected, current


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- label paths ---------------------------------------------------------------------------------
# A label is named by its place in the frame: "persons.0.detection", "persons.0.face.expression",
# "persons.0.garments.1" (the garment: its category), "persons.0.garments.1.color".


def label_paths(frame: FrameLabels) -> Iterator[tuple[str, Label]]:
    for p, person in enumerate(frame.persons):
        yield f"persons.{p}.detection", person.detection
        if person.face is not None and person.face.expression is not None:
            yield f"persons.{p}.face.expression", person.face.expression
        for g, garment in enumerate(person.garments):
            yield f"persons.{p}.garments.{g}", garment.category
            for name in GARMENT_LABEL_FIELDS[1:]:
                label = getattr(garment, name)
                if label is not None:
                    yield f"persons.{p}.garments.{g}.{name}", label


def _is_reviewed(label: Label) -> bool:
    return label.reviewed_by is not None


def review_status(frame: FrameLabels) -> ReviewStatus:
    labels = [label for _, label in label_paths(frame)]
    reviewed = sum(_is_reviewed(label) for label in labels)
    if labels and reviewed == len(labels) or not labels and frame.reviewed_by is not None:
        return ReviewStatus.REVIEWED
    if reviewed or frame.reviewed_by is not None:
        return ReviewStatus.PARTIAL
    return ReviewStatus.UNREVIEWED


def lowest_confidence(frame: FrameLabels) -> float | None:
    """The least sure label a reviewer has not confirmed yet: what the queue sorts by."""
    open_labels = [label.confidence for _, label in label_paths(frame) if not _is_reviewed(label)]
    return min(open_labels) if open_labels else None


def label_values(frame: FrameLabels) -> list[str]:
    return sorted({label.value for _, label in label_paths(frame)})


# --- edits ---------------------------------------------------------------------------------------


LabelPath = Annotated[str, Field(max_length=64)]


class Accept(_Model):
    kind: Literal["accept"] = "accept"
    path: LabelPath


class Reject(_Model):
    kind: Literal["reject"] = "reject"
    path: LabelPath


class Delete(_Model):
    kind: Literal["delete"] = "delete"
    path: LabelPath


class SetValue(_Model):
    kind: Literal["set"] = "set"
    path: LabelPath
    value: str = Field(max_length=40)


class AddBox(_Model):
    """A box the machine missed: `category` "person" adds a person; a garment category adds that
    garment to `person` (by default the person whose box holds the drawn box's centre)."""

    kind: Literal["add_box"] = "add_box"
    box: Box
    category: str = Field(max_length=40)
    person: int | None = Field(None, ge=0)


class AcceptAll(_Model):
    kind: Literal["accept_all"] = "accept_all"


Edit = Annotated[Union[Accept, Reject, Delete, SetValue, AddBox, AcceptAll], Field(discriminator="kind")]


def _human(value: str, reviewer: str) -> Label:
    return Label(value=value, confidence=1.0, model=f"human:{reviewer}", model_version=HUMAN_MODEL_VERSION,
                 reviewed_by=reviewer)


def _accepted(label: Label, reviewer: str) -> Label:
    return label if label.reviewed_by else label.model_copy(update={"confidence": 1.0, "reviewed_by": reviewer})


_INDEX = re.compile(r"0|[1-9][0-9]{0,3}")


def _parse(frame: FrameLabels, path: str, *, allow_missing: bool = False) -> tuple[int, int | None, str | None]:
    """(person index, garment index or None, field or None) of an existing label path; with
    `allow_missing`, a garment attribute without a label yet is allowed too (it can be set)."""
    parts = path.split(".")
    try:
        indices = [parts[1]] + ([parts[3]] if len(parts) > 3 and parts[2] == "garments" else [])
        if parts[0] != "persons" or not all(_INDEX.fullmatch(i) for i in indices):
            raise ValueError  # int() would take "-1", " 1" or "0_0" and edit another label than the audit names
        p = int(parts[1])
        person = frame.persons[p]
        if parts[2:] == ["detection"]:
            return p, None, "detection"
        if parts[2:] == ["face", "expression"]:
            if person.face is None or person.face.expression is None:
                raise IndexError
            return p, None, "expression"
        if parts[2] == "garments" and len(parts) in (4, 5):
            g = int(parts[3])
            garment = person.garments[g]
            field = parts[4] if len(parts) == 5 else None
            if field is not None and (field not in GARMENT_LABEL_FIELDS[1:]):
                raise ValueError
            if field is not None and getattr(garment, field) is None and not allow_missing:
                raise IndexError
            return p, g, field
        raise ValueError
    except (ValueError, IndexError):
        raise InvalidEdit(f"frame {frame.frame_id} has no label {path!r}") from None


def _check_value(field: str, value: str) -> None:
    allowed = LABEL_VOCABULARY.get(field)
    if allowed is None:
        raise InvalidEdit(f"{field} cannot be changed, only accepted, rejected or deleted")
    if value not in allowed:
        raise InvalidEdit(f"{value!r} is not a {field}; one of: {', '.join(allowed)}")


def _replace_garment(frame: FrameLabels, p: int, g: int, garment: Garment | None) -> FrameLabels:
    person = frame.persons[p]
    garments = list(person.garments)
    if garment is None:
        del garments[g]
    else:
        garments[g] = garment
    return _replace_person(frame, p, person.model_copy(update={"garments": garments}))


def _replace_person(frame: FrameLabels, p: int, person: Person | None) -> FrameLabels:
    persons = list(frame.persons)
    if person is None:
        del persons[p]
    else:
        persons[p] = person
    return frame.model_copy(update={"persons": persons})


def _set_label(frame: FrameLabels, path: str, make, *, allow_missing: bool = False) -> FrameLabels:
    """The frame with the label at `path` replaced by make(old label or None), or removed when it gives None."""
    p, g, field = _parse(frame, path, allow_missing=allow_missing)
    person = frame.persons[p]
    if g is None and field == "detection":
        label = make(person.detection)
        return _replace_person(frame, p, None if label is None else person.model_copy(update={"detection": label}))
    if g is None:  # the face expression
        assert person.face is not None  # the path named it (checked on the way in)
        face = person.face.model_copy(update={"expression": make(person.face.expression)})
        return _replace_person(frame, p, person.model_copy(update={"face": face}))
    garment = person.garments[g]
    if field is None:  # the garment itself, named by its category
        label = make(garment.category)
        return _replace_garment(frame, p, g, None if label is None else garment.model_copy(update={"category": label}))
    return _replace_garment(frame, p, g, garment.model_copy(update={field: make(getattr(garment, field))}))


def _field_of(path: str) -> str:
    parts = path.split(".")
    if parts[-1] in ("detection", "expression") or parts[-1] in GARMENT_LABEL_FIELDS:
        return parts[-1]
    return "category"  # persons.P.garments.G


def _owner(frame: FrameLabels, box: Box) -> int:
    cx, cy = box.centre
    holding = [p.box.area for p in frame.persons]
    inside = [i for i, p in enumerate(frame.persons) if p.box.contains(cx, cy)]
    if not inside:
        raise InvalidEdit("no person's box holds the drawn garment: draw the person first, or name the person")
    return min(inside, key=lambda i: holding[i])  # the smallest: the nearer person when boxes overlap


def apply_edit(frame: FrameLabels, edit: Edit, reviewer: str) -> FrameLabels:
    """The frame after `edit` by `reviewer`; InvalidEdit when it does not fit the frame."""
    if isinstance(edit, AcceptAll):
        updated = frame
        for path, _ in list(label_paths(frame)):
            updated = _set_label(updated, path, lambda label: _accepted(label, reviewer))
        return updated.model_copy(update={"reviewed_by": reviewer})
    if isinstance(edit, Accept):
        return _set_label(frame, edit.path, lambda label: _accepted(label, reviewer))
    if isinstance(edit, (Reject, Delete)):
        _parse(frame, edit.path)
        # A removal is a review of the frame: with nothing left on it, the frame is reviewed (it is
        # what a training set needs to learn "nothing here"), otherwise partly reviewed.
        removed = _set_label(frame, edit.path, lambda label: None)
        return removed.model_copy(update={"reviewed_by": frame.reviewed_by or reviewer})
    if isinstance(edit, SetValue):
        field = _field_of(edit.path)
        _check_value(field, edit.value)
        return _set_label(frame, edit.path, lambda label: _human(edit.value, reviewer), allow_missing=True)
    if isinstance(edit, AddBox):
        box = edit.box
        if not (0 <= box.x1 < box.x2 <= frame.width and 0 <= box.y1 < box.y2 <= frame.height):
            raise InvalidEdit(f"the box must lie inside the {frame.width}x{frame.height} frame with x1 < x2, y1 < y2")
        if edit.category == "person":
            person = Person(detection=_human("person", reviewer), box=box)
            return frame.model_copy(update={"persons": [*frame.persons, person]})
        _check_value("category", edit.category)
        p = edit.person if edit.person is not None else _owner(frame, box)
        if p >= len(frame.persons):
            raise InvalidEdit(f"frame {frame.frame_id} has no person {p}")
        person = frame.persons[p]
        garment = Garment(category=_human(edit.category, reviewer), box=box)
        return _replace_person(frame, p, person.model_copy(update={"garments": [*person.garments, garment]}))
    raise InvalidEdit(f"unknown edit {edit!r}")


# --- what the store keeps and answers ------------------------------------------------------------


class ReviewedFrame(_Model):
    """A frame as a reviewer sees it: its labels (human version if any) and the version to edit against."""

    labels: FrameLabels
    version: str = Field(description="opaque: send it back with an edit; '0' while nobody has edited the frame")
    status: ReviewStatus


class AuditEntry(_Model):
    entry_id: int = Field(0, description="assigned by the store, increasing")
    frame_id: str
    media_id: str
    reviewer: str
    at: float = Field(default_factory=time.time)
    action: str = Field(description="the edit's kind, or 'undo'")
    edit: dict = Field(default_factory=dict, description="the edit as sent")
    before: FrameLabels
    after: FrameLabels
    undoes: int | None = Field(None, description="for an undo: the entry it reverted")


class QueueRequest(_Model):
    media_ids: list[str] | None = None
    label: str | None = Field(None, description="only frames with a label of this value (e.g. dress, red)")
    min_confidence: float = Field(0.0, ge=0.0, le=1.0, description="of the frame's least sure open label")
    max_confidence: float = Field(1.0, ge=0.0, le=1.0)
    status: ReviewStatus | None = None
    sort: Literal["confidence", "time"] = "confidence"
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0)


class QueueItem(_Model):
    frame_id: str
    media_id: str
    timestamp: float
    status: ReviewStatus
    lowest_confidence: float | None = Field(description="None when every label is confirmed")
    labels: list[str]


class QueuePage(_Model):
    items: list[QueueItem]
    total: int


# --- edits through a store -----------------------------------------------------------------------


def edit_frame(store, frame_id: str, edit: Edit, version: str, reviewer: str) -> ReviewedFrame:
    """Apply `edit` to the frame as it is now and save it if nobody changed it since `version`."""
    current = store.reviewed_frame(frame_id)
    if current is None:
        raise InvalidEdit(f"no visible frame {frame_id!r}")
    if current.version != version:  # early, before the edit is checked against labels the reviewer never saw
        raise EditConflict(frame_id, version, current.version)
    after = apply_edit(current.labels, edit, reviewer)
    entry = AuditEntry(frame_id=frame_id, media_id=current.labels.media_id, reviewer=reviewer, action=edit.kind,
                       edit=edit.model_dump(mode="json"), before=current.labels, after=after)
    return store.save_review(frame_id, after, version, entry)


def undo_last(store, frame_id: str, version: str, reviewer: str) -> ReviewedFrame:
    """Revert the frame's latest edit not yet undone (undos are edits too, and are audited)."""
    current = store.reviewed_frame(frame_id)
    if current is None:
        raise InvalidEdit(f"no visible frame {frame_id!r}")
    if current.version != version:
        raise EditConflict(frame_id, version, current.version)
    history = store.audit_log(frame_id=frame_id, limit=10_000)  # newest first
    undone = {e.undoes for e in history if e.undoes is not None}
    target = next((e for e in history if e.action != "undo" and e.entry_id not in undone), None)
    if target is None:
        raise InvalidEdit(f"frame {frame_id} has no edit left to undo")
    entry = AuditEntry(frame_id=frame_id, media_id=current.labels.media_id, reviewer=reviewer, action="undo",
                       before=current.labels, after=target.before, undoes=target.entry_id)
    return store.save_review(frame_id, target.before, version, entry)

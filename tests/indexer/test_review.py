"""Review: edits on frame labels, and what the store does with them (versions, audit, undo, moments,
re-ingest, queue, export)."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.export import export_reviewed
from indexer.frame_images import FrameImageStore
from indexer.review import (
    Accept,
    AcceptAll,
    AddBox,
    Delete,
    EditConflict,
    InvalidEdit,
    QueueRequest,
    Reject,
    ReviewStatus,
    SetValue,
    apply_edit,
    edit_frame,
    label_paths,
    lowest_confidence,
    review_status,
    undo_last,
)
from indexer.search import SearchRequest
from tests.indexer.test_search import black_jacket_blue_jeans, frame_id, frames, garment, person, red_striped_dress
from tests.indexer.test_store_search import PARSER, catwalk, index, search, spans
from labels import Box


def dress_frame():
    return frames("catwalk", [2.0], red_striped_dress(expression="happy"))[0]


COLOR = "persons.0.garments.0.color"


# --- edits on one frame --------------------------------------------------------------------------


def test_labels_are_named_by_their_place():
    paths = dict(label_paths(dress_frame()))
    assert list(paths) == ["persons.0.detection", "persons.0.face.expression", "persons.0.garments.0",
                           COLOR, "persons.0.garments.0.pattern", "persons.0.garments.0.sleeve"]
    assert paths["persons.0.garments.0"].value == "dress" and paths[COLOR].value == "red"


def test_a_changed_value_is_a_human_label():
    after = apply_edit(dress_frame(), SetValue(path=COLOR, value="blue"), "alice")
    color = after.persons[0].garments[0].color
    assert (color.value, color.confidence, color.model, color.reviewed_by) == ("blue", 1.0, "human:alice", "alice")
    assert after.persons[0].garments[0].pattern.value == "striped"  # nothing else moved
    assert review_status(after) == ReviewStatus.PARTIAL


def test_accept_keeps_the_value_and_model_and_confirms_it():
    before = dress_frame()
    after = apply_edit(before, Accept(path=COLOR), "bob")
    color = after.persons[0].garments[0].color
    assert (color.value, color.model, color.confidence, color.reviewed_by) == ("red", "test", 1.0, "bob")
    assert lowest_confidence(after) == pytest.approx(0.7) and lowest_confidence(before) == pytest.approx(0.7)


def test_reject_and_delete_remove_what_they_name():
    frame = dress_frame()
    assert apply_edit(frame, Reject(path="persons.0.garments.0"), "a").persons[0].garments == []
    assert apply_edit(frame, Delete(path=COLOR), "a").persons[0].garments[0].color is None
    assert apply_edit(frame, Delete(path="persons.0.face.expression"), "a").persons[0].face.expression is None
    assert apply_edit(frame, Reject(path="persons.0.detection"), "a").persons == []


def test_accept_all_reviews_every_label_and_the_frame():
    after = apply_edit(dress_frame(), AcceptAll(), "carol")
    assert review_status(after) == ReviewStatus.REVIEWED and lowest_confidence(after) is None
    assert all(label.reviewed_by == "carol" for _, label in label_paths(after))
    empty = frames("catwalk", [9.0])[0]
    assert review_status(empty) == ReviewStatus.UNREVIEWED
    assert review_status(apply_edit(empty, AcceptAll(), "carol")) == ReviewStatus.REVIEWED  # "nobody here" confirmed


def test_drawn_boxes_become_persons_and_garments_of_the_person_holding_them():
    frame = dress_frame()  # the person's box is x 500-600, y 100-400
    with_person = apply_edit(frame, AddBox(box=Box(x1=10, y1=10, x2=60, y2=200), category="person"), "a")
    assert len(with_person.persons) == 2 and with_person.persons[1].detection.model == "human:a"
    hat = apply_edit(frame, AddBox(box=Box(x1=520, y1=100, x2=580, y2=130), category="hat"), "a")
    assert [g.category.value for g in hat.persons[0].garments] == ["dress", "hat"]
    with pytest.raises(InvalidEdit, match="draw the person first"):
        apply_edit(frame, AddBox(box=Box(x1=10, y1=10, x2=60, y2=60), category="hat"), "a")
    with pytest.raises(InvalidEdit, match="inside the 1280x720 frame"):
        apply_edit(frame, AddBox(box=Box(x1=10, y1=10, x2=5000, y2=60), category="person"), "a")


@pytest.mark.parametrize(("edit", "message"), [
    (SetValue(path=COLOR, value="chartreuse"), "'chartreuse' is not a color"),
    (SetValue(path="persons.0.garments.0", value="red"), "'red' is not a category"),
    (SetValue(path="persons.0.detection", value="robot"), "cannot be changed"),
    (Accept(path="persons.3.detection"), "no label 'persons.3.detection'"),
    (Delete(path="persons.0.garments.0.secondary_color"), "no label"),  # nothing there to delete
    (Accept(path="persons.0.garments.0.secondary_color"), "no label"),
    (SetValue(path="persons.0.garments.0.secondary_color", value="white"), None),  # a missing attribute may be set
    (Accept(path="../../etc/passwd"), "no label"),
    (Accept(path="persons.-1.detection"), "no label"),  # int() reads it, the audit would name another label
    (Accept(path="persons. 0.detection"), "no label"),
    (Accept(path="persons.0.garments.0_0"), "no label"),
    (AddBox(box=Box(x1=520, y1=100, x2=580, y2=130), category="cape"), "'cape' is not a category"),
])
def test_edits_that_do_not_fit_are_refused(edit, message):
    if message is None:
        assert apply_edit(dress_frame(), edit, "a").persons[0].garments[0].secondary_color.value == "white"
        return
    with pytest.raises(InvalidEdit, match=message):
        apply_edit(dress_frame(), edit, "a")


# --- through the store ---------------------------------------------------------------------------


@pytest.fixture
def catwalk_store(store):
    """The catwalk indexed in each backend in turn."""
    index(store, "catwalk", catwalk())
    return store


DRESS_AT_2 = frame_id("catwalk", 2.0)


def test_an_edit_is_kept_versioned_audited_and_searchable(catwalk_store):
    store = catwalk_store
    assert spans(search(store, "blue dress")) == []
    first = store.reviewed_frame(DRESS_AT_2)
    assert (first.version, first.status) == ("0", ReviewStatus.UNREVIEWED)
    saved = edit_frame(store, DRESS_AT_2, SetValue(path=COLOR, value="blue"), "0", "alice")
    assert saved.version != "0" and saved.status == ReviewStatus.PARTIAL
    assert store.reviewed_frame(DRESS_AT_2).labels == saved.labels
    assert store.reviewed_frame(DRESS_AT_2).version == saved.version
    [frame] = [f for f in store.frames_of("catwalk") if f.frame_id == DRESS_AT_2]
    assert frame.persons[0].garments[0].color.value == "blue"
    [entry] = store.audit_log(frame_id=DRESS_AT_2)
    assert (entry.reviewer, entry.action) == ("alice", "set") and entry.entry_id > 0
    assert entry.before.persons[0].garments[0].color.value == "red"
    assert entry.after.persons[0].garments[0].color.value == "blue"
    # The moments were rebuilt, and a human label outvotes the machine's (4 frames still say red).
    assert spans(search(store, "red dress")) == []
    dress = search(store, "blue dress").hits[0].moment
    assert (dress.start, dress.end, dress.review_status) == (0.0, 4.0, "partial")
    assert [h.moment.moment_id for h in search(store, "dress", review_status=["partial"]).hits] == [dress.moment_id]
    assert search(store, "dress", review_status=["reviewed"]).hits == []


def test_a_stale_version_is_a_conflict_and_changes_nothing(catwalk_store):
    store = catwalk_store
    first = edit_frame(store, DRESS_AT_2, SetValue(path=COLOR, value="blue"), "0", "alice")
    with pytest.raises(EditConflict, match=f"you had version 0, it is now {first.version}") as caught:
        edit_frame(store, DRESS_AT_2, SetValue(path=COLOR, value="green"), "0", "bob")
    assert caught.value.current == first.version
    with pytest.raises(EditConflict):  # the store checks too, not only the edit helper
        store.save_review(DRESS_AT_2, store.reviewed_frame(DRESS_AT_2).labels, "0",
                          store.audit_log(frame_id=DRESS_AT_2)[0])
    with pytest.raises(EditConflict):
        store.save_review(DRESS_AT_2, store.reviewed_frame(DRESS_AT_2).labels, "garbage",
                          store.audit_log(frame_id=DRESS_AT_2)[0])
    assert store.reviewed_frame(DRESS_AT_2).labels.persons[0].garments[0].color.value == "blue"
    assert len(store.audit_log(frame_id=DRESS_AT_2)) == 1


def test_undo_walks_back_through_the_edits(catwalk_store):
    store = catwalk_store
    version = edit_frame(store, DRESS_AT_2, SetValue(path=COLOR, value="blue"), "0", "alice").version
    version = edit_frame(store, DRESS_AT_2, Delete(path="persons.0.garments.0.pattern"), version, "alice").version
    undone = undo_last(store, DRESS_AT_2, version, "alice")
    garment_now = undone.labels.persons[0].garments[0]
    assert garment_now.pattern.value == "striped" and garment_now.color.value == "blue"
    undone = undo_last(store, DRESS_AT_2, undone.version, "alice")
    assert undone.labels.persons[0].garments[0].color.value == "red"
    with pytest.raises(InvalidEdit, match="no edit left to undo"):
        undo_last(store, DRESS_AT_2, undone.version, "alice")
    assert [e.action for e in store.audit_log(frame_id=DRESS_AT_2)] == ["undo", "undo", "delete", "set"]


def test_human_labels_survive_a_reingest(catwalk_store):
    store = catwalk_store
    edited = edit_frame(store, DRESS_AT_2, SetValue(path=COLOR, value="blue"), "0", "alice")
    index(store, "catwalk", catwalk(), run_id="run-2")  # the machine labels again, all red
    frame = store.reviewed_frame(DRESS_AT_2)
    assert frame.labels.persons[0].garments[0].color.value == "blue" and frame.version == edited.version
    assert store.get_media("catwalk").visible_run_id == "run-2"
    assert search(store, "dress").hits[0].moment.review_status == "partial"


def test_the_queue_filters_and_puts_the_least_sure_first(catwalk_store):
    store = catwalk_store
    unsure = frames("street", [0.0], person(garment("hat", "black", confidence=0.2)))
    index(store, "street", unsure + frames("street", [1.0], black_jacket_blue_jeans()))
    page = store.review_queue(QueueRequest())
    assert page.total == 16  # 14 catwalk frames, 2 street frames
    assert page.items[0].frame_id == frame_id("street", 0.0) and page.items[0].lowest_confidence == pytest.approx(0.2)
    lows = [1.0 if i.lowest_confidence is None else i.lowest_confidence for i in page.items]
    assert lows == sorted(lows)
    assert {i.frame_id for i in store.review_queue(QueueRequest(label="hat")).items} == {frame_id("street", 0.0)}
    assert store.review_queue(QueueRequest(label="%")).total == 0  # a value, not a pattern
    assert store.review_queue(QueueRequest(label="re_")).total == 0
    assert store.review_queue(QueueRequest(media_ids=["street"], max_confidence=0.5)).total == 1
    edit_frame(store, DRESS_AT_2, AcceptAll(), "0", "alice")
    reviewed = store.review_queue(QueueRequest(status=ReviewStatus.REVIEWED))
    assert [i.frame_id for i in reviewed.items] == [DRESS_AT_2]
    assert store.review_queue(QueueRequest(status=ReviewStatus.UNREVIEWED)).total == 15
    by_time = store.review_queue(QueueRequest(sort="time", media_ids=["catwalk"], limit=3, offset=1))
    assert [i.timestamp for i in by_time.items] == [1.0, 2.0, 3.0]


def test_export_writes_the_reviewed_frames_as_coco(catwalk_store, tmp_path):
    store = catwalk_store
    images = FrameImageStore(tmp_path)
    images.save("catwalk", DRESS_AT_2, np.zeros((720, 1280, 3), dtype=np.uint8))  # stored 640x360
    edit_frame(store, DRESS_AT_2, SetValue(path=COLOR, value="blue"), "0", "alice")
    coco = export_reviewed(store, images)
    [image] = coco["images"]
    assert (image["vestis_frame_id"], image["width"], image["vestis_frame_width"], image["vestis_media_path"]) == (
        DRESS_AT_2, 640, 1280, "/videos/catwalk.mp4")
    names = {c["id"]: c["name"] for c in coco["categories"]}
    by_name = {names[a["category_id"]]: a for a in coco["annotations"]}
    assert set(by_name) == {"person", "dress"}
    dress = by_name["dress"]
    assert dress["attributes"]["color"] == {"value": "blue", "confidence": 1.0, "model": "human:alice",
                                            "reviewed_by": "alice"}
    assert dress["bbox"] == [0.0, 0.0, 5.0, 5.0] and dress["vestis_person_annotation_id"] == by_name["person"]["id"]
    assert export_reviewed(store, images, fully_reviewed_only=True)["images"] == []


def test_reviews_are_of_visible_frames_only(catwalk_store):
    with pytest.raises(InvalidEdit, match="no visible frame"):
        edit_frame(catwalk_store, "catwalk-000099000", AcceptAll(), "0", "alice")
    assert catwalk_store.reviewed_frame("nope-1") is None
    assert SearchRequest(query=PARSER.parse("dress"), review_status=["reviewed", "partial"]).review_status


def test_a_reviewers_value_drops_the_models_alternatives_and_accepting_keeps_them():
    from labels import Alternative, Box, FrameLabels, Garment, Label, Person
    from indexer.review import Accept, SetValue, apply_edit

    category = Label(value="coat/jacket", confidence=0.55, model="garment-heads", model_version="1",
                     alternatives=[Alternative(value="coat/jacket", probability=0.55),
                                   Alternative(value="suit", probability=0.30)])
    person = Person(detection=Label(value="person", confidence=0.9, model="m", model_version="1"),
                    box=Box(x1=0, y1=0, x2=10, y2=20),
                    garments=[Garment(category=category, box=Box(x1=1, y1=1, x2=9, y2=10))])
    frame = FrameLabels(frame_id="f", media_id="m", timestamp=0.0, reason="image", width=10, height=20,
                        persons=[person])
    changed = apply_edit(frame, SetValue(path="persons.0.garments.0", value="suit"), "alice")
    assert changed.persons[0].garments[0].category.value == "suit"
    assert changed.persons[0].garments[0].category.alternatives == []  # a person's answer has none
    accepted = apply_edit(frame, Accept(path="persons.0.garments.0"), "alice").persons[0].garments[0].category
    assert accepted.reviewed_by == "alice" and [a.value for a in accepted.alternatives] == ["coat/jacket", "suit"]

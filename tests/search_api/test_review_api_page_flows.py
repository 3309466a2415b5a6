"""The review API as the review page (search_api/static/review.js) uses it, on a scene of its own.

tests/search_api/test_review_api.py pins the API's contract on the search tests' scene; this file
follows the page's flows: the queue's filters and paging as the page sends them, what an edit does
to the queue item and to the overlay image the page shows, drawing boxes, accept-all, undo as the
page sends it, and a conflict followed by the reload the page offers.

`review_scene` is also the scene of tests/browser/test_review_page.py and scripts/screenshot_review.py:
two videos with realistic boxes over drawn frames (stored at 640 px like ingest does, while the labels
speak of 1280x720), a garment mask, and a file name and a model name that look like HTML.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from configs import Settings
from indexer import open_store
from indexer.frame_images import FrameImageStore
from search_api.app import create_app
from indexer.query_parser import QueryParser
from tests.indexer.test_search import frame_id
from tests.indexer.test_store_search import index
from labels import Box, Face, FrameLabels, Garment, Label, Person
from labels.masks import encode_mask

LOCAL = "http://localhost"  # a trusted host (server.trusted_hosts); TestClient's "testserver" is not

REVIEWERS = {"alice": "alice-review-token", "bob": "bob-review-token"}
WIDTH, HEIGHT = 1280, 720
RUNWAY_TIMES = (0.0, 1.0, 2.0, 3.0)
DRESS_COLOUR_CONFIDENCE = {0.0: 0.62, 1.0: 0.41, 2.0: 0.55, 3.0: 0.83}  # t=1 is the least sure frame
STREET_TIMES = (5.0, 6.0)
STREET_SHIRT_CONFIDENCE = {5.0: 0.58, 6.0: 0.61}
# A file name and a model name a careless page would inject as markup.
STREET_NAME = "<img src=x onerror=window.injected=1>.mp4"
STREET_MODEL = "<b>tagger</b>"
DRESS_COLOR = "persons.0.garments.0.color"
RGB = {"red": (196, 38, 52), "black": (34, 34, 40), "blue": (48, 78, 168), "white": (236, 236, 232),
       "skin": (224, 180, 150), "hair": (70, 45, 30)}


def _label(value: str, confidence: float, model: str = "fashion-tagger") -> Label:
    return Label(value=value, confidence=confidence, model=model, model_version="1")


def _box(x1: float, y1: float, x2: float, y2: float) -> Box:
    return Box(x1=x1, y1=y1, x2=x2, y2=y2)


def _dress_polygon(dx: float) -> list[tuple[float, float]]:
    return [(380 + dx, 250), (445 + dx, 250), (495 + dx, 590), (330 + dx, 590)]


def runway_frame(t: float) -> FrameLabels:
    """A woman in a red dress and black shoes beside a man in a black jacket and blue jeans, walking
    right 20 px a second. The dress carries a mask (its trapezoid)."""
    dx = 20 * t
    mask_picture = Image.new("L", (WIDTH, HEIGHT), 0)
    ImageDraw.Draw(mask_picture).polygon(_dress_polygon(dx), fill=255)
    dress = Garment(category=_label("dress", 0.9), box=_box(330 + dx, 250, 495 + dx, 590),
                    mask=encode_mask(np.asarray(mask_picture) > 127),
                    color=_label("red", DRESS_COLOUR_CONFIDENCE[t]), pattern=_label("solid", 0.72),
                    sleeve=_label("sleeveless", 0.7))
    shoes = Garment(category=_label("shoes", 0.8), box=_box(350 + dx, 640, 480 + dx, 700), color=_label("black", 0.88))
    woman = Person(detection=_label("person", 0.95, "detector"), box=_box(300 + dx, 110, 520 + dx, 700),
                   garments=[dress, shoes])
    jacket = Garment(category=_label("coat/jacket", 0.92), box=_box(770 + dx, 200, 980 + dx, 450),
                     color=_label("black", 0.86), sleeve=_label("long", 0.9))
    jeans = Garment(category=_label("pants/jeans", 0.88), box=_box(800 + dx, 440, 950 + dx, 690),
                    color=_label("blue", 0.78))
    face = Face(detection=_label("face", 0.9, "detector"), box=_box(840 + dx, 110, 910 + dx, 190),
                expression=_label("neutral", 0.66, "expression-model"))
    man = Person(detection=_label("person", 0.93, "detector"), box=_box(760 + dx, 90, 990 + dx, 700),
                 garments=[jacket, jeans], face=face)
    return FrameLabels(frame_id=frame_id("runway", t), media_id="runway", timestamp=t, reason="rate",
                       width=WIDTH, height=HEIGHT, persons=[woman, man])


def street_frame(t: float) -> FrameLabels:
    """One person in a white t-shirt and blue jeans, the t-shirt labelled by a model with an HTML name."""
    shirt = Garment(category=_label("t-shirt", 0.85, STREET_MODEL), box=_box(530, 200, 750, 420),
                    color=_label("white", STREET_SHIRT_CONFIDENCE[t], STREET_MODEL))
    jeans = Garment(category=_label("pants/jeans", 0.9), box=_box(550, 410, 730, 690), color=_label("blue", 0.8))
    person = Person(detection=_label("person", 0.9, "detector"), box=_box(500, 80, 780, 700), garments=[shirt, jeans])
    return FrameLabels(frame_id=frame_id("street", t), media_id="street", timestamp=t, reason="rate",
                       width=WIDTH, height=HEIGHT, persons=[person])


def _picture(frame: FrameLabels) -> np.ndarray:
    """The frame as a picture: a studio wall and floor, each person drawn where their labels say."""
    image = Image.new("RGB", (WIDTH, HEIGHT))
    draw = ImageDraw.Draw(image)
    for y in range(HEIGHT):
        shade = int(200 - 60 * y / HEIGHT) if y < 560 else 120
        draw.line([(0, y), (WIDTH, y)], fill=(shade, shade + 4, shade + 12))
    for person in frame.persons:
        b = person.box
        cx = (b.x1 + b.x2) / 2
        head = (b.x2 - b.x1) * 0.16
        draw.ellipse([cx - head, b.y1 + 8, cx + head, b.y1 + 8 + 2.3 * head], fill=RGB["skin"])
        draw.pieslice([cx - head, b.y1 + 4, cx + head, b.y1 + 4 + 2 * head], 180, 360, fill=RGB["hair"])
        draw.rectangle([cx - 14, b.y1 + 2.3 * head, cx + 14, b.y1 + 2.3 * head + 30], fill=RGB["skin"])  # neck
        draw.rectangle([cx - 42, b.y1 + 150, cx - 24, b.y2 - 40], fill=RGB["skin"])  # legs
        draw.rectangle([cx + 24, b.y1 + 150, cx + 42, b.y2 - 40], fill=RGB["skin"])
        for garment in person.garments:
            g = garment.box
            colour = RGB.get(garment.color.value if garment.color else "", (120, 120, 120))
            if garment.category.value == "dress":
                dx = g.x1 - 330
                draw.polygon(_dress_polygon(dx), fill=colour)
                draw.rectangle([g.x1 + 55, g.y1 - 5, g.x2 - 55, g.y1 + 40], fill=colour)
            elif garment.category.value == "shoes":
                draw.ellipse([g.x1, g.y1 + 20, g.x1 + 55, g.y2], fill=colour)
                draw.ellipse([g.x2 - 55, g.y1 + 20, g.x2, g.y2], fill=colour)
            elif garment.category.value == "pants/jeans":
                middle = (g.x1 + g.x2) / 2
                draw.rectangle([g.x1 + 8, g.y1, g.x2 - 8, g.y1 + 60], fill=colour)
                draw.rectangle([g.x1 + 8, g.y1, middle - 6, g.y2], fill=colour)
                draw.rectangle([middle + 6, g.y1, g.x2 - 8, g.y2], fill=colour)
            else:  # upper garments: a torso with sleeves
                draw.rounded_rectangle([g.x1 + 28, g.y1, g.x2 - 28, g.y2], radius=18, fill=colour)
                draw.rectangle([g.x1, g.y1 + 10, g.x1 + 30, g.y2 - 20], fill=colour)
                draw.rectangle([g.x2 - 30, g.y1 + 10, g.x2, g.y2 - 20], fill=colour)
    return np.asarray(image)


def review_scene(root: Path, reviewers: dict[str, str] | None = None) -> Settings:
    """Index the runway (4 frames, two persons each) and the street (2 frames, one person; its file
    name looks like HTML), with a drawn JPEG per frame; reviewers as given (default REVIEWERS).

    The queue, least sure first: runway 0:01 (0.41), runway 0:02 (0.55), street 0:05 (0.58),
    street 0:06 (0.61), runway 0:00 (0.62), runway 0:03 (0.66, the man's expression).
    """
    settings = Settings(data_dir=root / "data", review={"reviewers": REVIEWERS if reviewers is None else reviewers})
    runway = [runway_frame(t) for t in RUNWAY_TIMES]
    street = [street_frame(t) for t in STREET_TIMES]
    store = open_store(settings)
    try:
        index(store, "runway", runway, path=str(root / "runway.mp4"))
        index(store, "street", street, path=str(root / STREET_NAME))
    finally:
        store.close()
    images = FrameImageStore(settings.data_dir)
    for frame in [*runway, *street]:
        images.save(frame.media_id, frame.frame_id, _picture(frame))
    return settings


# --- the API as the page uses it --------------------------------------------------------------------

QUEUE_ORDER = [frame_id("runway", 1.0), frame_id("runway", 2.0), frame_id("street", 5.0), frame_id("street", 6.0),
               frame_id("runway", 0.0), frame_id("runway", 3.0)]
LEAST_SURE = QUEUE_ORDER[0]


@pytest.fixture
def client(tmp_path):
    with TestClient(create_app(review_scene(tmp_path), parser=QueryParser()), base_url=LOCAL) as test_client:
        yield test_client


def as_(name: str) -> dict:
    return {"Authorization": f"Bearer {REVIEWERS[name]}"}


def view(client, frame: str = LEAST_SURE) -> dict:
    answer = client.get(f"/api/review/frames/{frame}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def edit(client, body: dict, *, version: str, who: str = "alice", frame: str = LEAST_SURE):
    return client.post(f"/api/review/frames/{frame}/edits", headers=as_(who), json={"version": version, "edit": body})


def queue(client, **params) -> dict:
    answer = client.get("/api/review/queue", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def ids(page: dict) -> list[str]:
    return [item["frame_id"] for item in page["items"]]


def row(frame_view: dict, path: str) -> dict:
    return next(r for r in frame_view["labels"] if r["path"] == path)


def test_page_queue_is_least_sure_first_and_pages_without_gaps(client):
    page = queue(client)
    assert ids(page) == QUEUE_ORDER and page["total"] == 6
    assert [item["lowest_confidence"] for item in page["items"]] == [0.41, 0.55, 0.58, 0.61, 0.62, 0.66]
    assert page["items"][2]["media_name"] == STREET_NAME  # a name, served as data
    first, second = queue(client, limit=4), queue(client, limit=4, offset=4)
    assert ids(first) + ids(second) == QUEUE_ORDER and first["total"] == second["total"] == 6
    by_time = queue(client, sort="time")
    assert ids(by_time) == [frame_id("runway", t) for t in RUNWAY_TIMES] + [frame_id("street", t) for t in STREET_TIMES]


@pytest.mark.parametrize(("params", "expected"), [
    ({"media": "street"}, [frame_id("street", 5.0), frame_id("street", 6.0)]),
    ({"media": "street,runway", "max_confidence": 0.5}, [LEAST_SURE]),
    ({"label": "white"}, [frame_id("street", 5.0), frame_id("street", 6.0)]),
    ({"label": "coat/jacket", "min_confidence": 0.6}, [frame_id("runway", 0.0), frame_id("runway", 3.0)]),
    ({"label": "hat"}, []),
    ({"status": "reviewed"}, []),
    ({"status": "unreviewed", "media": "runway", "sort": "time"}, [frame_id("runway", t) for t in RUNWAY_TIMES]),
])
def test_page_queue_filters(client, params, expected):
    page = queue(client, **params)
    assert ids(page) == expected and page["total"] == len(expected)


def test_page_queue_refuses_what_the_page_never_sends(client):
    for params in ({"sort": "random"}, {"min_confidence": 2}, {"limit": 0}, {"status": "done"}):
        assert client.get("/api/review/queue", params=params).status_code == 422, params


def test_page_an_edit_moves_the_frame_through_the_queue_states(client):
    changed = edit(client, {"kind": "set", "path": DRESS_COLOR, "value": "blue"}, version="0")
    assert changed.status_code == 200, changed.text
    assert changed.json()["status"] == "partial" and changed.json()["version"] == "1"
    [item] = queue(client, status="partial")["items"]
    assert item["frame_id"] == LEAST_SURE and item["lowest_confidence"] == 0.66  # the confirmed colour left the minimum
    assert "blue" in item["labels"] and queue(client, label="blue", media="runway")["total"] == 4  # jeans are blue too
    assert LEAST_SURE not in ids(queue(client, max_confidence=0.5))

    everything = edit(client, {"kind": "accept_all"}, version="1")
    assert everything.status_code == 200, everything.text
    assert everything.json()["status"] == "reviewed"
    assert all(r["reviewed_by"] for r in everything.json()["labels"])
    assert row(everything.json(), DRESS_COLOR)["reviewed_by"] == "alice"  # her change stays hers
    [item] = queue(client, status="reviewed")["items"]
    assert item["lowest_confidence"] is None
    assert ids(queue(client))[-1] == LEAST_SURE  # nothing left to confirm sorts as fully sure


def test_page_change_refuses_what_has_no_vocabulary(client):
    vocabulary = client.get("/api/review/vocabulary").json()
    rows = view(client)["labels"]
    fields = {r["field"] for r in rows}
    assert fields == {"detection", "category", "color", "pattern", "sleeve", "expression"}
    assert fields - set(vocabulary) == {"detection"}  # the page offers no change for a detection
    refused = edit(client, {"kind": "set", "path": "persons.0.detection", "value": "person"}, version="0")
    assert refused.status_code == 422 and "cannot be changed" in refused.json()["detail"]
    happy = edit(client, {"kind": "set", "path": "persons.1.face.expression", "value": "happy"}, version="0")
    assert happy.status_code == 200, happy.text
    assert row(happy.json(), "persons.1.face.expression")["model"] == "human:alice"


def test_page_drawn_boxes_belong_where_they_are_drawn(client):
    before = view(client)
    hat = edit(client, {"kind": "add_box", "box": {"x1": 850, "y1": 92, "x2": 930, "y2": 130}, "category": "hat"},
               version="0")
    assert hat.status_code == 200, hat.text
    added = row(hat.json(), "persons.1.garments.2")  # the man's: the hat's centre is in his box only
    assert (added["value"], added["model"], added["box"]) == ("hat", "human:alice", [850.0, 92.0, 930.0, 130.0])
    assert len(hat.json()["labels"]) == len(before["labels"]) + 1

    person = edit(client, {"kind": "add_box", "box": {"x1": 1100, "y1": 100, "x2": 1250, "y2": 700},
                           "category": "person"}, version="1")
    assert person.status_code == 200, person.text
    assert row(person.json(), "persons.2.detection")["box"] == [1100.0, 100.0, 1250.0, 700.0]

    outside = edit(client, {"kind": "add_box", "box": {"x1": 10, "y1": 10, "x2": 90, "y2": 60}, "category": "hat"},
                   version="2")
    assert outside.status_code == 422 and "no person's box holds" in outside.json()["detail"]
    off_frame = edit(client, {"kind": "add_box", "box": {"x1": 1200, "y1": 10, "x2": 1400, "y2": 60},
                              "category": "person"}, version="2")
    assert off_frame.status_code == 422 and "1280x720" in off_frame.json()["detail"]
    assert view(client)["version"] == "2"


def test_page_overlay_images_follow_edits(client):
    """The page asks /frames/{id}.jpg?overlay=masks&v=<version>: the extra parameter is harmless, and
    what is drawn is the edited frame, not a cached machine version."""
    url = view(client)["image_url"]
    plain = Image.open(BytesIO(client.get(url).content))
    assert plain.size == (640, 360)  # stored smaller than the 1280x720 the boxes speak of
    masked = client.get(url, params={"overlay": "masks", "v": "0"})
    assert masked.status_code == 200 and masked.headers["content-type"] == "image/jpeg"
    boxes_before = np.asarray(Image.open(BytesIO(client.get(url, params={"overlay": "boxes"}).content)), dtype=np.int16)
    assert edit(client, {"kind": "add_box", "box": {"x1": 1100, "y1": 100, "x2": 1250, "y2": 700},
                         "category": "person"}, version="0").status_code == 200
    boxes_after = np.asarray(Image.open(BytesIO(client.get(url, params={"overlay": "boxes"}).content)), dtype=np.int16)
    changed = np.abs(boxes_after - boxes_before).sum(axis=2) > 60
    ys, xs = np.nonzero(changed)
    assert xs.size and xs.min() >= 1100 / 2 - 8  # only the new person's box, at half scale (JPEG blocks: 8 px)


def test_page_masks_follow_a_deleted_garment(client):
    url = view(client)["image_url"]
    with_dress = np.asarray(Image.open(BytesIO(client.get(url, params={"overlay": "masks", "v": "0"}).content)),
                            dtype=np.int16)
    assert edit(client, {"kind": "delete", "path": "persons.0.garments.0"}, version="0").status_code == 200
    without = np.asarray(Image.open(BytesIO(client.get(url, params={"overlay": "masks", "v": "1"}).content)),
                         dtype=np.int16)
    assert np.abs(with_dress - without).sum(axis=2).max() > 60  # the tint over the dress is gone
    assert row(view(client), "persons.0.garments.0")["value"] == "shoes"  # the shoes moved up to garment 0


def test_page_undo_as_the_page_sends_it(client):
    nothing = client.post(f"/api/review/frames/{LEAST_SURE}/undo", headers=as_("alice"), json={"version": "0"})
    assert nothing.status_code == 422 and "no edit left to undo" in nothing.json()["detail"]
    assert edit(client, {"kind": "reject", "path": "persons.0.garments.0.pattern"}, version="0").status_code == 200
    assert edit(client, {"kind": "accept", "path": DRESS_COLOR}, version="1", who="bob").status_code == 200
    stale = client.post(f"/api/review/frames/{LEAST_SURE}/undo", headers=as_("alice"), json={"version": "1"})
    assert stale.status_code == 409 and stale.json()["current_version"] == "2"
    undone = client.post(f"/api/review/frames/{LEAST_SURE}/undo", headers=as_("alice"), json={"version": "2"})
    assert undone.status_code == 200, undone.text
    assert row(undone.json(), DRESS_COLOR)["reviewed_by"] is None  # bob's accept undone, by alice
    assert "persons.0.garments.0.pattern" not in {r["path"] for r in undone.json()["labels"]}  # her reject stays
    again = client.post(f"/api/review/frames/{LEAST_SURE}/undo", headers=as_("alice"), json={"version": "3"})
    assert again.status_code == 200 and row(again.json(), "persons.0.garments.0.pattern")["value"] == "solid"
    audit = client.get("/api/review/audit", params={"frame_id": LEAST_SURE}).json()
    assert [(e["reviewer"], e["action"], e["undoes"]) for e in audit] == [
        ("alice", "undo", 1), ("alice", "undo", 2), ("bob", "accept", None), ("alice", "reject", None)]
    assert [e["entry_id"] for e in audit] == sorted((e["entry_id"] for e in audit), reverse=True)
    # the edit as sent: what the page's history describes
    assert audit[-1]["edit"] == {"kind": "reject", "path": "persons.0.garments.0.pattern"}
    assert client.get("/api/review/audit", params={"media": "runway", "limit": 2}).json() == audit[:2]
    assert client.get("/api/review/audit", params={"media": "street"}).json() == []


def test_page_conflict_then_reload_then_redo(client):
    alice_saw = view(client)["version"]
    bob = edit(client, {"kind": "set", "path": DRESS_COLOR, "value": "green"}, version="0", who="bob")
    assert bob.status_code == 200, bob.text
    late = edit(client, {"kind": "set", "path": DRESS_COLOR, "value": "black"}, version=alice_saw)
    assert late.status_code == 409
    problem = late.json()
    assert problem["current_version"] == "1" and "someone else" in problem["detail"]
    assert row(view(client), DRESS_COLOR)["value"] == "green"  # bob's stays
    reloaded = view(client)
    redone = edit(client, {"kind": "set", "path": DRESS_COLOR, "value": "black"}, version=reloaded["version"])
    assert redone.status_code == 200 and row(redone.json(), DRESS_COLOR)["value"] == "black"
    assert [e["reviewer"] for e in client.get("/api/review/audit", params={"frame_id": LEAST_SURE}).json()] == [
        "alice", "bob"]


def test_page_tokens_are_checked_before_anything_else(client):
    body = {"version": "0", "edit": {"kind": "set", "path": DRESS_COLOR, "value": "chartreuse"}}
    url = f"/api/review/frames/{LEAST_SURE}/edits"
    assert client.post(url, json=body).status_code == 401
    assert client.post(url, json=body).headers["www-authenticate"] == "Bearer"
    assert client.post(url, json=body, headers={"Authorization": "Bearer alice-review-token-x"}).status_code == 403
    assert client.post(url, json=body, headers={"Authorization": f"Basic {REVIEWERS['alice']}"}).status_code == 401
    assert client.post(url, json=body, headers=as_("alice")).status_code == 422  # known token: now the edit is judged
    assert client.post(f"/api/review/frames/{LEAST_SURE}/undo", json={"version": "0"}).status_code == 401
    assert view(client)["version"] == "0" and client.get("/api/review/audit").json() == []


def test_page_neighbours_stay_inside_the_video(client):
    first = view(client, frame_id("runway", 0.0))
    assert first["previous_frame_id"] is None and first["next_frame_id"] == frame_id("runway", 1.0)
    last = view(client, frame_id("runway", 3.0))
    assert last["next_frame_id"] is None
    street = view(client, frame_id("street", 5.0))
    assert (street["previous_frame_id"], street["next_frame_id"]) == (None, frame_id("street", 6.0))
    assert street["media_name"] == STREET_NAME and row(street, "persons.0.garments.0")["model"] == STREET_MODEL

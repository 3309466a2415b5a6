"""The review API: open reads, token-guarded writes, conflicts as 409, bad edits as 422, the audit
trail, and `vestis export --reviewed` finding what was changed."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from search_api.app import create_app
from tests.indexer.test_search import frame_id
from tests.search_api.test_app import PARSER, build_scene
from vestis import cli

LOCAL = "http://localhost"  # a trusted host (server.trusted_hosts); TestClient's "testserver" is not

TOKENS = {"alice": "alice-token-123", "bob": "bob-token-456"}
DRESS = frame_id("catwalk", 2.0)
COLOR = "persons.0.garments.0.color"


@pytest.fixture
def scene(tmp_path):
    settings = build_scene(tmp_path)
    return settings.model_copy(update={"review": settings.review.model_validate({"reviewers": TOKENS})})


@pytest.fixture
def client(scene):
    with TestClient(create_app(scene, parser=PARSER), base_url=LOCAL) as test_client:
        yield test_client


def as_(name: str) -> dict:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


def set_color(client, value: str, version: str, who: str = "alice"):
    return client.post(f"/api/review/frames/{DRESS}/edits", headers=as_(who),
                       json={"version": version, "edit": {"kind": "set", "path": COLOR, "value": value}})


def test_a_frame_reads_with_its_labels_neighbours_and_version(client):
    view = client.get(f"/api/review/frames/{DRESS}").json()
    assert (view["version"], view["status"], view["media_name"]) == ("0", "unreviewed", "catwalk.mp4")
    assert (view["previous_frame_id"], view["next_frame_id"]) == (frame_id("catwalk", 1.0), frame_id("catwalk", 3.0))
    color = next(row for row in view["labels"] if row["path"] == COLOR)
    assert (color["field"], color["value"], color["reviewed_by"]) == ("color", "red", None)
    assert client.get("/api/review/frames/catwalk-000777000").status_code == 404
    assert client.get("/api/review/vocabulary").json()["sleeve"] == ["sleeveless", "short", "long"]


def test_an_edit_needs_a_known_token(client):
    body = {"version": "0", "edit": {"kind": "accept_all"}}
    assert client.post(f"/api/review/frames/{DRESS}/edits", json=body).status_code == 401
    wrong = client.post(f"/api/review/frames/{DRESS}/edits", json=body, headers={"Authorization": "Bearer nope-nope"})
    assert wrong.status_code == 403
    assert client.get(f"/api/review/frames/{DRESS}").json()["version"] == "0"  # nothing was written


def test_without_reviewers_configured_review_is_read_only(tmp_path):
    with TestClient(create_app(build_scene(tmp_path), parser=PARSER), base_url=LOCAL) as client:
        answer = client.post(f"/api/review/frames/{DRESS}/edits", headers=as_("alice"),
                             json={"version": "0", "edit": {"kind": "accept_all"}})
        assert answer.status_code == 403 and "review.reviewers" in answer.json()["detail"]
        assert client.get(f"/api/review/frames/{DRESS}").status_code == 200


def test_an_edit_is_kept_and_audited_and_changes_search(client):
    answer = set_color(client, "blue", "0")
    assert answer.status_code == 200, answer.text
    assert answer.json()["version"] == "1"
    again = client.get(f"/api/review/frames/{DRESS}").json()
    assert next(r for r in again["labels"] if r["path"] == COLOR)["value"] == "blue"
    [entry] = client.get("/api/review/audit", params={"frame_id": DRESS}).json()
    assert (entry["reviewer"], entry["action"], entry["edit"]["value"]) == ("alice", "set", "blue")
    found = client.get("/search", params={"q": "blue dress"}).json()
    assert [m["start"] for v in found["videos"] for m in v["moments"]] == [0.0]
    reviewed_only = client.get("/search", params={"q": "dress", "review": "reviewed"}).json()
    assert reviewed_only["total"] == 0  # the dress is only partly reviewed
    # the frame endpoint's overlay reads the edited labels, not a cached machine version
    assert client.get(f"/frames/{DRESS}.jpg", params={"overlay": "boxes"}).status_code == 200


def test_the_second_reviewer_gets_a_conflict_and_nothing_is_overwritten(client):
    seen_by_bob = client.get(f"/api/review/frames/{DRESS}").json()["version"]
    assert set_color(client, "blue", "0", "alice").status_code == 200
    late = set_color(client, "green", seen_by_bob, "bob")
    assert late.status_code == 409
    problem = late.json()  # RFC 9457: the conflict's current version is an extension member
    assert problem["current_version"] == "1" and "changed by someone else" in problem["detail"]
    assert next(r for r in client.get(f"/api/review/frames/{DRESS}").json()["labels"]
                if r["path"] == COLOR)["value"] == "blue"


@pytest.mark.parametrize(("edit", "status"), [
    ({"kind": "set", "path": COLOR, "value": "chartreuse"}, 422),
    ({"kind": "set", "path": "persons.9.detection", "value": "red"}, 422),
    ({"kind": "explode"}, 422),
    ({"kind": "add_box", "box": {"x1": 5, "y1": 5, "x2": 1, "y2": 9}, "category": "person"}, 422),
])
def test_bad_edits_are_422_with_a_reason(client, edit, status):
    answer = client.post(f"/api/review/frames/{DRESS}/edits", headers=as_("alice"), json={"version": "0", "edit": edit})
    assert answer.status_code == status, answer.text
    assert client.get(f"/api/review/frames/{DRESS}").json()["version"] == "0"


def test_undo_restores_and_is_audited(client):
    assert set_color(client, "blue", "0").status_code == 200
    undone = client.post(f"/api/review/frames/{DRESS}/undo", headers=as_("bob"), json={"version": "1"})
    assert undone.status_code == 200, undone.text
    assert next(r for r in undone.json()["labels"] if r["path"] == COLOR)["value"] == "red"
    assert [e["action"] for e in client.get("/api/review/audit", params={"media": "catwalk"}).json()] == ["undo", "set"]


def test_the_queue_answers_with_names_and_thumbnails(client):
    page = client.get("/api/review/queue", params={"media": "catwalk", "limit": 3}).json()
    assert page["total"] == 14 and len(page["items"]) == 3
    assert page["items"][0]["media_name"] == "catwalk.mp4"
    assert page["items"][0]["thumbnail_url"].startswith("/frames/catwalk-")
    assert client.get("/api/review/queue", params={"status": "maybe"}).status_code == 422


def test_export_reviewed_finds_the_change(client, scene, tmp_path, plain_cli):
    assert set_color(client, "blue", "0").status_code == 200
    out = tmp_path / "coco.json"
    result = CliRunner().invoke(cli.app, ["export", "--reviewed", "--out", str(out), "--data-dir", str(scene.data_dir)])
    assert result.exit_code == 0, result.output
    coco = json.loads(out.read_text())
    [image] = coco["images"]
    assert image["vestis_frame_id"] == DRESS and (scene.data_dir / image["file_name"]).is_file()
    dress = next(a for a in coco["annotations"] if a["category_id"] != 1)
    assert dress["attributes"]["color"]["value"] == "blue" and dress["attributes"]["color"]["reviewed_by"] == "alice"
    # the best frame's mask as COCO RLE, on the grid of the stored JPEG the image entry names
    with Image.open(scene.data_dir / image["file_name"]) as stored:
        assert (image["width"], image["height"]) == stored.size
    assert dress["segmentation"]["size"] == [image["height"], image["width"]] and image["vestis_frame_width"] == 1280
    result = CliRunner().invoke(cli.app, ["export", "--out", str(out), "--data-dir", str(scene.data_dir)])
    assert result.exit_code == 2 and "--reviewed" in result.output


def test_label_rows_carry_the_models_alternatives():
    from labels import Alternative, Box, FrameLabels, Garment, Label, Person
    from search_api.review import label_rows

    sleeve = Label(value="long", confidence=0.7, model="garment-heads", model_version="1",
                   alternatives=[Alternative(value="long", probability=0.7), Alternative(value="short", probability=0.2)])
    person = Person(detection=Label(value="person", confidence=0.9, model="m", model_version="1"),
                    box=Box(x1=0, y1=0, x2=10, y2=20),
                    garments=[Garment(category=Label(value="sweater", confidence=0.8, model="m", model_version="1"),
                                      box=Box(x1=1, y1=1, x2=9, y2=10), sleeve=sleeve)])
    frame = FrameLabels(frame_id="f", media_id="m", timestamp=0.0, reason="image", width=10, height=20,
                        persons=[person])
    row = next(r for r in label_rows(frame) if r.path == "persons.0.garments.0.sleeve")
    assert [(a.value, a.probability) for a in row.alternatives] == [("long", 0.7), ("short", 0.2)]
    assert next(r for r in label_rows(frame) if r.field == "category").alternatives == []

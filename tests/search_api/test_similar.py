"""/search/similar through the HTTP API: by an indexed garment's reference, and by an uploaded photo."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from configs import Settings
from indexer.query_parser import QueryParser
from search_api import similar
from search_api.app import create_app
from tests.indexer.test_search import black_jacket_blue_jeans, frames
from tests.indexer.test_similar import embedded, index_three_videos

PARSER = QueryParser()
CCP_PHOTO = Path(__file__).resolve().parents[3] / "shared" / "data" / "ccp" / "images" / "0001.jpg"


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    settings = Settings(data_dir=tmp_path_factory.mktemp("similar") / "data")
    index_three_videos(settings)
    return settings


@pytest.fixture(scope="module")
def client(settings) -> TestClient:
    with TestClient(create_app(settings, parser=PARSER), base_url="http://localhost") as test_client:
        yield test_client


def jpeg(size=(64, 64), colour=(128, 128, 128)) -> bytes:
    out = BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG")
    return out.getvalue()


def moment_of(client, media: str) -> dict:
    [video] = client.get("/search", params={"media": media}).json()["videos"]
    return video["moments"][0]


def test_more_like_an_indexed_jacket(client):
    street = moment_of(client, "street")
    answer = client.get("/search/similar", params={"garment": f"{street['moment_id']}/0/0"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    # the park man's jacket has the street jacket's direction; the moment itself is left out
    assert body["videos"][0]["name"] == "park.mp4"
    assert body["videos"][0]["moments"][0]["score"] > 0.95
    assert street["moment_id"] not in {m["moment_id"] for v in body["videos"] for m in v["moments"]}
    assert body["like_garment"] == "black long-sleeve coat/jacket"


def test_text_filters_combine(client):
    street = moment_of(client, "street")
    body = client.get("/search/similar", params={"garment": f"{street['moment_id']}/0/0", "q": "dress"}).json()
    assert [v["name"] for v in body["videos"]] == ["catwalk.mp4"]


def test_a_frame_garment_reference(client):
    body = client.get("/search/similar", params={"garment": "street-000001000/0/1"}).json()
    assert body["videos"][0]["name"] == "street.mp4"  # its own moment: a frame's garment leaves none out


@pytest.mark.parametrize("garment, status", [("nothing-here/0/0", 404), ("street-000001000/0/9", 404),
                                             ("a/b/c", 422), ("x" * 300, 422)])
def test_bad_references(client, garment, status):
    answer = client.get("/search/similar", params={"garment": garment})
    assert answer.status_code == status, answer.text


def test_uploads_that_are_not_photos_are_refused_and_nothing_is_written(client, settings):
    before = sorted(p.name for p in settings.data_dir.iterdir())
    cases = [
        (b"hello", "text/plain", 415),
        (b"\x00not a jpeg at all", "image/jpeg", 415),
        (b"", "image/png", 400),
        (b"x" * (similar.MAX_UPLOAD_BYTES + 1), "image/jpeg", 413),
    ]
    for body, kind, status in cases:
        answer = client.post("/search/similar", content=body, headers={"Content-Type": kind})
        assert answer.status_code == status, (kind, answer.text)
        assert answer.json()["detail"]
    assert sorted(p.name for p in settings.data_dir.iterdir()) == before


def test_a_decompression_bomb_is_refused_before_it_is_decoded():
    out = BytesIO()
    Image.new("1", (20_000, 20_000)).save(out, "PNG")  # a few KB that claim 400 MP
    with pytest.raises(similar.BadPhoto, match="decompression bomb") as refused:
        similar.decode_photo(out.getvalue(), 1280)
    assert refused.value.status == 413


def test_photo_query_uses_the_largest_person_s_garment(client, monkeypatch):
    shown = frames("upload", [0.0], black_jacket_blue_jeans())[0]
    embedded([shown], [3, 2])  # a jacket that looks like the street man's jeans: the query is that garment
    monkeypatch.setattr(similar.PhotoDescriber, "describe", lambda self, rgb: shown)
    answer = client.post("/search/similar", content=jpeg(), headers={"Content-Type": "image/jpeg"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [f["used"] for f in body["found"]].count(True) == 1
    assert body["videos"][0]["name"] == "street.mp4"
    picked = client.post("/search/similar", params={"person": 0, "garment": 1}, content=jpeg(),
                         headers={"Content-Type": "image/jpeg"}).json()
    assert picked["videos"][0]["name"] in ("street.mp4", "park.mp4")
    missing = client.post("/search/similar", params={"garment": 7}, content=jpeg(), headers={"Content-Type": "image/jpeg"})
    assert missing.status_code == 422 and "found:" in missing.json()["detail"]


def test_a_photo_with_nobody_says_so(client, monkeypatch):
    nobody = frames("upload", [0.0])[0]
    monkeypatch.setattr(similar.PhotoDescriber, "describe", lambda self, rgb: nobody)
    answer = client.post("/search/similar", content=jpeg(), headers={"Content-Type": "image/jpeg"})
    assert answer.status_code == 422 and "no person" in answer.json()["detail"]


@pytest.mark.skipif(not CCP_PHOTO.is_file(), reason="../shared/data/ccp is absent")
def test_a_real_photo_goes_through_the_vision_stages(settings):
    describer = similar.PhotoDescriber(settings)
    labels = describer.describe(similar.decode_photo(CCP_PHOTO.read_bytes(), 1280))
    embedding, found, _ = similar.photo_garment(labels, None, None)
    assert found and embedding.dim > 100
    assert abs(float(np.linalg.norm(embedding.unit())) - 1) < 1e-5

"""The HTTP API end to end through FastAPI's TestClient, on a store built from hand-made labels.

The scene is the one tests.indexer.test_store_search.py searches (a red striped dress and a man in
a black jacket on the "catwalk", two outfits in the "street"), so the expected moments are the ones
the store tests already pin down; here the question is what the API makes of them: grouping,
links, images and the byte ranges a browser player asks for.
"""

from __future__ import annotations

import subprocess
from io import BytesIO
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from configs import Settings
from indexer import open_store
from indexer.frame_images import FrameImageStore
from search_api.annotators import PERSON_COLOUR
from search_api.app import create_app
from indexer.query_parser import QueryParser
from tests.indexer.test_store_search import catwalk, index, street
from tests.indexer.test_search import frame_id
from labels.masks import encode_mask

LOCAL = "http://localhost"  # a trusted host (server.trusted_hosts); TestClient's "testserver" is not

PARSER = QueryParser()  # exact words and synonyms: no text model needed, same answers everywhere


def make_video(target: Path) -> Path:
    """One second of ffmpeg's test pattern: a real MP4 for the stream endpoint, made in tmp."""
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10",
         "-t", "1", "-pix_fmt", "yuv420p", "-y", str(target)],
        check=True, timeout=60,
    )
    return target


def build_scene(root: Path) -> Settings:
    """Index the catwalk (its file present) and the street (its file deleted) with a grey JPEG per frame.

    The dress's best frame (2 s) gets a garment mask, so the mask overlay has something to draw.
    """
    settings = Settings(data_dir=root / "data")
    video = make_video(root / "catwalk.mp4")
    catwalk_frames = catwalk()
    best = next(f for f in catwalk_frames if f.timestamp == 2.0)
    mask = np.zeros((best.height, best.width), dtype=bool)
    mask[150:450, 500:600] = True
    best.persons[0].garments[0].mask = encode_mask(mask)
    store = open_store(settings)
    try:
        index(store, "catwalk", catwalk_frames, path=str(video))
        index(store, "street", street(), path=str(root / "street-gone.mp4"))
    finally:
        store.close()
    images = FrameImageStore(settings.data_dir)
    grey = np.full((720, 1280, 3), 128, dtype=np.uint8)  # the labels' size; stored at 640 px like ingest does
    for labels in [*catwalk_frames, *street()]:
        images.save(labels.media_id, labels.frame_id, grey)
    return settings


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Settings:
    return build_scene(tmp_path_factory.mktemp("api"))


@pytest.fixture(scope="module")
def client(scene) -> TestClient:
    with TestClient(create_app(scene, parser=PARSER), base_url=LOCAL) as test_client:
        yield test_client


def search(client: TestClient, **params) -> dict:
    response = client.get("/search", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def spans(answer: dict) -> list[tuple[str, float, float]]:
    return [(v["media_id"], m["start"], m["end"]) for v in answer["videos"] for m in v["moments"]]


def jpeg(response) -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    image = Image.open(BytesIO(response.content))
    image.load()
    return image.convert("RGB")


# --- search ----------------------------------------------------------------------------------------


def test_a_matching_query_returns_the_dress_moment_first(client):
    answer = search(client, q="red dress")
    assert answer["interpretation"] == "garment(color=red, category=dress)"
    assert answer["total"] == 1 and answer["next_cursor"] is None
    assert answer["semantic"] is False and answer["notice"] is None  # the parser was given without a model
    [video] = answer["videos"]
    assert (video["media_id"], video["name"], video["kind"]) == ("catwalk", "catwalk.mp4", "video")
    [moment] = video["moments"]
    assert (moment["start"], moment["end"], moment["best_time"]) == (0.0, 4.0, 2.0)
    assert moment["best_frame_id"] == frame_id("catwalk", 2.0)
    assert moment["play_url"] == "/media/catwalk/stream#t=0"
    assert moment["thumbnail_url"] == f"/moments/{moment['moment_id']}/thumbnail.jpg"
    assert moment["person_box"] == {"x1": 500.0, "y1": 100.0, "x2": 600.0, "y2": 500.0}  # the large best view
    [garment] = moment["garments"]
    assert garment["category"] == "dress" and garment["box"] is not None
    found = {(a["field"], a["label"]) for a in garment["attributes"]}
    assert found == {("color", "red"), ("category", "dress")}
    assert all(0 < a["confidence"] <= 1 for a in garment["attributes"])
    assert moment["score"] > 0.5 and "red striped short-sleeve dress" in moment["wearing"]


def test_an_absent_outfit_returns_nothing(client):
    answer = search(client, q="green skirt")
    assert answer["interpretation"] == "garment(color=green, category=skirt)"
    assert answer == {**answer, "total": 0, "videos": [], "next_cursor": None}


def test_words_it_does_not_label_get_a_notice(client):
    answer = search(client, q="red dress with sunglasses")
    assert answer["understood_as"] == "red dress" and answer["total"] == 1
    assert answer["notice"] == "'sunglasses' is not something Vestis labels; searched for the rest."
    for nothing in ("zzzz qqqq", "someone with sunglasses"):
        answer = search(client, q=nothing)
        assert answer["total"] == 0 and answer["videos"] == [] and "no moments" in answer["notice"]
        assert answer["understood_as"].startswith("nothing")


def test_threshold_and_strict_mode(client):
    # the hat is 0.6 sure: with probabilities "dress without a hat" keeps the street dress at 0.4 of its score
    assert spans(search(client, q="dress without a hat")) == [("catwalk", 0.0, 4.0), ("street", 10.0, 12.0)]
    assert spans(search(client, q="dress without a hat", strict="true")) == [("catwalk", 0.0, 4.0)]
    assert spans(search(client, q="dress without a hat", threshold=0.5)) == [("catwalk", 0.0, 4.0)]
    assert client.get("/search", params={"q": "dress", "threshold": 2}).status_code == 422


def test_the_vocabulary_is_listed(client):
    fields = client.get("/vocabulary").json()["fields"]
    assert set(fields) == {"category", "color", "pattern", "sleeve", "expression"}
    dress = next(word for word in fields["category"] if word["value"] == "dress")
    assert "gown" in dress["synonyms"]


def test_moments_are_grouped_by_video_in_rank_order(client):
    answer = search(client, q="dress")
    assert spans(answer) == [("catwalk", 0.0, 4.0), ("street", 10.0, 12.0)]  # the surer dress first
    everything = search(client, q="")
    assert everything["interpretation"] == "anything" and everything["total"] == 4
    media = [v["media_id"] for v in everything["videos"]]
    assert sorted(media) == ["catwalk", "street"]  # one group per video
    for video in everything["videos"]:
        scores = [m["score"] for m in video["moments"]]
        assert scores == sorted(scores, reverse=True)
    assert sum(len(v["moments"]) for v in everything["videos"]) == 4


def test_filters_by_media_time_and_expression(client):
    assert {v["media_id"] for v in search(client, q="", media="street")["videos"]} == {"street"}
    assert search(client, q="", media="street,catwalk")["total"] == 4
    assert spans(search(client, q="", start=5, end=9)) == [("catwalk", 6.0, 13.0)]
    happy = search(client, q="smiling person in a dress")
    assert spans(happy) == [("street", 10.0, 12.0)]
    [expression] = happy["videos"][0]["moments"][0]["expression"]
    assert (expression["field"], expression["label"], expression["via"]) == ("expression", "happy", "synonym")


def test_pages_follow_the_cursor_without_repeats(client):
    whole = [m["moment_id"] for v in search(client, q="", limit=10)["videos"] for m in v["moments"]]
    seen, cursor = [], None
    while True:
        page = search(client, q="", limit=1, **({"cursor": cursor} if cursor else {}))
        assert page["total"] == 4
        seen += [m["moment_id"] for v in page["videos"] for m in v["moments"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == whole and len(set(seen)) == 4

    first = search(client, q="", limit=1)
    other = client.get("/search", params={"q": "red dress", "cursor": first["next_cursor"]})
    assert other.status_code == 400 and "cursor" in other.json()["detail"]
    assert client.get("/search", params={"cursor": "garbage"}).status_code == 400


@pytest.mark.parametrize("params, words", [
    ({"start": 5, "end": 2}, "after end"),
    ({"limit": 0}, "greater than or equal to 1"),
    ({"limit": 10_000}, "less than or equal to 200"),
    ({"min_confidence": 2}, "less than or equal to 1"),
    ({"start": "soon"}, "valid number"),
])
def test_bad_parameters_are_422_with_a_reason(client, params, words):
    response = client.get("/search", params={"q": "dress", **params})
    assert response.status_code == 422
    assert words in str(response.json()["detail"])


def test_a_missing_text_model_is_said_in_the_answer(scene, monkeypatch):
    from vision import text_embedding
    from vision.model_files import ModelFilesMissing

    def missing(*_, **__):
        raise ModelFilesMissing("minilm-l6-v2: model.safetensors is not in the cache")

    monkeypatch.setattr(text_embedding, "TextEmbedder", missing)
    with TestClient(create_app(scene), base_url=LOCAL) as fresh:  # builds its own parser on the first search
        answer = search(fresh, q="red dress")
    assert answer["semantic"] is False and "models fetch minilm-l6-v2" in answer["notice"]
    assert spans(answer) == [("catwalk", 0.0, 4.0)]  # exact words still work


def test_start_up_freezes_what_it_made_out_of_the_collectors_way(scene):
    """Once the parser is loaded, the start-up heap is frozen (gc.freeze): full collections stop walking it,
    which cost each search ~30 ms of CPU (docs/benchmarks.md)."""
    import gc
    import time

    gc.unfreeze()
    try:
        with TestClient(create_app(scene, parser=PARSER), base_url=LOCAL):
            deadline = time.monotonic() + 10
            while gc.get_freeze_count() == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


# --- frames and thumbnails -------------------------------------------------------------------------


def test_frames_decode_and_overlays_change_pixels(client):
    url = f"/frames/{frame_id('catwalk', 2.0)}.jpg"
    plain = np.asarray(jpeg(client.get(url)), dtype=np.int16)
    assert plain.shape == (360, 640, 3)  # stored at 640 px, half the labels' 1280
    boxes = np.asarray(jpeg(client.get(url, params={"overlay": "boxes"})), dtype=np.int16)
    both = np.asarray(jpeg(client.get(url, params={"overlay": "boxes,masks"})), dtype=np.int16)
    changed = np.abs(boxes - plain).max(axis=2) > 40
    assert changed.any()
    # the person box (500, 100)-(600, 500) in labels is drawn at half scale; not at full scale
    assert changed[50:250, 248:253].any() and not changed[:, 400:].any()
    masked = np.abs(both - boxes).max(axis=2) > 20
    assert masked[80:220, 255:295].mean() > 0.9 and not masked[:, 320:].any()  # the mask, scaled likewise

    assert client.get(url, params={"overlay": "sparkles"}).status_code == 422
    assert client.get(f"/frames/{frame_id('catwalk', 99.0)}.jpg").status_code == 404
    assert client.get("/frames/not a frame.jpg").status_code == 404


def test_thumbnail_is_the_best_frame_small_with_the_person_box(client):
    hit = search(client, q="red dress")["videos"][0]["moments"][0]
    whole = jpeg(client.get(hit["thumbnail_url"], params={"crop": "frame"}))
    assert whole.size == (320, 180)
    near = np.abs(np.asarray(whole, dtype=np.int16) - np.asarray(PERSON_COLOUR)).sum(axis=2) < 120
    assert near[:, 120:130].any()  # the box's left edge: x=500 of 1280 -> 125 of 320
    # The card's crop: 16:10 around the person (500-600 x 100-500 of 1280x720; 250-300 x 50-250 of the
    # 640x360 JPEG), its height plus 15 % above and below: 416x260 from (67, 20), shrunk to 320x200.
    image = jpeg(client.get(hit["thumbnail_url"]))
    assert image.size == (320, 200)
    near = np.abs(np.asarray(image, dtype=np.int16) - np.asarray(PERSON_COLOUR)).sum(axis=2) < 120
    assert near[:, 138:144].any() and not near[:, :130].any()  # left edge: (250 - 67) * 320 / 416 = 141
    assert jpeg(client.get(hit["thumbnail_url"], params={"size": 100})).size == (100, 63)
    assert client.get("/moments/nope/thumbnail.jpg").status_code == 404
    assert client.get(hit["thumbnail_url"], params={"person": 3}).status_code == 404


# --- media and streams -----------------------------------------------------------------------------


def test_media_metadata(client, scene):
    listing = client.get("/media").json()
    assert [m["media_id"] for m in listing] == ["catwalk", "street"]
    assert listing[0]["stream_url"] == "/media/catwalk/stream" and listing[0]["status"] == "done"
    detail = client.get("/media/catwalk").json()
    assert detail["name"] == "catwalk.mp4" and detail["frames"] == 14
    assert [(m["start"], m["end"]) for m in detail["moments"]] == [(0.0, 4.0), (6.0, 13.0)]
    assert detail["moments"][1]["play_url"] == "/media/catwalk/stream#t=6"
    assert client.get("/media/nope").status_code == 404


@pytest.fixture(scope="module")
def video_bytes(scene) -> bytes:
    return (scene.data_dir.parent / "catwalk.mp4").read_bytes()


def test_stream_whole_file(client, video_bytes):
    response = client.get("/media/catwalk/stream")
    assert response.status_code == 200 and response.content == video_bytes
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["accept-ranges"] == "bytes"
    head = client.head("/media/catwalk/stream")
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(video_bytes)


@pytest.mark.parametrize("header, first, last", [
    ("bytes=0-99", 0, 99),
    ("bytes=100-", 100, None),     # open-ended: to the end
    ("bytes=-50", -50, None),      # suffix: the last 50 bytes
    ("bytes=10-999999999", 10, None),  # an end past the file is cut to it
])
def test_stream_ranges(client, video_bytes, header, first, last):
    size = len(video_bytes)
    start = first % size
    end = size - 1 if last is None else last
    response = client.get("/media/catwalk/stream", headers={"Range": header})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {start}-{end}/{size}"
    assert response.content == video_bytes[start:end + 1]
    assert int(response.headers["content-length"]) == end + 1 - start


def test_unsatisfiable_range_is_416(client, video_bytes):
    size = len(video_bytes)
    response = client.get("/media/catwalk/stream", headers={"Range": f"bytes={size}-"})
    assert response.status_code == 416 and response.headers["content-range"] == f"bytes */{size}"


def test_stream_404s(client):
    gone = client.get("/media/street/stream")
    assert gone.status_code == 404 and "gone" in gone.json()["detail"]
    assert client.get("/media/nope/stream").status_code == 404


# --- the page --------------------------------------------------------------------------------------


def test_the_search_page_loads_with_its_assets(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="q"' in page.text and "<video" in page.text
    assert "/static/app.js" in page.text and "/static/style.css" in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # nothing fetched from elsewhere
    script = client.get("/static/app.js")
    assert script.status_code == 200 and "currentTime" in script.text and "/search?" in script.text
    assert client.get("/static/style.css").status_code == 200


def test_openapi_docs(client):
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/search", "/media", "/media/{media_id}", "/media/{media_id}/stream", "/frames/{frame_id}.jpg",
            "/moments/{moment_id}/thumbnail.jpg"} <= set(paths)


def test_frame_label_cache_follows_the_visible_run(tmp_path):
    from search_api.app import FrameLabelCache

    store = open_store(Settings(data_dir=tmp_path / "data"))
    try:
        first = catwalk()
        index(store, "catwalk", first)
        cache = FrameLabelCache(store, max_frames=1)
        fid = frame_id("catwalk", 2.0)
        assert cache.get("catwalk", fid).persons[0].box.y2 == 500
        moved = catwalk()
        for labels in moved:
            for person in labels.persons:
                person.box = person.box.model_copy(update={"y2": 333.0})
        index(store, "catwalk", moved, run_id="run-2")  # a re-ingest: its frames are now the visible ones
        assert cache.get("catwalk", fid).persons[0].box.y2 == 333.0
        assert cache.get("catwalk", "catwalk-000099000") is None and cache.get("nope", fid) is None
    finally:
        store.close()


class SlowStore:
    """frames_of takes `delay` seconds, as a store over a large index does for a long video."""

    def __init__(self, frames_per_media: int, delay: float):
        import threading

        self.frames_per_media, self.delay = frames_per_media, delay
        self.reads: list[str] = []
        self._lock = threading.Lock()

    def get_media(self, media_id):
        from types import SimpleNamespace

        return SimpleNamespace(visible_run_id="run-1")

    def frames_of(self, media_id):
        import time

        from labels import FrameLabels

        with self._lock:
            self.reads.append(media_id)
        time.sleep(self.delay)
        return [FrameLabels(frame_id=frame_id(media_id, float(t)), media_id=media_id, timestamp=float(t), reason="rate",
                            width=64, height=48) for t in range(self.frames_per_media)]


def test_frame_label_cache_loads_many_videos_at_once(tmp_path):
    """Issue 19, finding 11: thumbnails across many videos queued behind one lock, and a cache of 4 videos
    evicted itself under a grid over more (7-9 req/s against 90 from one video)."""
    from concurrent.futures import ThreadPoolExecutor
    import time

    from search_api.app import FrameLabelCache

    store = SlowStore(frames_per_media=20, delay=0.3)
    cache = FrameLabelCache(store)
    media = [f"video{i}" for i in range(16)]
    asks = [(m, frame_id(m, float(t))) for t in range(4) for m in media]  # a grid: 4 thumbnails of each of 16
    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        found = list(pool.map(lambda ask: cache.get(*ask), asks))
    elapsed = time.monotonic() - started
    assert all(f is not None and f.frame_id == ask[1] for f, ask in zip(found, asks))
    assert sorted(store.reads) == sorted(media)  # each video read once: the asks for one video waited for it
    assert elapsed < 16 * 0.3 / 2, elapsed  # reads of different videos overlap (one lock: 4.8 s)
    for m, fid in asks:  # all 16 are still at hand
        cache.get(m, fid)
    assert len(store.reads) == 16


def test_frame_label_cache_is_bounded_by_frames():
    from search_api.app import FrameLabelCache

    store = SlowStore(frames_per_media=10, delay=0)
    cache = FrameLabelCache(store, max_frames=30)
    for i in range(5):
        cache.get(f"v{i}", frame_id(f"v{i}", 0.0))
    cache.get("v0", frame_id("v0", 0.0))  # evicted (the oldest), read again
    assert store.reads == ["v0", "v1", "v2", "v3", "v4", "v0"]
    cache.get("v4", frame_id("v4", 0.0))  # still kept
    assert len(store.reads) == 6

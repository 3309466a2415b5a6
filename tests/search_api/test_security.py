"""The HTTP side's guards, each pinned by a test that fails if it goes: bounded parameters, files
served only for indexed media and stored frames (no path traversal, no link out of the frames
folder), writes only with a reviewer token, no cross-origin reads unless configured, security
headers on the pages, and data that never turns into markup.

Most tests run through the TestClient; the path-traversal ones are also sent over a real socket to
uvicorn, since a client library may normalise `..` and percent-escapes before they ever reach the app.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import socket
import time
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from configs import Settings
from configs.settings import ConfigError, load_settings
from indexer import open_store
from search_api import review as review_module
from search_api.app import MAX_CURSOR_CHARS, MAX_QUERY_CHARS, MAX_SECONDS, STATIC_DIR, create_app
from search_api.middleware import MAX_BODY_BYTES, PAGE_POLICY
from search_api.review import MAX_ID_CHARS, MAX_MEDIA_FILTER, MAX_VERSION_CHARS
from tests.indexer.test_search import frame_id
from tests.search_api.test_app import PARSER, build_scene
from tests.search_api.test_review_api_page_flows import REVIEWERS, STREET_MODEL, STREET_NAME, review_scene

LOCAL = "http://localhost"  # a trusted host (server.trusted_hosts); TestClient's "testserver" is not

DRESS = frame_id("catwalk", 2.0)
LEAST_SURE = frame_id("runway", 1.0)  # review_scene's first queue item
SECRET = "top secret: not for the web"


def as_(name: str) -> dict:
    return {"Authorization": f"Bearer {REVIEWERS[name]}"}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """build_scene with reviewers, plus things outside the data folder the API must never hand out:
    a text secret and a JPEG, with links to them planted inside the frames folder."""
    root = tmp_path_factory.mktemp("security")
    settings = build_scene(root)
    (root / "secret.txt").write_text(SECRET)
    outside_jpeg = root / "outside.jpg"
    shutil.copy(settings.data_dir / "frames" / "catwalk" / f"{DRESS}.jpg", outside_jpeg)
    frames = settings.data_dir / "frames"
    # a frame id of an indexed media whose image is a link out of the frames folder
    (frames / "catwalk" / f"{frame_id('catwalk', 98.0)}.jpg").symlink_to(outside_jpeg)
    (frames / "catwalk" / f"{frame_id('catwalk', 97.0)}.jpg").symlink_to(root / "secret.txt")
    # a link inside the folder, to another stored frame: allowed
    (frames / "catwalk" / f"{frame_id('catwalk', 96.0)}.jpg").symlink_to(frames / "catwalk" / f"{DRESS}.jpg")
    # a media folder that is a link out of the frames folder, named like an indexed media's folder
    (root / "elsewhere").mkdir()
    shutil.copy(outside_jpeg, root / "elsewhere" / f"{frame_id('linked', 1.0)}.jpg")
    (frames / "linked").symlink_to(root / "elsewhere")
    # frame images of a media that is not in the store
    (frames / "ghost").mkdir()
    shutil.copy(outside_jpeg, frames / "ghost" / f"{frame_id('ghost', 1.0)}.jpg")
    return root


@pytest.fixture(scope="module")
def settings(root) -> Settings:
    return Settings(data_dir=root / "data", review={"reviewers": REVIEWERS})


@pytest.fixture(scope="module")
def client(settings):
    with TestClient(create_app(settings, parser=PARSER), base_url=LOCAL) as test_client:
        yield test_client


@pytest.fixture
def fresh(tmp_path):
    """A client over a scene of its own, for tests that write."""
    with TestClient(create_app(review_scene(tmp_path), parser=PARSER), base_url=LOCAL) as test_client:
        yield test_client


# --- 1. limits -------------------------------------------------------------------------------------


def test_the_search_text_is_bounded(client):
    assert client.get("/search", params={"q": "dress " * (MAX_QUERY_CHARS // 6)}).status_code == 200
    too_long = client.get("/search", params={"q": "d" * (MAX_QUERY_CHARS + 1)})
    assert too_long.status_code == 422 and "at most 500 characters" in too_long.text


@pytest.mark.parametrize("params", [
    {"start": MAX_SECONDS * 2}, {"end": "inf"}, {"start": "nan"}, {"start": -1},
    {"min_confidence": "nan"}, {"limit": 201}, {"limit": 0},
    {"cursor": "c" * (MAX_CURSOR_CHARS + 1)},
    {"review": ["reviewed", "partial", "unreviewed", "reviewed"]},
    {"media": ",".join(["catwalk"] * (MAX_MEDIA_FILTER + 1))},   # one value, too many ids
    {"media": ["catwalk"] * (MAX_MEDIA_FILTER + 1)},            # repeated, too many values
    {"media": "m" * (MAX_ID_CHARS + 1)},
])
def test_search_filters_out_of_range_are_422(client, params):
    assert client.get("/search", params=params).status_code == 422


def test_filters_at_their_limits_are_answered(client):
    many = ",".join(["street"] * (MAX_MEDIA_FILTER - 1) + ["catwalk"])
    assert client.get("/search", params={"media": many, "start": MAX_SECONDS}).json()["total"] == 0
    assert client.get("/search", params={"media": many}).json()["total"] == 4
    queue = client.get("/api/review/queue", params={"media": many, "limit": 500})
    assert queue.json()["total"] == 21  # every frame of both


@pytest.mark.parametrize("url, params", [
    ("/api/review/queue", {"media": ",".join(["m"] * (MAX_MEDIA_FILTER + 1))}),
    ("/api/review/queue", {"label": "x" * 41}),
    ("/api/review/queue", {"limit": 501}),
    ("/api/review/queue", {"offset": 10_000_001}),
    ("/api/review/queue", {"max_confidence": 1.5}),
    ("/api/review/queue", {"sort": "random"}),
    ("/api/review/audit", {"frame_id": "f" * (MAX_ID_CHARS + 1)}),
    ("/api/review/audit", {"limit": 1001}),
    (f"/frames/{DRESS}.jpg", {"overlay": "boxes," * 10}),
    ("/moments/x/thumbnail.jpg", {"person": 1001}),
    ("/moments/x/thumbnail.jpg", {"size": 4096}),
])
def test_other_parameters_out_of_range_are_422(client, url, params):
    assert client.get(url, params=params).status_code == 422


@pytest.mark.parametrize("template", [
    "/media/{}", "/media/{}/stream", "/frames/{}.jpg", "/moments/{}/thumbnail.jpg", "/api/review/frames/{}",
])
def test_overlong_ids_are_refused_before_any_lookup(client, template):
    assert client.get(template.format("a" * (MAX_ID_CHARS + 1))).status_code == 422
    assert client.get(template.format("a" * MAX_ID_CHARS)).status_code == 404


def test_write_bodies_are_bounded(client):
    url = f"/api/review/frames/{DRESS}/edits"
    long_version = {"version": "1" * (MAX_VERSION_CHARS + 1), "edit": {"kind": "accept_all"}}
    assert client.post(url, headers=as_("alice"), json=long_version).status_code == 422
    padded = {"version": "0", "edit": {"kind": "set", "path": "p" * MAX_BODY_BYTES, "value": "red"}}
    told = client.post(url, headers=as_("alice"), json=padded)  # with Content-Length
    assert told.status_code == 413 and "larger than" in told.json()["detail"]
    assert told.headers["x-content-type-options"] == "nosniff"

    def chunks():  # no Content-Length: Transfer-Encoding chunked, counted as it comes
        body = json.dumps(padded).encode()
        for at in range(0, len(body), 4096):
            yield body[at:at + 4096]

    assert client.post(url, headers=as_("alice"), content=chunks()).status_code == 413
    assert client.get(f"/api/review/frames/{DRESS}").json()["version"] == "0"  # nothing written


@pytest.mark.parametrize("path", ["persons.-1.detection", "persons.0_0.detection", "persons. 1.detection",
                                  "persons.01.detection", "persons.0.garments.-1.color", "persons.0.garments.0.colour",
                                  "persons.0.garments.0.color.", "persons.0", "persons.0.detection\n", ""])
def test_label_paths_are_canonical(fresh, path):
    """The indexer reads indices with int(): "-1" would edit the last person while the audit says "-1"."""
    edit = {"kind": "accept", "path": path}
    answer = fresh.post(f"/api/review/frames/{LEAST_SURE}/edits", headers=as_("alice"),
                        json={"version": "0", "edit": edit})
    assert answer.status_code == 422 and "label path" in answer.text
    assert fresh.get("/api/review/audit").json() == []
    for fine in ("persons.1.detection", "persons.0.garments.0.color"):
        version = fresh.get(f"/api/review/frames/{LEAST_SURE}").json()["version"]
        accepted = fresh.post(f"/api/review/frames/{LEAST_SURE}/edits", headers=as_("alice"),
                              json={"version": version, "edit": {"kind": "accept", "path": fine}})
        assert accepted.status_code == 200, accepted.text


def _resolve(spec: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].split("/")[-1]]
    return schema


def _bounded(spec: dict, schema: dict) -> bool:
    schema = _resolve(spec, schema)
    if "anyOf" in schema:
        return all(_bounded(spec, s) for s in schema["anyOf"])
    kind = schema.get("type")
    if "enum" in schema or kind in ("null", "boolean"):
        return True
    if kind == "string":
        return "maxLength" in schema or schema.get("pattern", "").endswith("$") and "*" not in schema["pattern"]
    if kind in ("integer", "number"):
        return "minimum" in schema and "maximum" in schema
    if kind == "array":
        return "maxItems" in schema and _bounded(spec, schema["items"])
    return False


def test_every_parameter_in_the_schema_is_bounded(client):
    spec = client.get("/openapi.json").json()
    unbounded = [f"{method.upper()} {path} {p['name']}: {p['schema']}"
                 for path, operations in spec["paths"].items() for method, operation in operations.items()
                 for p in operation.get("parameters", []) if not _bounded(spec, p["schema"])]
    assert unbounded == []
    # Bodies: the version is bounded here; the edit's strings are the indexer's (checked against the
    # frame and the vocabulary) and bounded as a whole by the body limit (test_write_bodies_are_bounded).
    edit_in = spec["components"]["schemas"]["EditIn"]["properties"]["version"]
    assert edit_in["maxLength"] == MAX_VERSION_CHARS


# --- 2. files: only indexed media and stored frames ---------------------------------------------------

TRAVERSALS = [
    "..", "../secret.txt", "../../secret.txt", "..%2fsecret.txt", "..%2f..%2fsecret.txt", "%2e%2e",
    "%2e%2e%2f%2e%2e%2fsecret.txt", "%2e%2e%2fsecret", "..%5c..%5csecret.txt", "%252e%252e%252fsecret.txt",
    "%2fetc%2fpasswd", "%2f%2fetc%2fpasswd", "/etc/passwd", "C:%5cWindows%5cwin.ini",
    "catwalk%00", "catwalk%00..%2fsecret.txt", f"{DRESS}%00", "catwalk%0a", f"{DRESS}%0a", "catwalk%20",
    "a" * 5000, "%c0%ae%c0%ae%2fsecret.txt", "~root", "catwalk%2f..%2f..%2fsecret.txt",
]
ID_TEMPLATES = ["/media/{}", "/media/{}/stream", "/frames/{}.jpg", "/frames/{}.jpg?overlay=boxes",
                "/moments/{}/thumbnail.jpg", "/api/review/frames/{}", "/static/{}", "/static/{}/app.py"]


def _refused(status: int, body: bytes) -> None:
    assert 400 <= status < 500, status
    assert SECRET.encode() not in body and b"root:" not in body and b"create_app" not in body


@pytest.mark.parametrize("template", ID_TEMPLATES)
def test_traversal_through_the_test_client_is_refused(client, template):
    for attempt in TRAVERSALS:
        answer = client.get(template.format(attempt))
        if answer.request.url.raw_path.decode() != template.format(attempt):
            # httpx removed the dot segments itself ("/media/.." asks for "/"): the socket test sends those
            assert ".." in template.format(attempt)
            continue
        _refused(answer.status_code, answer.content)


@pytest.fixture(scope="module")
def live(settings):
    from tests.browser.conftest import serve

    with serve(create_app(settings, parser=PARSER)) as url:
        yield url.removeprefix("http://")


def raw_get(address: str, path: str) -> tuple[int, bytes]:
    """GET `path` byte for byte: http.client sends the target as given (no dot-segment removal, no
    re-quoting), so the server sees exactly what an attacker's client would send."""
    connection = http.client.HTTPConnection(address, timeout=10)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("template", ID_TEMPLATES)
def test_traversal_over_a_real_socket_is_refused(live, template):
    for attempt in TRAVERSALS:
        status, body = raw_get(live, template.format(attempt))
        _refused(status, body)
    # and the unprefixed forms a server that joined paths naively would serve
    for path in ("/frames/../../secret.txt", "/static/../app.py", "/static/..%2fapp.py", "/static/%2e%2e/app.py",
                 "/media/..%2f..%2f..%2fsecret.txt/stream", "//etc/passwd", "/frames/..%2f..%2fsecret.txt.jpg"):
        status, body = raw_get(live, path)
        _refused(status, body)


def test_the_real_socket_still_serves_what_is_indexed(live):
    status, body = raw_get(live, f"/frames/{DRESS}.jpg")
    assert status == 200 and body[:2] == b"\xff\xd8"
    assert raw_get(live, "/media/catwalk/stream")[0] == 200


def test_a_link_out_of_the_frames_folder_is_refused(client):
    for planted in (frame_id("catwalk", 98.0), frame_id("catwalk", 97.0)):  # to a JPEG, to the secret
        for url in (f"/frames/{planted}.jpg", f"/frames/{planted}.jpg?overlay=boxes"):
            answer = client.get(url)
            assert answer.status_code == 404, url
            _refused(answer.status_code, answer.content)
    assert client.get(f"/frames/{frame_id('linked', 1.0)}.jpg").status_code == 404  # a linked media folder
    # a link that stays inside the folder is followed
    inside = client.get(f"/frames/{frame_id('catwalk', 96.0)}.jpg")
    assert inside.status_code == 200 and inside.content == client.get(f"/frames/{DRESS}.jpg").content


def test_a_thumbnail_whose_best_frame_is_a_link_out_is_refused(settings, root):
    store = open_store(settings)
    try:
        moment = store.moments_of("street")[0]
    finally:
        store.close()
    image = settings.data_dir / "frames" / "street" / f"{moment.best_frame_id}.jpg"
    kept = image.read_bytes()
    with TestClient(create_app(settings, parser=PARSER), base_url=LOCAL) as client:
        assert client.get(f"/moments/{moment.moment_id}/thumbnail.jpg").status_code == 200
        image.unlink()
        image.symlink_to(root / "outside.jpg")
        try:
            assert client.get(f"/moments/{moment.moment_id}/thumbnail.jpg").status_code == 404
            assert client.get(f"/frames/{moment.best_frame_id}.jpg").status_code == 404
        finally:
            image.unlink()
            image.write_bytes(kept)


def test_frames_of_media_not_in_the_store_are_not_served(client, settings):
    assert (settings.data_dir / "frames" / "ghost" / f"{frame_id('ghost', 1.0)}.jpg").is_file()
    assert client.get(f"/frames/{frame_id('ghost', 1.0)}.jpg").status_code == 404


def test_a_frame_id_reaches_only_its_own_media_folder(client, settings):
    """A street frame's image put in the catwalk's folder is not found through either id."""
    street_frame = frame_id("street", 10.0)
    own = settings.data_dir / "frames" / "street" / f"{street_frame}.jpg"
    moved = settings.data_dir / "frames" / "catwalk" / f"{street_frame}.jpg"
    own.rename(moved)
    try:
        assert client.get(f"/frames/{street_frame}.jpg").status_code == 404
        assert client.get(f"/frames/catwalk-{street_frame}.jpg").status_code == 404
    finally:
        moved.rename(own)
    assert client.get(f"/frames/{street_frame}.jpg").status_code == 200


def test_a_frames_folder_that_is_itself_a_link_is_followed(tmp_path):
    """The operator may keep the frames on another disk: the folder as a whole may be a link."""
    (tmp_path / "scene").mkdir()
    settings = build_scene(tmp_path / "scene")
    frames = settings.data_dir / "frames"
    frames.rename(tmp_path / "other-disk")
    frames.symlink_to(tmp_path / "other-disk")
    with TestClient(create_app(settings, parser=PARSER), base_url=LOCAL) as client:
        assert client.get(f"/frames/{DRESS}.jpg").status_code == 200


def test_streams_serve_only_the_file_a_media_record_names(client, settings):
    assert client.get("/media/catwalk/stream").status_code == 200
    assert client.get("/media/ghost/stream").status_code == 404  # frames on disk, not in the store
    # The record's path is the only path used: no id, however spelled, names another file.
    assert client.get("/media/catwalk.mp4/stream").status_code == 404
    assert client.get("/media/secret.txt/stream").status_code == 404


# --- 3. writes need a reviewer's token ---------------------------------------------------------------

WRITES = [
    ("/api/review/frames/{}/edits", {"version": "0", "edit": {"kind": "accept_all"}}),
    ("/api/review/frames/{}/undo", {"version": "0"}),
]


@pytest.mark.parametrize("url, body", WRITES)
@pytest.mark.parametrize("headers, status", [
    ({}, 401),
    ({"Authorization": "Bearer"}, 401),
    ({"Authorization": "Bearer "}, 401),
    ({"Authorization": f"Basic {REVIEWERS['alice']}"}, 401),
    ({"Authorization": REVIEWERS["alice"]}, 401),                       # no scheme
    ({"Authorization": "Bearer not-a-reviewer-token"}, 403),
    ({"Authorization": f"Bearer {REVIEWERS['alice'][:-1]}"}, 403),        # a prefix of a token
    ({"Authorization": f"Bearer {REVIEWERS['alice']}x"}, 403),            # a token and more
    ({"Authorization": f"Bearer {REVIEWERS['alice'].upper()}"}, 403),
    ({"Authorization": "Bearer alice"}, 403),                             # a name is not a token
    ({"X-Reviewer-Token": REVIEWERS["alice"]}, 401),
    ({"Cookie": f"token={REVIEWERS['alice']}"}, 401),
])
def test_writes_without_a_valid_token_change_nothing(fresh, url, body, headers, status):
    answer = fresh.post(url.format(LEAST_SURE), json=body, headers=headers)
    assert answer.status_code == status, answer.text
    if status == 401:
        assert answer.headers["www-authenticate"] == "Bearer"
    answer = fresh.post(url.format(LEAST_SURE), json=body, params={"token": REVIEWERS["alice"]})
    assert answer.status_code == 401  # a token in the URL counts for nothing
    assert fresh.get(f"/api/review/frames/{LEAST_SURE}").json()["version"] == "0"
    assert fresh.get("/api/review/audit").json() == []


def test_a_token_writes_as_its_own_reviewer_only(fresh):
    """Bob's token writes as bob: the audit names the token's owner, and a body cannot claim another."""
    claim = {"version": "0", "edit": {"kind": "accept_all"}, "reviewer": "alice"}
    assert fresh.post(f"/api/review/frames/{LEAST_SURE}/edits", json=claim, headers=as_("bob")).status_code == 422
    done = fresh.post(f"/api/review/frames/{LEAST_SURE}/edits", headers=as_("bob"),
                      json={"version": "0", "edit": {"kind": "accept_all"}})
    assert done.status_code == 200, done.text
    undone = fresh.post(f"/api/review/frames/{LEAST_SURE}/undo", headers=as_("alice"), json={"version": "1"})
    assert undone.status_code == 200, undone.text
    assert [(e["reviewer"], e["action"]) for e in fresh.get("/api/review/audit").json()] == [
        ("alice", "undo"), ("bob", "accept_all")]


def all_routes(routes):
    """Every route, inside included routers too (FastAPI 0.16x keeps an included router as one node
    holding the router; older versions copy its routes into the app's list)."""
    for route in routes:
        router = getattr(route, "original_router", None)
        if router is not None:
            yield from all_routes(router.routes)
        else:
            yield route


def _depends_on(dependant, call) -> bool:
    return any(d.call is call or _depends_on(d, call) for d in dependant.dependencies)


def _reviewer_check(dependant):
    return next((d for d in dependant.dependencies if d.call.__name__ == "reviewer"), None)


# POST routes that read: the body is a query (a photo to search by), nothing is written
# (tests/search_api/test_similar.py checks that the data dir is unchanged after uploads).
READ_POSTS = {"/search/similar"}


def _writes(routes):
    return [r for r in routes
            if isinstance(r, APIRoute) and set(r.methods) - {"GET", "HEAD"} and r.path not in READ_POSTS]


def test_every_write_route_depends_on_the_reviewer_check(client):
    app = client.app
    routes = list(all_routes(app.routes))
    assert len([r for r in routes if isinstance(r, APIRoute)]) >= 14  # the walk saw the review router
    assert {r.path for r in routes if isinstance(r, APIRoute) and "POST" in r.methods} >= READ_POSTS
    writes = _writes(routes)
    assert {(r.path, frozenset(r.methods)) for r in writes} == {
        ("/api/review/frames/{frame_id}/edits", frozenset({"POST"})),
        ("/api/review/frames/{frame_id}/undo", frozenset({"POST"})),
    }  # a new write route must be added here, after making sure it takes `reviewer`
    for route in writes:
        check = _reviewer_check(route.dependant)
        assert check is not None, f"{route.path} does not depend on the reviewer check"
        assert _depends_on(check, review_module._bearer), f"{route.path}: its reviewer check reads no bearer token"
    # Anything else answering a non-GET method is a mount that refuses it.
    others = [r for r in routes
              if not isinstance(r, APIRoute) and set(getattr(r, "methods", None) or ()) - {"GET", "HEAD"}]
    assert others == []
    assert client.post("/static/app.js").status_code == 405
    spec = client.get("/openapi.json").json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method not in ("get", "head") and path not in READ_POSTS:
                assert operation.get("security") == [{"HTTPBearer": []}], f"{method} {path}"


def test_every_write_route_answers_401_without_a_token(client):
    """Whatever the body, the token is asked for first: a write route without the check would
    answer 422 (body) or 404 (frame) here instead."""
    for route in _writes(all_routes(client.app.routes)):
        url = route.path.replace("{frame_id}", "no-such-frame-1")
        for method in set(route.methods) - {"GET", "HEAD"}:
            assert client.request(method, url, json={}).status_code == 401, (method, url)


# --- 4. CORS closed by default; security headers -----------------------------------------------------

ORIGIN = "https://ui.example.org"


def test_no_cross_origin_reads_by_default(client):
    answer = client.get("/search", params={"q": "dress"}, headers={"Origin": "https://evil.example"})
    assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers
    preflight = client.options(f"/api/review/frames/{DRESS}/edits", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.status_code >= 400


def test_listed_origins_only_may_read(settings):
    listed = settings.model_copy(update={"server": settings.server.model_validate({"cors_origins": [ORIGIN]})})
    with TestClient(create_app(listed, parser=PARSER), base_url=LOCAL) as client:
        answer = client.get("/media", headers={"Origin": ORIGIN})
        assert answer.headers["access-control-allow-origin"] == ORIGIN
        assert "access-control-allow-credentials" not in answer.headers
        other = client.get("/media", headers={"Origin": "https://evil.example"})
        assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
        preflight = client.options(f"/api/review/frames/{DRESS}/edits", headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == ORIGIN
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        refused = client.options(f"/api/review/frames/{DRESS}/edits", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
        # a listed origin still needs the token to write
        write = client.post(f"/api/review/frames/{DRESS}/edits", headers={"Origin": ORIGIN},
                            json={"version": "0", "edit": {"kind": "accept_all"}})
        assert write.status_code == 401


@pytest.mark.parametrize("origin", ["*", "https://ui.example.org/", "ui.example.org", "https://ui.example.org/app",
                                    "null", "ftp://ui.example.org"])
def test_cors_origins_are_checked(origin):
    with pytest.raises(ConfigError, match="server.cors_origins"):
        load_settings(overrides=[{"server": {"cors_origins": [origin]}}])
    assert load_settings().server.cors_origins == []  # configs/default.yaml: closed


@pytest.mark.parametrize("page", ["/", "/review"])
def test_pages_get_a_policy_that_runs_only_their_own_scripts(client, page):
    answer = client.get(page)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    policy = answer.headers["content-security-policy"]
    assert policy == PAGE_POLICY
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe" not in policy
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"


def test_every_answer_says_nosniff_and_the_docs_cannot_be_framed(client):
    for url in ("/search?q=dress", "/media", f"/frames/{DRESS}.jpg", "/media/catwalk/stream", "/static/app.js",
                "/media/nope", "/openapi.json"):
        assert client.get(url).headers["x-content-type-options"] == "nosniff", url
    docs = client.get("/docs")
    policy = docs.headers["content-security-policy"]
    assert docs.status_code == 200 and "frame-ancestors 'none'" in policy
    assert "http" not in policy  # the docs load nothing from another host (search_api/test_problems.py)


def test_the_pages_work_under_their_policy():
    """No inline script, inline handler, style attribute or javascript: URL the policy would block."""
    for page in STATIC_DIR.glob("*.html"):
        text = page.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), page.name
        assert not re.search(r"\son[a-z]+\s*=", text), page.name
        assert not re.search(r"\sstyle\s*=", text) and "<style" not in text, page.name
        assert "javascript:" not in text.lower(), page.name
        for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', text):
            assert (STATIC_DIR / asset.removeprefix("/static/")).is_file(), asset


# --- 5. names and labels are data, never markup ----------------------------------------------------


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    """review_scene: the street's file name is `<img src=x onerror=...>.mp4`, a model is `<b>tagger</b>`."""
    with TestClient(create_app(review_scene(tmp_path_factory.mktemp("crafted")), parser=PARSER), base_url=LOCAL) as test_client:
        yield test_client


def _json_only(answer) -> None:
    # answers are application/json, errors application/problem+json (RFC 9457): never HTML
    assert answer.headers["content-type"] in ("application/json", "application/problem+json")
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_crafted_names_come_back_as_json_strings_unchanged(crafted):
    listing = crafted.get("/media")
    _json_only(listing)
    street = next(m for m in listing.json() if m["media_id"] == "street")
    assert street["name"] == STREET_NAME  # the data itself: not HTML-escaped (the page's job), not dropped
    assert json.dumps(STREET_NAME)[1:-1] in listing.text
    view = crafted.get(f"/api/review/frames/{frame_id('street', 5.0)}")
    _json_only(view)
    assert view.json()["media_name"] == STREET_NAME
    assert STREET_MODEL in {row["model"] for row in view.json()["labels"]}
    found = crafted.get("/search", params={"q": "<script>alert(1)</script> t-shirt"})
    _json_only(found)
    assert found.json()["query"] == "<script>alert(1)</script> t-shirt"
    assert STREET_NAME in [v["name"] for v in found.json()["videos"]]
    queue = crafted.get("/api/review/queue", params={"media": "street"})
    assert {item["media_name"] for item in queue.json()["items"]} == {STREET_NAME}


def test_errors_echo_input_as_json_only(crafted):
    for url in ("/media/<script>alert(1)<%2Fscript>", "/frames/<img src=x>.jpg", "/api/review/frames/<b>x</b>",
                "/search?cursor=<script>"):
        answer = crafted.get(url)
        assert 400 <= answer.status_code < 500, url
        _json_only(answer)


# Sinks that parse a string as HTML or code. `x.innerHTML = ""` (a literal without markup) is allowed.
HTML_SINKS = re.compile(
    r"\.(?:inner|outer)HTML\s*\+?=\s*(?!\s*(?:\"\"|''|``)\s*[;,)])"
    r"|\binsertAdjacentHTML\s*\(|\bdocument\.write(?:ln)?\s*\(|\beval\s*\(|\bnew\s+Function\s*\("
    r"|\bset(?:Timeout|Interval)\s*\(\s*[\"'`]|\.srcdoc\b|\bcreateContextualFragment\s*\(|\bDOMParser\b"
    r"|\.setHTMLUnsafe\s*\(|\bparseHTMLUnsafe\s*\("
)
# Event-handler attributes set from script (`{onclick: ...}` to a setAttribute helper, or by name).
HANDLER_ATTRIBUTES = re.compile(r"""["']?\bon(?!ce\b)[a-z]+["']?\s*:|setAttribute\(\s*["']on""")


def test_the_page_scripts_never_parse_data_as_markup():
    scripts = sorted(STATIC_DIR.glob("*.js"))
    assert {s.name for s in scripts} >= {"app.js", "review.js"}
    for script in scripts:
        code = re.sub(r"//[^\n]*", "", script.read_text())  # comments may name the sinks
        assert not HTML_SINKS.search(code), f"{script.name}: {HTML_SINKS.search(code).group(0)!r}"
        assert not HANDLER_ATTRIBUTES.search(code), f"{script.name}: {HANDLER_ATTRIBUTES.search(code).group(0)!r}"
        assert "textContent" in code  # text goes in as text


def test_the_sink_check_catches_what_it_is_for():
    for bad in ('row.innerHTML = `<td>${label.value}</td>`;', "box.innerHTML += name;", "el.outerHTML = x;",
                'list.insertAdjacentHTML("beforeend", item);', "document.write(name);", "eval(text);",
                'setTimeout("go()", 1);', "frame.srcdoc = page;", "new DOMParser()"):
        assert HTML_SINKS.search(bad), bad
    for fine in ('results.innerHTML = "";', "node.textContent = name;", "node.replaceChildren();"):
        assert not HTML_SINKS.search(fine), fine
    assert HANDLER_ATTRIBUTES.search('el("img", {onerror: "x"})')
    assert HANDLER_ATTRIBUTES.search('n.setAttribute("onclick", s)')
    assert not HANDLER_ATTRIBUTES.search('addEventListener("loadedmetadata", f, { once: true })')


# --- 6. hosts, slow clients, what is served (issue 19, findings 4, 5, 7) -------------------------------


def test_a_host_this_server_is_not_is_refused(client):
    """DNS rebinding: a page of evil.example whose name now resolves to 127.0.0.1 sends its own name."""
    for host in ("evil.example", "evil.example:8000", "localhost.evil.example", "127.0.0.1.nip.io"):
        answer = client.get("/media", headers={"Host": host})
        assert answer.status_code == 400, host
        assert "catwalk" not in answer.text
    for host in ("localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000"):
        assert client.get("/media", headers={"Host": host}).status_code == 200, host


def test_trusted_hosts_are_configurable_and_checked(settings):
    served = settings.model_copy(update={"server": settings.server.model_copy(
        update={"trusted_hosts": ["vestis.example.org", "*.lan"]})})
    with TestClient(create_app(served, parser=PARSER), base_url="http://vestis.example.org") as other:
        assert other.get("/media").status_code == 200
        assert other.get("/media", headers={"Host": "box.lan"}).status_code == 200
        assert other.get("/media", headers={"Host": "localhost"}).status_code == 400
    for bad in ("http://vestis.example.org", "host:8000", "a/b", ""):
        with pytest.raises(ValueError, match="trusted host"):
            Settings(server={"trusted_hosts": [bad]})


def test_media_list_shows_names_not_paths(client, settings):
    answer = client.get("/media")
    assert answer.status_code == 200 and answer.json()
    assert all("path" not in media for media in answer.json())
    assert str(settings.data_dir.parent) not in answer.text  # no absolute path of the server's disk
    assert str(settings.data_dir.parent) not in client.get("/media/catwalk").text


def test_only_done_media_are_streamed(tmp_path):
    """A failed record's file may be anything (here a text file named .mp4); a pending one may be
    changing under the ingest."""
    settings = review_scene(tmp_path)
    fake = tmp_path / "notes.mp4"
    fake.write_text(SECRET)
    store = open_store(settings)
    try:
        store.record_failure(str(fake), "video", "not a readable video: not a known video format", "fakeid")
        assert store.get_media("fakeid").status.value == "failed"
    finally:
        store.close()
    with TestClient(create_app(settings, parser=PARSER), base_url=LOCAL) as fresh_client:
        answer = fresh_client.get("/media/fakeid/stream")
        assert answer.status_code == 404 and SECRET not in answer.text and "failed" in answer.text
        assert str(tmp_path) not in answer.text


@pytest.fixture(scope="module")
def bounded(settings):
    from tests.browser.conftest import serve

    quick = settings.model_copy(update={"server": settings.server.model_copy(update={"request_timeout": 1.0,
                                                                                      "keep_alive_timeout": 1})})
    with serve(create_app(quick, parser=PARSER), settings=quick) as url:
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


def _closed_within(sock: socket.socket, seconds: float) -> bytes:
    """What the server sent before it closed the connection, waiting at most `seconds`."""
    sock.settimeout(seconds)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except TimeoutError:
        raise AssertionError(f"the connection was still open after {seconds} s (got {received!r})") from None
    return received


def test_a_client_that_never_finishes_its_headers_is_cut_off(bounded):
    for opening in (b"", b"GET /media HTTP/1.1\r\nHost: localhost\r\n"):  # silent; headers never ended
        with socket.create_connection(bounded) as sock:
            sock.sendall(opening)
            started = time.monotonic()
            assert _closed_within(sock, 5) == b""
            assert time.monotonic() - started < 3


def test_a_slow_next_request_on_a_kept_alive_connection_is_cut_off(bounded):
    with socket.create_connection(bounded) as sock:
        sock.sendall(b"GET /media HTTP/1.1\r\nHost: localhost\r\n\r\n")
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /media HTTP/1.1\r\n")  # a byte now and then keeps uvicorn's keep-alive timer off
        for _ in range(3):
            time.sleep(0.5)
            try:
                sock.sendall(b"X")
            except OSError:
                break
        assert b"200" not in _closed_within(sock, 5)


def test_a_body_that_never_arrives_is_answered_408(bounded):
    with socket.create_connection(bounded) as sock:
        sock.sendall(b"POST /api/review/frames/x/undo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n"
                     b"Content-Type: application/json\r\n\r\n{\"ver")
        assert _closed_within(sock, 5).startswith(b"HTTP/1.1 408")


def test_a_normal_request_is_unaffected_by_the_bounds(bounded):
    status, body = raw_get(f"{bounded[0]}:{bounded[1]}", "/media")
    assert status == 200 and b"catwalk" in body

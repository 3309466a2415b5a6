"""One error shape (RFC 9457 problem details) for every failure, offline API docs, tags, stable
operation ids and /healthz."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from indexer import StoreUnavailable
from search_api.app import create_app
from tests.search_api.test_app import PARSER, build_scene

PROBLEM_KEYS = {"type", "title", "status", "detail"}


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return build_scene(tmp_path_factory.mktemp("problems"))


@pytest.fixture(scope="module")
def client(scene):
    with TestClient(create_app(scene, parser=PARSER), base_url="http://localhost", raise_server_exceptions=False) as test_client:
        yield test_client


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert PROBLEM_KEYS <= set(body) and body["status"] == status and body["type"] == "about:blank"
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def test_a_handler_error_a_validation_error_and_the_body_limit_answer_one_shape(client):
    missing = assert_problem(client.get("/media/nope"), 404)
    assert missing["title"] == "Not Found" and "nope" in missing["detail"]
    invalid = assert_problem(client.get("/search", params={"limit": 0}), 422)
    assert "limit" in invalid["detail"] and invalid["errors"][0]["loc"] == ["query", "limit"]
    big = assert_problem(client.post("/api/review/frames/x/edits", content=b"x" * 70_000,
                                     headers={"Content-Type": "application/json"}), 413)
    assert "larger than" in big["detail"]
    unknown_route = assert_problem(client.get("/no/such/route"), 404)
    assert unknown_route["title"] == "Not Found"


def test_a_store_that_goes_away_is_a_503_problem_and_healthz_says_so(scene, monkeypatch):
    app = create_app(scene, parser=PARSER)
    with TestClient(app, base_url="http://localhost", raise_server_exceptions=False) as client:
        health = client.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok" and health.json()["store"] == "embedded"

        def down(*_, **__):
            raise StoreUnavailable("Elasticsearch at http://es:9200 does not answer (store.elasticsearch_url)")

        monkeypatch.setattr(app.state.store, "get_media", down)
        assert "store.elasticsearch_url" in assert_problem(client.get("/healthz"), 503)["detail"]
        monkeypatch.setattr(app.state.store, "list_media", lambda: 1 / 0)
        crashed = assert_problem(client.get("/media"), 500)
        assert "ZeroDivision" not in crashed["detail"]  # no internals to the client


def test_docs_load_only_assets_the_server_serves(client):
    for page in ("/docs", "/redoc"):
        html = client.get(page)
        assert html.status_code == 200
        urls = re.findall(r'(?:src|href)=["\']([^"\']+)', html.text) + re.findall(r"url: *['\"]([^'\"]+)", html.text)
        assert urls, html.text
        for url in urls:
            assert url.startswith("/"), f"{page} loads {url} from elsewhere"
            assert client.get(url).status_code == 200, url
    assert "swagger-ui-bundle.js" in client.get("/docs").text and "redoc.standalone.js" in client.get("/redoc").text


def test_every_operation_has_a_tag_a_chosen_id_and_documents_problems(client):
    schema = client.get("/openapi.json").json()
    operations = [(path, method, op) for path, ops in schema["paths"].items() for method, op in ops.items()]
    ids = [op["operationId"] for _, _, op in operations]
    assert len(ids) == len(set(ids)), ids
    # chosen names, not FastAPI's generated "<function>_<path>_<method>"
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", i) and not i.endswith(("_get", "_post")) for i in ids), ids
    assert {"search_moments", "get_media", "stream_media", "healthz", "edit_review_frame"} <= set(ids)
    declared = {t["name"] for t in schema["tags"]}
    for path, method, op in operations:
        assert op.get("tags") and set(op["tags"]) <= declared, (path, method)
        assert "4XX" in op["responses"] and "422" not in op["responses"], (path, method)
    assert set(schema["components"]["schemas"]["Problem"]["required"]) >= {"title", "status", "detail"}

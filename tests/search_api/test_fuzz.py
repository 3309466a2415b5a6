"""The API fuzzed from its own OpenAPI schema (schemathesis): no request, however odd, is a server error.

Schemathesis reads /openapi.json from the app in process (ASGI, no network) and, for every operation,
generates requests that fit the schema (positive) and that break it (negative: wrong types, values
out of range, strings over their limits, missing or extra fields). Each generated request is sent
twice: as generated, and with its path ids replaced by ids the scene has (and, for a write, with the
frame's current version), so the handlers run past "404 no such frame" into the image drawing, the
label views and the edits. Every request carries a valid reviewer token (schemathesis' `headers`
setting), so the review writes are exercised past the token check: random edits meet the edit
validation (422) and the version check (409), and those that fit are saved.

The only check is `not_a_server_error`: the schema is FastAPI's, and its 4xx answers are not all
documented, so status and schema conformance are not what this test is about.

Schemathesis' own pytest integration (`schema.parametrize()`, `schemathesis.pytest.from_fixture`)
reaches into pytest's private node attributes, which pytest 9 no longer has; its per-operation case
strategies under plain Hypothesis do the same generation without it.

Deterministic: Hypothesis derandomized with a fixed seed and no example database, schemathesis'
`deterministic` generation, so CI sends the same requests on every run. MAX_EXAMPLES per operation
and mode (VESTIS_FUZZ_EXAMPLES to hunt with more) keeps the file well under a minute.
"""

from __future__ import annotations

import os

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed: pip install -e '.[dev]'")

import hypothesis  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.config import SchemathesisConfig  # noqa: E402

from indexer import open_store  # noqa: E402
from search_api.app import create_app  # noqa: E402
from tests.indexer.test_search import frame_id  # noqa: E402
from tests.search_api.test_app import PARSER, build_scene  # noqa: E402

LOCAL = "http://localhost"  # a trusted host (server.trusted_hosts); TestClient's "testserver" is not

SEED = 20240607
MAX_EXAMPLES = int(os.environ.get("VESTIS_FUZZ_EXAMPLES", "50"))
TOKEN = "fuzz-reviewer-token"
DRESS = frame_id("catwalk", 2.0)  # has labels, a stored image and a mask

# Every operation of the schema; test_every_operation_is_fuzzed keeps the list complete.
OPERATIONS = [
    ("GET", "/healthz"),
    ("GET", "/search"),
    ("GET", "/vocabulary"),
    ("GET", "/search/similar"),
    ("POST", "/search/similar"),
    ("GET", "/frames/{frame_id}.jpg"),
    ("GET", "/moments/{moment_id}/thumbnail.jpg"),
    ("GET", "/media"),
    ("GET", "/media/{media_id}"),
    ("GET", "/media/{media_id}/stream"),
    ("GET", "/api/review/vocabulary"),
    ("GET", "/api/review/queue"),
    ("GET", "/api/review/frames/{frame_id}"),
    ("POST", "/api/review/frames/{frame_id}/edits"),
    ("POST", "/api/review/frames/{frame_id}/undo"),
    ("GET", "/api/review/audit"),
]


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    settings = build_scene(tmp_path_factory.mktemp("fuzz"))
    return settings.model_copy(update={"review": settings.review.model_validate({"reviewers": {"fuzzer": TOKEN}})})


@pytest.fixture(scope="module")
def known_ids(scene) -> dict[str, str]:
    """Path ids the scene has: what the second send of each case uses."""
    store = open_store(scene)
    try:
        moment = store.moments_of("catwalk")[0].moment_id
    finally:
        store.close()
    return {"frame_id": DRESS, "media_id": "catwalk", "moment_id": moment}


def without_lifespan(app):
    """The app for schemathesis' in-process client, which would run the app's lifespan itself: the
    app's shutdown closes the store. The fixture runs the lifespan once, around the whole module.
    Its requests name the host "testserver", which server.trusted_hosts refuses: they are sent as to
    localhost."""

    async def asgi(scope, receive, send):
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] == "http":
            headers = [(name, value) for name, value in scope["headers"] if name != b"host"]
            scope = {**scope, "headers": [*headers, (b"host", b"localhost")]}
        await app(scope, receive, send)

    return asgi


@pytest.fixture(scope="module")
def api(scene):
    """(schema, client): the app's schema for schemathesis, and a client of the same app."""
    config = SchemathesisConfig.from_dict({
        "seed": SEED,
        "headers": {"Authorization": f"Bearer {TOKEN}"},
        "generation": {"deterministic": True, "database": "none"},
    })
    app = create_app(scene, parser=PARSER)
    with TestClient(app, base_url=LOCAL) as client:  # startup now; shutdown (the store closes) after the module
        yield schemathesis.openapi.from_asgi("/openapi.json", without_lifespan(app), config=config), client


def test_every_operation_is_fuzzed(api):
    schema, _ = api
    found = {(result.ok().method.upper(), result.ok().path) for result in schema.get_all_operations()}
    assert found == set(OPERATIONS)


@pytest.mark.parametrize("mode", ["positive", "negative"])
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_request_is_a_server_error(api, known_ids, method, path, mode):
    schema, client = api
    operation = schema[path][method]
    if mode == "negative" and not list(operation.iter_parameters()) \
            and not list(operation.get_request_payload_content_types()):
        pytest.skip("the operation takes nothing that could break its schema")
    ids = {name: value for name, value in known_ids.items() if "{" + name + "}" in path}

    def send(case) -> None:
        response = case.call()
        case.validate_response(response, checks=[not_a_server_error])
        if os.environ.get("VESTIS_FUZZ_LOG"):  # when hunting: what the fuzzing reached, status by status
            with open(os.environ["VESTIS_FUZZ_LOG"], "a") as log:
                log.write(f"{method} {path} {mode} {response.status_code}\n")

    @hypothesis.seed(SEED)
    @hypothesis.settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
                         suppress_health_check=list(hypothesis.HealthCheck), print_blob=False)
    @hypothesis.given(case=operation.as_strategy(GenerationMode(mode)))
    def fuzz(case) -> None:
        send(case)
        if ids:  # the same request about things that exist
            case.path_parameters = {**case.path_parameters, **ids}
            if method == "POST" and isinstance(case.body, dict) and "version" in case.body:
                current = client.get(f"/api/review/frames/{ids['frame_id']}").json()["version"]
                case.body = {**case.body, "version": current}
            send(case)

    fuzz()

"""Every error the HTTP API answers, in one shape: RFC 9457 problem details.

`{"type": "about:blank", "title": "Not Found", "status": 404, "detail": "no media 'x' in the store"}`
as `application/problem+json`, whatever raised it: a handler's HTTPException, FastAPI's request
validation (its messages joined into `detail`, each kept under `errors`), the store going away (503),
the body limit (413) and anything unexpected (500, with no internals in the body). Extra facts a
client acts on are extension members beside `detail`: `current_version` on a 409 edit conflict.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from indexer import StoreUnavailable

MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("vestis.api")


class Problem(BaseModel):
    """RFC 9457 problem details (extension members allowed)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field("about:blank", description="about:blank: the status code says what happened")
    title: str = Field(description="the status code's phrase")
    status: int
    detail: str = Field(description="what went wrong with this request, in words")
    errors: list[dict[str, Any]] | None = Field(None, description="request validation: each failed check")
    current_version: str | None = Field(None, description="edit conflicts: the version the frame has now")


# For the OpenAPI schema: every operation may answer a problem.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": Problem, "description": "The request cannot be answered", "content": {MEDIA_TYPE: {}}},
    "5XX": {"model": Problem, "description": "The server or its store failed", "content": {MEDIA_TYPE: {}}},
}


def problem_response(status: int, detail: str, headers: dict[str, str] | None = None,
                     **extensions: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail,
            **{k: v for k, v in extensions.items() if v is not None}}
    return JSONResponse(body, status_code=status, headers=headers, media_type=MEDIA_TYPE)


def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail: Any = exc.detail
    extensions: dict[str, Any] = {}
    if isinstance(detail, dict):  # {"message": ..., <extension>: ...}
        extensions = {k: v for k, v in detail.items() if k != "message"}
        detail = detail.get("message", "")
    return problem_response(exc.status_code, str(detail), headers=dict(exc.headers or {}), **extensions)


def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
              for e in exc.errors()]
    detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
    return problem_response(422, detail, errors=errors)


def _store_unavailable(_: Request, exc: Exception) -> JSONResponse:
    return problem_response(503, str(exc))


def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return problem_response(500, "the server failed to answer this request; its log says why")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StoreUnavailable, _store_unavailable)
    app.add_exception_handler(Exception, _unexpected)

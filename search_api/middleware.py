"""ASGI middleware of the HTTP shell: a bound on request bodies and the security headers."""

from __future__ import annotations

import asyncio

from search_api.problems import problem_response

MAX_BODY_BYTES = 64 * 1024  # request bodies (review edits are a few hundred bytes)

# Security headers. Every response: no content sniffing (a JSON answer holding a crafted file name
# is never read as HTML). The pages: only their own scripts, styles, images and media; no framing.
# /docs and /redoc load their scripts and styles from this server (fastapi-offline's assets), but
# FastAPI's pages start them with inline script and Swagger UI draws inline SVG and styles.
NOSNIFF = (b"x-content-type-options", b"nosniff")
PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; "
               "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
DOCS_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; "
               "base-uri 'none'; frame-ancestors 'none'")


class BodyLimit:
    """ASGI middleware: 413 for a request body over `limit` bytes, told (Content-Length) or sent
    (chunked); 408 for one not sent whole within `timeout` seconds. Bodies here are small JSON edits,
    so a body is read whole before the app sees it."""

    def __init__(self, app, limit: int = MAX_BODY_BYTES, timeout: float = 10.0,
                 paths: dict[str, int] | None = None):
        self.app = app
        self.limit = limit
        self.timeout = timeout
        self.paths = paths or {}  # larger limits for these exact paths (a photo upload)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.paths.get(scope["path"], self.limit)
        told = dict(scope["headers"]).get(b"content-length", b"")
        if told.isdigit() and int(told) > limit:
            await self._refuse(scope, receive, send, limit)
            return
        body, more = bytearray(), True
        deadline = asyncio.get_running_loop().time() + self.timeout
        while more:
            try:
                message = await asyncio.wait_for(receive(), deadline - asyncio.get_running_loop().time())
            except TimeoutError:
                response = problem_response(408, f"the request body did not arrive within {self.timeout:g} s",
                                            headers={"Connection": "close"})
                await response(scope, receive, send)
                return
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                await self._refuse(scope, receive, send, limit)
                return
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as Starlette expects

        await self.app(scope, replay, send)

    async def _refuse(self, scope, receive, send, limit: int) -> None:
        response = problem_response(413, f"the request body is larger than {limit} bytes",
                                    headers={"Connection": "close"})
        await response(scope, receive, send)


class SecurityHeaders:
    """ASGI middleware: `X-Content-Type-Options: nosniff` on every response; on HTML pages a
    Content-Security-Policy (PAGE_POLICY, or DOCS_POLICY for the API docs), no framing and no referrer."""

    def __init__(self, app, docs_paths: frozenset[str] = frozenset()):
        self.app = app
        self.docs_paths = docs_paths

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                extra = [NOSNIFF]
                content_type = next((value for name, value in headers if name.lower() == b"content-type"), b"")
                if content_type.startswith(b"text/html"):
                    policy = DOCS_POLICY if scope["path"] in self.docs_paths else PAGE_POLICY
                    extra += [(b"content-security-policy", policy.encode()), (b"x-frame-options", b"DENY"),
                              (b"referrer-policy", b"no-referrer")]
                message = {**message, "headers": headers + [h for h in extra if h[0] not in names]}
            await send(message)

        await self.app(scope, receive, with_headers)

"""How the app is served: uvicorn with bounds on slow clients (issue 19, finding 7).

uvicorn closes a kept-alive connection that stays idle, but waits without limit for the headers of
a request (a client that opens a socket and sends nothing, or one byte a minute, holds a descriptor
for ever). `BoundedH11Protocol` closes a connection whose request headers are not complete
`request_timeout` seconds after it began to wait for them; the body has its own bound in
search_api/middleware.py's BodyLimit. `max_connections` makes uvicorn answer 503 beyond that many.
"""

from __future__ import annotations

import asyncio
import socket

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from configs import Settings


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request's headers."""

    header_timeout: float = 10.0

    _header_timer: asyncio.TimerHandle | None = None

    def _waiting_for_headers(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._waiting_for_headers():
            self._arm()  # the start of a next request on a kept-alive connection has a deadline too
        super().data_received(data)
        if not self._waiting_for_headers():
            self._disarm()  # the headers are in; a response may take as long as it takes

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._waiting_for_headers() and not self.transport.is_closing():
            self.transport.close()


def server_config(app, settings: Settings, *, host: str = "127.0.0.1", port: int = 8000, **options) -> uvicorn.Config:
    """uvicorn's settings for `app` with the configured bounds (options go to uvicorn.Config)."""
    limits = settings.server
    protocol = type("BoundedH11Protocol", (BoundedH11Protocol,), {"header_timeout": limits.request_timeout})
    return uvicorn.Config(app, host=host, port=port, http=protocol, timeout_keep_alive=limits.keep_alive_timeout,
                          limit_concurrency=limits.max_connections, **options)


def serve(app, settings: Settings, *, host: str = "127.0.0.1", port: int = 8000,
          sockets: list[socket.socket] | None = None, **options) -> None:
    """Serve until interrupted (on `sockets` when given, already bound)."""
    uvicorn.Server(server_config(app, settings, host=host, port=port, **options)).run(sockets=sockets)

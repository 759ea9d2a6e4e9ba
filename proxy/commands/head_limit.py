"""uvicorn's httptools protocol with bounds on each request's head (request line and headers).

httptools sets no bound: it gathers a header or a URL however long, in copies that grow with
it, before the app sees the request, so a client without a key held a worker's event loop
(a 128 MB header: 49 s, health checks waiting up to 13 s) and its memory. A head larger than
MAX_HEAD_BYTES is answered 431 and the connection closed; the bound is checked before each
read is parsed, so at most one read (uvloop's are 256 KiB at most) passes it.

Nor does uvicorn bound the time a head takes: a connection that sent nothing, or half a head,
was kept for ever, so a few thousand of them (slowloris) used up the worker's sockets. A head
must now come within HEAD_TIMEOUT of the connection or of its first byte, else 408.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from proxy import wire
from proxy.errors import CandorError, HeadTooLarge, RequestTimeout

MAX_HEAD_BYTES = 64 * 1024
HEAD_TIMEOUT = 30.0  # seconds, as nginx's client_header_timeout is 60
PROTOCOL = "proxy.commands.head_limit:BoundedHeadProtocol"  # what `uvicorn.run(http=...)` takes


class BoundedHeadProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that refuses a request whose head runs past MAX_HEAD_BYTES or is not
    all in within HEAD_TIMEOUT."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Bytes read of the current request's head; None from its headers' end to its end.
        self._head: int | None = 0
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        if self._head is not None:
            if self._head > MAX_HEAD_BYTES:
                self._answer(HeadTooLarge(f"request line and headers over {MAX_HEAD_BYTES} bytes"))
                return
            if self._head == 0 and self._head_timer is None:
                self._arm()  # the first bytes of a next request on a kept-alive connection
            self._head += len(data)
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._head = None
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._head = 0  # a next request on this connection starts its own head
        super().on_message_complete()

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT, self._head_late)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self._answer(RequestTimeout(f"request line and headers not in within {HEAD_TIMEOUT} s"))

    def _answer(self, error: CandorError) -> None:
        """`error` in the envelope, before any app saw the request; the connection closes."""
        body = wire.dumps(error.envelope())
        reason = HTTPStatus(error.status).phrase.encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n" % (error.status, reason, len(body)) + body
        )
        self.transport.close()

"""uvicorn's httptools protocol with a bound on each request's head (request line and headers).

httptools sets no bound: it gathers a header or a URL however long, in copies that grow with
it, before the app sees the request, so a client without a key held a worker's event loop
(a 128 MB header: 49 s, health checks waiting up to 13 s) and its memory. A head larger than
MAX_HEAD_BYTES is answered 431 and the connection closed; the bound is checked before each
read is parsed, so at most one read (uvloop's are 256 KiB at most) passes it.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from proxy import wire
from proxy.errors import HeadTooLarge

MAX_HEAD_BYTES = 64 * 1024
PROTOCOL = "proxy.commands.head_limit:BoundedHeadProtocol"  # what `uvicorn.run(http=...)` takes


class BoundedHeadProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that refuses a request whose head runs past MAX_HEAD_BYTES."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Bytes read of the current request's head; None from its headers' end to its end.
        self._head: int | None = 0

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        if self._head is not None:
            if self._head > MAX_HEAD_BYTES:
                self._refuse()
                return
            self._head += len(data)
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._head = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._head = 0  # a next request on this connection starts its own head
        super().on_message_complete()

    def _refuse(self) -> None:
        error = HeadTooLarge(f"the request line and headers are over {MAX_HEAD_BYTES} bytes")
        body = wire.dumps(error.envelope())
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + body
        )
        self.transport.close()

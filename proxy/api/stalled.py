"""Responses that end when their client stops reading them.

uvicorn's `send` waits while the client does not read (transport flow control), and Starlette
hears of a client only when it hangs up: one that stopped reading and kept its connection open
held its response for as long as it liked. Here each send must complete within
`server.send_timeout`; past it the response ends unfinished, which has the server close the
connection. A stream is told (`ClientStalled`: it closes the upstream and records the request).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Mapping

from starlette.responses import Response, StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from proxy.errors import ClientStalled

log = logging.getLogger(__name__)

# uvicorn waits for the client only before it writes, and writes a message's body whole: an
# answer sent in one message went into the server's buffer at once (MBs of it, held for as long
# as the client kept the connection) and nothing ever waited. Sent in pieces, each waits.
PIECE_BYTES = 64 * 1024


def _bounded(send: Send, timeout: float, what: str) -> Send:
    """`send`, raising `ClientStalled` when the client takes none of a message in `timeout`."""

    async def bounded(message: Message) -> None:
        try:
            async with asyncio.timeout(timeout):
                await send(message)
        except TimeoutError:
            raise ClientStalled(f"the client read none of its {what} for {timeout:g} s") from None

    return bounded


class ReadOrLeaveResponse(StreamingResponse):
    """An SSE stream of `chunks` whose client must take each chunk within `send_timeout`
    seconds."""

    def __init__(
        self, chunks: AsyncGenerator[bytes, None], headers: Mapping[str, str], send_timeout: float
    ) -> None:
        super().__init__(chunks, media_type="text/event-stream", headers=headers)
        self._chunks = chunks
        self._send_timeout = send_timeout

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(_bounded(send, self._send_timeout, "stream"))
        except ClientStalled as exc:
            log.warning("stream ended: %s", exc.message)
            # The stream waits at the chunk it could not send: it closes the upstream and
            # records the request as left, with this error (a stream not begun does nothing).
            with contextlib.suppress(ClientStalled):
                await self._chunks.athrow(exc)


class ReadOrLeaveAnswer(Response):
    """A whole JSON answer whose client must take each piece of it (`PIECE_BYTES`) within
    `send_timeout` seconds."""

    media_type = "application/json"

    def __init__(
        self, body: bytes, send_timeout: float, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(body, headers=headers)
        self._send_timeout = send_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        bounded = _bounded(send, self._send_timeout, "answer")
        body = bytes(self.body)
        try:
            start = {"type": "http.response.start", "status": self.status_code}
            await bounded({**start, "headers": self.raw_headers})
            for at in range(0, max(len(body), 1), PIECE_BYTES):
                piece = body[at : at + PIECE_BYTES]
                more = at + PIECE_BYTES < len(body)
                await bounded({"type": "http.response.body", "body": piece, "more_body": more})
        except ClientStalled as exc:
            # The request was recorded and its upstream closed before the answer went out:
            # nothing more to record. Ended unfinished, the connection is closed.
            log.warning("answer ended: %s", exc.message)

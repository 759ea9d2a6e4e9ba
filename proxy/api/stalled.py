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
from typing import Any

from starlette.responses import Response, StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from proxy.errors import ClientStalled

log = logging.getLogger(__name__)

# uvicorn waits for the client only before it writes, and writes a message's body whole: an
# answer sent in one message went into the server's buffer at once (MBs of it, held for as long
# as the client kept the connection) and nothing ever waited. Sent in pieces, each waits.
PIECE_BYTES = 64 * 1024


class _BoundedSend:
    """`send` for one response, raising `ClientStalled` when the client takes none of a message
    within `timeout` seconds. One timer serves the whole response and a send only notes when it
    began: a timer armed per send (as `asyncio.timeout` does) cost 4 µs a chunk, a tenth of a
    core more at 1,000 streams. `close` when the response is done."""

    def __init__(self, send: Send, timeout: float, what: str) -> None:
        self._send, self._timeout, self._what = send, timeout, what
        self._since: float | None = None  # when the send under way began
        self._task: asyncio.Task[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._cancelling = -1  # the task's cancellations before the timer's own; -1: none

    async def __call__(self, message: Message) -> None:
        loop = asyncio.get_running_loop()
        self._since = loop.time()
        self._task = asyncio.current_task()
        if self._timer is None and self._cancelling < 0:
            self._timer = loop.call_at(self._since + self._timeout, self._check, loop)
        try:
            await self._send(message)
        except asyncio.CancelledError:
            # The timer's cancellation (and not another's, the client hanging up say) is the
            # client's stall, as `asyncio.timeout` tells its own from others.
            task, before = self._task, self._cancelling
            if before >= 0 and task is not None and task.uncancel() <= before:
                raise ClientStalled(
                    f"the client read none of its {self._what} for {self._timeout:g} s"
                ) from None
            raise
        finally:
            self._since = None

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        since, now = self._since, loop.time()
        if since is not None and self._task is not None and now >= since + self._timeout - _SLACK:
            self._timer = None
            self._cancelling = self._task.cancelling()
            self._task.cancel()
            return
        # Idle, or a send begun since: look again when it would be overdue.
        self._timer = loop.call_at(
            (now if since is None else since) + self._timeout, self._check, loop
        )

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


# A timer may fire a little before its time (the loop's clock resolution).
_SLACK = 0.005


class ReadOrLeaveResponse(StreamingResponse):
    """An SSE stream of `chunks` whose client must take each chunk within `send_timeout`
    seconds."""

    def __init__(
        self, chunks: AsyncGenerator[bytes, None], headers: Mapping[str, str], send_timeout: float
    ) -> None:
        super().__init__(chunks, media_type="text/event-stream", headers=headers)
        self._chunks = chunks
        self._send_timeout = send_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The stream is started before anything is sent (it yields b"" at once: see
        # `StreamReply`), and closed however the response ends: a generator never started runs
        # no clean-up, so a client that stalled or left before the first chunk (its headers
        # not taken) left the upstream open and the request unrecorded.
        await anext(self._chunks, None)
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._chunks.aclose()

    async def stream_response(self, send: Send) -> None:
        bounded = _BoundedSend(send, self._send_timeout, "stream")
        try:
            await super().stream_response(bounded)
        except ClientStalled as exc:
            log.warning("stream ended: %s", exc.message)
            # The stream waits at the chunk it could not send (or at its start): it closes the
            # upstream and records the request as left, with this error.
            with contextlib.suppress(ClientStalled, StopAsyncIteration):
                await self._chunks.athrow(exc)
        finally:
            bounded.close()


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
        bounded = _BoundedSend(send, self._send_timeout, "answer")
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
        finally:
            bounded.close()

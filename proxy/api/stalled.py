"""A streamed response that ends when its client stops reading it.

uvicorn's `send` waits while the client does not read (transport flow control), and Starlette
hears of a client only when it hangs up: one that stopped reading and kept its connection open
held the request, its upstream request and the stream's pump task for as long as it liked.
Here each send must complete within `server.send_timeout`; past it the stream is told
(`ClientStalled`: it closes the upstream and records the request), and the response ends
unfinished, which has the server close the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Mapping

from starlette.responses import StreamingResponse
from starlette.types import Message, Send

from proxy.errors import ClientStalled

log = logging.getLogger(__name__)


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
        async def bounded(message: Message) -> None:
            try:
                async with asyncio.timeout(self._send_timeout):
                    await send(message)
            except TimeoutError:
                raise ClientStalled(
                    f"the client read none of its stream for {self._send_timeout:g} s"
                ) from None

        try:
            await super().stream_response(bounded)
        except ClientStalled as exc:
            log.warning("stream ended: %s", exc.message)
            # The stream waits at the chunk it could not send: it closes the upstream and
            # records the request as left, with this error (a stream not begun does nothing).
            with contextlib.suppress(ClientStalled):
                await self._chunks.athrow(exc)

"""Stop work for a client that has gone before its response started.

Starlette listens for the client leaving only while it sends a streamed body. A held stream is
read and judged before that, for up to `stream.hold_ms`, and a whole answer is fetched and
judged before its response starts at all; without this watch, a client that left meanwhile kept
the upstream answering (and the request unrecorded) until the hold ended or the answer came.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.requests import Request

from proxy.errors import ClientGone

T = TypeVar("T")


async def unless_client_leaves(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """`work`'s result; if the client hangs up first, `work` is cancelled (its clean-up closes
    the upstream) and `ClientGone` is raised. Call it once the body has been read."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnect(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gone
    if task.cancelled():
        raise ClientGone("the client closed the connection before the answer started")
    return task.result()


async def _disconnect(request: Request) -> None:
    # The body has been read: the next message the server has for us is the hang-up.
    while (await request.receive())["type"] != "http.disconnect":
        pass

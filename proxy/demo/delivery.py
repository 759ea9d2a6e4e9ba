"""Write a `Reply` to an aiohttp response frame by frame, acting out its fault."""

from __future__ import annotations

import asyncio

from aiohttp import web

from proxy.demo.replies import Reply
from proxy.demo.scripts import FaultKind


async def write_reply(request: web.Request, reply: Reply) -> web.StreamResponse:
    """Send the reply; stalls, cuts and broken frames happen as its fault says."""
    fault = reply.fault
    kind = fault.kind if fault is not None else None
    if fault is not None and kind is FaultKind.STALL_HEADERS:
        await asyncio.sleep(fault.seconds)
    response = web.StreamResponse(status=reply.status, headers=reply.headers)
    if not reply.headers.get("Content-Type", "").startswith("text/event-stream"):
        response.content_length = sum(len(f) for f in reply.frames)
    await response.prepare(request)
    if fault is not None and kind is FaultKind.STALL_FIRST_BYTE:
        await asyncio.sleep(fault.seconds)
    for i, frame in enumerate(reply.frames):
        if fault is not None and i == fault.after_chunks:
            if kind is FaultKind.CUT_STREAM:
                close_connection(request)
                return response
            if kind is FaultKind.STALL_MID_STREAM:
                await asyncio.sleep(fault.seconds)
            if kind in (FaultKind.MALFORMED_SSE, FaultKind.INVALID_JSON):
                await response.write(reply.broken)
        if i and reply.delay:
            await asyncio.sleep(reply.delay)
        await response.write(frame)
    await response.write_eof()
    return response


def close_connection(request: web.Request) -> None:
    """Drop the connection mid-body; the client sees an incomplete response."""
    transport = request.transport
    if transport is not None:
        transport.close()

"""The send bound of `proxy/api/stalled.py`, on its own: a stall is told from a hang-up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest
from starlette.types import Message

from proxy.api.stalled import ReadOrLeaveResponse, _BoundedSend
from proxy.errors import ClientStalled


async def never_taken(message: Message) -> None:
    await asyncio.Event().wait()  # a client that reads nothing


async def taken(message: Message) -> None:
    await asyncio.sleep(0)


async def test_a_send_not_taken_in_time_is_a_stall() -> None:
    bounded = _BoundedSend(never_taken, 0.05, "stream")
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(ClientStalled, match=r"read none of its stream for 0\.05 s"):
        await bounded({"type": "http.response.body", "body": b"x"})
    assert 0.04 <= loop.time() - began < 1.0
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # the bound's own cancel is undone
    bounded.close()


async def test_sends_taken_in_time_are_bounded_each_not_all_together() -> None:
    bounded = _BoundedSend(taken, 0.05, "stream")
    for _ in range(20):  # 0.2 s in all, each taken at once
        await bounded({"type": "http.response.body", "body": b"x"})
        await asyncio.sleep(0.01)
    bounded.close()
    assert bounded._timer is None


async def test_a_client_hanging_up_mid_send_is_no_stall() -> None:
    bounded = _BoundedSend(never_taken, 5.0, "stream")
    sending = asyncio.create_task(bounded({"type": "http.response.body", "body": b"x"}))
    await asyncio.sleep(0.02)
    sending.cancel()  # the client left: the server cancels the request
    await asyncio.wait([sending])
    assert sending.cancelled()
    bounded.close()
    assert bounded._timer is None


async def test_a_stream_whose_headers_are_not_taken_is_closed_and_told() -> None:
    # Before, a client that stalled on the headers (its connection's buffer full of an earlier
    # pipelined answer) left a stream never started: its clean-up (closing the upstream,
    # recording the request) never ran.
    seen: list[BaseException] = []

    async def chunks() -> AsyncGenerator[bytes, None]:
        try:
            yield b""  # started (see `StreamReply`)
            yield b"data: {}\n\n"
        except BaseException as exc:
            seen.append(exc)
            raise

    async def receive() -> Message:
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    response = ReadOrLeaveResponse(chunks(), {}, send_timeout=0.05)
    scope = {"type": "http", "asgi": {"spec_version": "2.4"}}
    await asyncio.wait_for(response(scope, receive, never_taken), 2.0)
    assert [type(exc) for exc in seen] == [ClientStalled]


async def test_a_stream_is_closed_when_its_client_leaves_before_the_first_chunk() -> None:
    closed = asyncio.Event()

    async def chunks() -> AsyncGenerator[bytes, None]:
        try:
            yield b""
            yield b"data: {}\n\n"
        finally:
            closed.set()

    async def gone(message: Message) -> None:
        raise OSError("connection reset")  # uvicorn's send once the client is gone

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    response = ReadOrLeaveResponse(chunks(), {}, send_timeout=5.0)
    with pytest.raises(Exception):  # noqa: B017 (Starlette's ClientDisconnect)
        await response({"type": "http", "asgi": {"spec_version": "2.4"}}, receive, gone)
    assert closed.is_set()

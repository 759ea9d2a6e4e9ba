"""The send bound of `proxy/api/stalled.py`, on its own: a stall is told from a hang-up."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message

from proxy.api.stalled import _BoundedSend
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

"""Recordings: shielded from the request's cancellation, bounded in time, waited for by drain."""

from __future__ import annotations

import asyncio

import pytest

from proxy.outcome import Outcome
from proxy.pipeline.recording import Recordings


class SlowObserver:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = asyncio.Event()
        self.observed: list[Outcome] = []

    async def observe(self, outcome: Outcome) -> None:
        self.started.set()
        await asyncio.sleep(self.seconds)
        self.observed.append(outcome)


def outcome() -> Outcome:
    return Outcome("r1", "qwen", "default", False, [])


async def test_a_cancelled_request_leaves_its_recording_be_and_drain_waits_for_it() -> None:
    observer = SlowObserver(0.2)
    recordings = Recordings(observer)
    done = outcome()
    recordings.begin(done)
    request = asyncio.create_task(recordings.record(done))
    await observer.started.wait()
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    assert observer.observed == []
    await recordings.drain()
    assert observer.observed == [done]


async def test_drain_waits_for_a_request_still_ending() -> None:
    observer = SlowObserver(0.0)
    recordings = Recordings(observer)
    ending = outcome()
    recordings.begin(ending)

    async def end_later() -> None:
        await asyncio.sleep(0.1)
        await recordings.record(ending)

    ender = asyncio.create_task(end_later())
    await recordings.drain()
    assert observer.observed == [ending]
    await ender


async def test_a_recording_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    observer = SlowObserver(60)
    recordings = Recordings(observer, seconds=0.05)
    await asyncio.wait_for(recordings.record(outcome()), 5)
    assert observer.observed == [] and "given up" in caplog.text

"""A stream's timeouts: `first_byte` bounds the wait for its first chunk, `idle` each later gap
(a short `first_byte` must not cut a stream that pauses between chunks for less than `idle`),
and `total` all of it, the wait for the upstream's headers included."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

from proxy.settings import ModelRoute, Timeouts
from tests.raw_upstream import RawReply, RawUpstream, answer_frames, chunk
from tests.servers import CandorServer, running_candor

pytestmark = pytest.mark.e2e

TEXT = "Paris is the capital of France."
ASK = [{"role": "user", "content": "What is the capital of France?"}]
GAP = 0.8  # longer than first_byte, shorter than idle


@pytest.fixture(scope="module")
def candor() -> Iterator[CandorServer]:
    raw = RawUpstream(
        {
            "pause-between": RawReply([chunk("Paris "), GAP, *answer_frames(TEXT)]),
            "slow-first": RawReply([GAP, *answer_frames(TEXT)]),
        }
    ).start()
    routes = {
        name: ModelRoute(base_url=raw.base_url, upstream_model=name)
        for name in ("pause-between", "slow-first")
    }
    timeouts = Timeouts(connect=1, first_byte=0.3, idle=3, total=10)
    with running_candor(models=routes, timeouts=timeouts) as server:
        yield server
    raw.stop()


def frames(server: CandorServer, model: str) -> list[str]:
    with httpx.Client(timeout=10) as http:
        response = http.post(
            f"{server.base_url}/chat/completions",
            json={"model": model, "messages": ASK, "stream": True},
        )
    return [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]


def test_a_pause_between_chunks_waits_up_to_idle(candor: CandorServer) -> None:
    started = time.monotonic()
    sent = frames(candor, "pause-between")
    assert sent[-1] == "[DONE]", sent[-1]
    assert time.monotonic() - started >= GAP


def test_the_first_chunk_waits_up_to_first_byte(candor: CandorServer) -> None:
    started = time.monotonic()
    sent = frames(candor, "slow-first")
    assert time.monotonic() - started < GAP
    error = orjson.loads(sent[-1])["error"]
    assert error["code"] == "upstream_timeout" and "first chunk" in error["message"]


def test_total_bounds_the_wait_for_a_streams_headers() -> None:
    # The native client waited connect + first_byte for the headers, past a shorter total.
    raw = RawUpstream({"slow-head": RawReply(answer_frames(TEXT), head_delay=2.0)}).start()
    route = ModelRoute(
        base_url=raw.base_url,
        upstream_model="slow-head",
        timeouts=Timeouts(connect=1, first_byte=5, idle=3, total=0.5),
    )
    try:
        with (
            running_candor(models={"slow-head": route}) as server,
            httpx.Client(timeout=10) as http,
        ):
            started = time.monotonic()
            response = http.post(
                f"{server.base_url}/chat/completions",
                json={"model": "slow-head", "messages": ASK, "stream": True},
            )
            took = time.monotonic() - started
    finally:
        raw.stop()
    assert took < 1.5, took
    assert response.status_code == 504, response.text
    assert response.json()["error"]["code"] == "upstream_timeout"

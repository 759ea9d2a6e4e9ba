"""Stopping `candor serve` (SIGTERM, as a rolling deploy does): streams in flight finish
within `server.shutdown_grace` seconds; past it they are cut."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.raw_upstream import RawReply, RawUpstream, answer_frames, chunk
from tests.servers import CandorProcess

pytestmark = pytest.mark.e2e

TEXT = "Paris is the capital of France."
PAUSE = 1.5  # the stream's silence after its first word, while Candor is told to stop


@pytest.fixture(scope="module")
def upstream() -> Iterator[RawUpstream]:
    raw = RawUpstream({"slow": RawReply([chunk("Paris "), PAUSE, *answer_frames(TEXT)])}).start()
    yield raw
    raw.stop()


def stopped_mid_stream(
    upstream: RawUpstream, tmp_path: Path, grace: int, workers: int = 1
) -> tuple[str, float]:
    """What the client received of a stream during which Candor got SIGTERM, and how long
    Candor took to exit after it."""
    config = {
        "server": {"shutdown_grace": grace, "workers": workers},
        "models": {"slow": {"base_url": upstream.base_url}},
    }
    process = CandorProcess(config, tmp_path).start()
    received: list[str] = []
    first = threading.Event()

    def read() -> None:
        body = {"model": "slow", "messages": [{"role": "user", "content": "Capital?"}]}
        try:
            with (
                httpx.Client(timeout=10) as http,
                http.stream(
                    "POST", f"{process.base_url}/chat/completions", json={**body, "stream": True}
                ) as r,
            ):
                for text in r.iter_text():
                    received.append(text)
                    first.set()
        except httpx.HTTPError:
            pass  # cut off
        first.set()

    reader = threading.Thread(target=read)
    reader.start()
    assert first.wait(10)
    stopping = time.monotonic()
    process.stop()  # SIGTERM, then waits for the exit
    took = time.monotonic() - stopping
    reader.join(timeout=10)
    return "".join(received), took


@pytest.mark.parametrize("workers", [1, 2])
def test_a_stream_in_flight_finishes_within_the_grace(
    upstream: RawUpstream, tmp_path: Path, workers: int
) -> None:
    sent, took = stopped_mid_stream(upstream, tmp_path, grace=10, workers=workers)
    assert "data: [DONE]" in sent, sent
    assert took < 10, took


def test_a_stream_past_the_grace_is_cut(upstream: RawUpstream, tmp_path: Path) -> None:
    sent, took = stopped_mid_stream(upstream, tmp_path, grace=0)
    assert "data: [DONE]" not in sent, sent
    assert took < PAUSE, took

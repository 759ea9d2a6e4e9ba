"""A client that goes away mid-stream, while its stream is held, or while its whole answer is
being fetched, cancels the upstream request."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from proxy.settings import ModelRoute, Timeouts
from tests.e2e.conftest import start_candor
from tests.raw_upstream import ThreadedServer
from tests.servers import CandorServer

pytestmark = pytest.mark.e2e
REPO_POLICIES = Path(__file__).resolve().parents[2] / "policies"


class EndlessUpstream(ThreadedServer):
    """Streams a chunk every 50 ms until its client hangs up, and notes when that happened; a
    whole answer it thinks about for a minute (hanging up ends that too)."""

    def __init__(self) -> None:
        super().__init__()
        self.hung_up = threading.Event()
        self.hung_up_at = 0.0
        self.started = threading.Event()

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if not (await request.json()).get("stream"):
            return await self._whole()
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        self.started.set()
        chunk = {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "endless",
            "choices": [{"index": 0, "delta": {"content": "word "}, "finish_reason": None}],
        }
        try:
            for _ in range(2000):
                await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
                await asyncio.sleep(0.05)
        except (ConnectionResetError, asyncio.CancelledError):
            self.hung_up_at = time.monotonic()
            self.hung_up.set()
            raise
        return response

    async def _whole(self) -> web.Response:
        self.started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.hung_up_at = time.monotonic()
            self.hung_up.set()
            raise
        return web.json_response({"error": {"message": "the test should have ended by now"}})


def chat_request(*, stream: bool) -> bytes:
    """The raw HTTP request for model `endless`, to send on a socket the test then closes."""
    body = orjson.dumps(
        {"model": "endless", "messages": [{"role": "user", "content": "go"}], "stream": stream}
    )
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: candor\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )


def recorded(server: CandorServer, route: str) -> dict[str, float]:
    """The requests counted for model `endless` on `route`, by outcome (once one is)."""
    deadline = time.monotonic() + 2
    while True:
        counts = {}
        for line in httpx.get(f"{server.url}/metrics").text.splitlines():
            ours = line.startswith("candor_requests_total{") and 'model="endless"' in line
            if ours and f'route="{route}"' in line and float(line.split()[-1]):
                outcome = line.split('outcome="')[1].split('"')[0]
                counts[outcome] = float(line.split()[-1])
        if counts or time.monotonic() > deadline:
            return counts
        time.sleep(0.05)


@pytest.fixture
def endless() -> Iterator[EndlessUpstream]:
    server = EndlessUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def candor_for(
    monkeypatch: pytest.MonkeyPatch, upstream: object, endless: EndlessUpstream
) -> Iterator[Callable[..., CandorServer]]:
    """Starts Candor with model `endless` under `policy`, and the other settings given."""
    started: list[CandorServer] = []

    def start(policy: str = "default", **settings: Any) -> CandorServer:
        route = ModelRoute(base_url=f"http://127.0.0.1:{endless.port}/v1", policy=policy)
        models = {"endless": route}
        started.append(start_candor(monkeypatch, upstream, models=models, **settings))  # type: ignore[arg-type]
        return started[-1]

    yield start
    for server in started:
        server.stop()


def test_client_disconnect_cancels_the_upstream_within_a_second(
    candor_for: Callable[..., CandorServer], endless: EndlessUpstream
) -> None:
    request = chat_request(stream=True)
    candor = candor_for()
    with socket.create_connection(("127.0.0.1", candor.port), timeout=5) as client:
        client.sendall(request)
        received = b""
        while received.count(b"word") < 3:
            received += client.recv(4096)
        assert endless.started.is_set()
        gone_at = time.monotonic()
    assert endless.hung_up.wait(timeout=2), "the upstream was never told"
    assert endless.hung_up_at - gone_at < 1.0


@pytest.mark.parametrize(("stream", "route"), [(True, "chat_stream"), (False, "chat")])
def test_client_leaving_before_its_answer_starts_cancels_the_upstream(
    candor_for: Callable[..., CandorServer],
    endless: EndlessUpstream,
    tmp_path: Path,
    stream: bool,
    route: str,
) -> None:
    if stream:  # held (for longer than the test)
        (tmp_path / "detector").symlink_to(REPO_POLICIES / "detector")
        (tmp_path / "default.yaml").write_text("action: flag\n")
        (tmp_path / "held.yaml").write_text(
            "action: block\nstream: {hold_chars: 20000, hold_ms: 20000}\n"
        )
        candor = candor_for("held", policies_dir=tmp_path)
    else:  # long timeouts: only the client leaving can end the wait for the answer early
        candor = candor_for(timeouts=Timeouts(connect=2, first_byte=30, idle=30, total=60))
    with socket.create_connection(("127.0.0.1", candor.port), timeout=5) as client:
        client.sendall(chat_request(stream=stream))
        assert endless.started.wait(timeout=5)
        time.sleep(0.3)  # held, or the upstream still thinking: nothing sent back yet
        gone_at = time.monotonic()
    assert endless.hung_up.wait(timeout=5), "the upstream was never told"
    assert endless.hung_up_at - gone_at < 1.0
    # Recorded as the client leaving (before, a pass; it is no error either).
    assert recorded(candor, route) == {"client_gone": 1.0}

"""A client that goes away mid-stream, while its stream is held, or while its whole answer is
being fetched, cancels the upstream request."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from aiohttp import web

from proxy.settings import ModelRoute, Timeouts
from tests.e2e.conftest import start_candor
from tests.servers import CandorServer

pytestmark = pytest.mark.e2e
REPO_POLICIES = Path(__file__).resolve().parents[2] / "policies"


class EndlessUpstream:
    """Streams a chunk every 50 ms until its client hangs up, and notes when that happened; a
    whole answer it thinks about for a minute (hanging up ends that too)."""

    def __init__(self) -> None:
        self.hung_up = threading.Event()
        self.hung_up_at = 0.0
        self.started = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

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

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def start(self) -> EndlessUpstream:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@pytest.fixture
def endless() -> Iterator[EndlessUpstream]:
    server = EndlessUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def candor_endless(
    monkeypatch: pytest.MonkeyPatch, upstream: object, endless: EndlessUpstream
) -> Iterator[CandorServer]:
    route = ModelRoute(base_url=f"http://127.0.0.1:{endless.port}/v1")
    server = start_candor(monkeypatch, upstream, models={"endless": route})  # type: ignore[arg-type]
    yield server
    server.stop()


def test_client_disconnect_cancels_the_upstream_within_a_second(
    candor_endless: CandorServer, endless: EndlessUpstream
) -> None:
    body = orjson.dumps(
        {"model": "endless", "messages": [{"role": "user", "content": "go"}], "stream": True}
    )
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: candor\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    with socket.create_connection(("127.0.0.1", candor_endless.port), timeout=5) as client:
        client.sendall(request)
        received = b""
        while received.count(b"word") < 3:
            received += client.recv(4096)
        assert endless.started.is_set()
        gone_at = time.monotonic()
    assert endless.hung_up.wait(timeout=2), "the upstream was never told"
    assert endless.hung_up_at - gone_at < 1.0


@pytest.fixture
def candor_holding(
    monkeypatch: pytest.MonkeyPatch,
    upstream: object,
    endless: EndlessUpstream,
    tmp_path: Path,
) -> Iterator[CandorServer]:
    (tmp_path / "detector").symlink_to(REPO_POLICIES / "detector")
    (tmp_path / "default.yaml").write_text("action: flag\n")
    (tmp_path / "held.yaml").write_text(
        "action: block\nstream: {hold_chars: 20000, hold_ms: 20000}\n"
    )
    route = ModelRoute(base_url=f"http://127.0.0.1:{endless.port}/v1", policy="held")
    server = start_candor(
        monkeypatch,
        upstream,  # type: ignore[arg-type]
        models={"endless": route},
        policies_dir=tmp_path,
    )
    yield server
    server.stop()


def test_client_leaving_during_the_hold_cancels_the_upstream(
    candor_holding: CandorServer, endless: EndlessUpstream
) -> None:
    body = orjson.dumps(
        {"model": "endless", "messages": [{"role": "user", "content": "go"}], "stream": True}
    )
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: candor\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    with socket.create_connection(("127.0.0.1", candor_holding.port), timeout=5) as client:
        client.sendall(request)
        assert endless.started.wait(timeout=5)
        time.sleep(0.3)  # held: nothing has been sent back yet
        gone_at = time.monotonic()
    assert endless.hung_up.wait(timeout=5), "the upstream was never told"
    assert endless.hung_up_at - gone_at < 1.0


@pytest.fixture
def candor_patient(
    monkeypatch: pytest.MonkeyPatch, upstream: object, endless: EndlessUpstream
) -> Iterator[CandorServer]:
    # Long timeouts: only the client leaving can end the wait for the whole answer early.
    route = ModelRoute(base_url=f"http://127.0.0.1:{endless.port}/v1")
    server = start_candor(
        monkeypatch,
        upstream,  # type: ignore[arg-type]
        models={"endless": route},
        timeouts=Timeouts(connect=2, first_byte=30, idle=30, total=60),
    )
    yield server
    server.stop()


def _recorded(server: CandorServer) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    prefix = "candor_requests_total{"
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith(prefix) and 'model="endless"' in line and 'route="chat"' in line
    )


def test_client_leaving_during_a_whole_answer_cancels_the_upstream(
    candor_patient: CandorServer, endless: EndlessUpstream
) -> None:
    body = orjson.dumps({"model": "endless", "messages": [{"role": "user", "content": "go"}]})
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: candor\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    with socket.create_connection(("127.0.0.1", candor_patient.port), timeout=5) as client:
        client.sendall(request)
        assert endless.started.wait(timeout=5)
        time.sleep(0.3)  # the upstream is still thinking
        gone_at = time.monotonic()
    assert endless.hung_up.wait(timeout=5), "the upstream was never told"
    assert endless.hung_up_at - gone_at < 1.0
    deadline = time.monotonic() + 2
    while not _recorded(candor_patient) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _recorded(candor_patient) == 1, "the request was not recorded"

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

from proxy.app import create_app
from proxy.settings import ModelRoute, Settings, Timeouts
from tests.e2e.conftest import start_candor
from tests.raw_upstream import ThreadedServer
from tests.servers import CandorServer, pass_through_auth

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


def chat_request(*, stream: bool, model: str = "endless", text: str = "go") -> bytes:
    """The raw HTTP request for `model`, to send on a socket the test then closes."""
    body = orjson.dumps(
        {"model": model, "messages": [{"role": "user", "content": text}], "stream": stream}
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


@pytest.mark.parametrize("held", [False, True])
def test_client_disconnect_cancels_the_upstream_within_a_second(
    candor_for: Callable[..., CandorServer], endless: EndlessUpstream, tmp_path: Path, held: bool
) -> None:
    # Starlette cancels the request's task again at each of its waits: the upstream's close,
    # in the stream's clean-up, must not be cut short by it, held or not, any time.
    if held:
        (tmp_path / "detector").symlink_to(REPO_POLICIES / "detector")
        (tmp_path / "default.yaml").write_text("action: flag\n")
        (tmp_path / "held.yaml").write_text("action: block\nstream: {hold_chars: 5}\n")
        candor = candor_for("held", policies_dir=tmp_path)
    else:
        candor = candor_for()
    request = chat_request(stream=True)
    for attempt in range(20):
        endless.hung_up.clear()
        with socket.create_connection(("127.0.0.1", candor.port), timeout=5) as client:
            client.sendall(request)
            received = b""
            while received.count(b"word") < 3:
                received += client.recv(4096)
            gone_at = time.monotonic()
        assert endless.hung_up.wait(timeout=2), f"the upstream was never told ({attempt})"
        assert endless.hung_up_at - gone_at < 1.0, attempt


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


async def test_client_leaving_between_the_hold_and_the_body_closes_and_records(
    endless: EndlessUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The held stream was released (clean so far), then the client left before the server
    # started its body (the hold's watch had ended, the response's own had not begun): the
    # upstream is still closed at once and the request recorded as the client leaving.
    (tmp_path / "detector").symlink_to(REPO_POLICIES / "detector")
    (tmp_path / "default.yaml").write_text("action: block\nstream: {hold_chars: 5}\n")
    route = ModelRoute(base_url=f"http://127.0.0.1:{endless.port}/v1")
    settings = Settings(
        models={"endless": route},
        policies_dir=tmp_path,
        auth=pass_through_auth(),
        timeouts=Timeouts(connect=2, first_byte=5, idle=5, total=60),
    )
    app = create_app(settings)
    body = orjson.dumps(
        {"model": "endless", "messages": [{"role": "user", "content": "go"}], "stream": True}
    )
    calls = 0

    async def receive() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            return {"type": "http.request", "body": body, "more_body": False}
        if calls == 2:  # the hold's watch: the client is still there while it lasts
            await asyncio.Event().wait()
        return {"type": "http.disconnect"}  # gone by the time the body would start

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"host", b"candor")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    async with app.router.lifespan_context(app):
        await asyncio.wait_for(app(scope, receive, send), 10)
        assert await asyncio.to_thread(endless.hung_up.wait, 2), "the upstream was never told"
        metrics = app.state.services.metrics.render()[0].decode()
    counted = [
        line
        for line in metrics.splitlines()
        if line.startswith("candor_requests_total{") and 'model="endless"' in line
    ]
    assert any('outcome="client_gone"' in line for line in counted), counted

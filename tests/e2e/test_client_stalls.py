"""A client that stops reading its stream but keeps the connection open: past
`server.send_timeout` the stream ends, the upstream request is aborted, and the request is
recorded as the client leaving, with error `client_stalled`. A whole answer (chat or
embeddings) its client stops reading ends past `server.send_timeout` too."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest
from aiohttp import web

from proxy.demo.answers import CANNED_REFUSAL
from proxy.settings import ModelRoute, ServerSettings, Settings, Timeouts
from tests.e2e.test_disconnect import chat_request
from tests.raw_upstream import RawReply, RawUpstream, ThreadedServer, whole_answer
from tests.servers import CandorServer, audit_events, pass_through_auth

pytestmark = pytest.mark.e2e

SEND_TIMEOUT = 0.5
ASK = "What happened at Tiananmen Square in 1989?"


class FloodUpstream(ThreadedServer):
    """Streams a refusal, then more text every 2 ms (500 KB/s), until its client hangs up,
    and notes when that happened."""

    def __init__(self) -> None:
        super().__init__()
        self.hung_up = threading.Event()
        self.hung_up_at = 0.0

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)

        def event(text: str) -> bytes:
            choice = {"index": 0, "delta": {"content": text}, "finish_reason": None}
            data = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "flood"}
            return b"data: " + orjson.dumps({**data, "choices": [choice]}) + b"\n\n"

        try:
            await response.write(event(CANNED_REFUSAL))
            filler = event(" " + "and so on " * 100)
            for _ in range(15_000):  # 30 s of it: past the test's wait
                await response.write(filler)
                await asyncio.sleep(0.002)
        except (ConnectionResetError, asyncio.CancelledError):
            self.hung_up_at = time.monotonic()
            self.hung_up.set()
            raise
        return response


@pytest.fixture
def flood() -> Iterator[FloodUpstream]:
    server = FloodUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def candor(flood: FloodUpstream) -> Iterator[CandorServer]:
    settings = Settings(
        models={"flood": ModelRoute(base_url=f"http://127.0.0.1:{flood.port}/v1")},
        server=ServerSettings(send_timeout=SEND_TIMEOUT),
        timeouts=Timeouts(connect=2, first_byte=5, idle=5, total=60),
        auth=pass_through_auth(),
    )
    # Small kernel buffers on both sides: the client's stall shows within ~100 KB, not MBs.
    server = CandorServer(settings, send_buffer=16_384).start()
    yield server
    server.stop()


def test_a_client_that_stops_reading_is_cut_off_and_recorded(
    candor: CandorServer, flood: FloodUpstream
) -> None:
    # Before, uvicorn's send waited as long as the client kept its connection and read
    # nothing: the request, its upstream and its pump were held until `timeouts.total`.
    with socket.socket() as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting
        client.settimeout(5)
        client.connect(("127.0.0.1", candor.port))
        client.sendall(chat_request(stream=True, model="flood", text=ASK))
        head = b""
        while b"\r\n\r\n" not in head:
            head += client.recv(1024)
        assert head.startswith(b"HTTP/1.1 200")
        stopped_at = time.monotonic()  # from now on it reads nothing, and stays connected
        assert flood.hung_up.wait(timeout=10), "the upstream was never told"
        took = flood.hung_up_at - stopped_at
        assert SEND_TIMEOUT <= took < SEND_TIMEOUT + 2.0, took
        # Recorded as a client that left, with why (judged on what arrived: a refusal).
        (event,) = audit_events(candor.url, model="flood")
    assert event["client_left"] is True and event["error"] == "client_stalled"
    assert event["streamed"] is True and event["action"] == "flag"
    # The client's doing, not Candor's: it keeps its action's outcome, as a client that hangs up
    # midway does (counted as `error`, it would feed the error-rate alert).
    assert event["outcome"] == "flagged"
    counted = [
        line
        for line in httpx.get(f"{candor.url}/metrics").text.splitlines()
        if line.startswith("candor_requests_total{") and 'route="chat_stream"' in line
    ]
    assert 'candor_requests_total{model="flood",outcome="flagged",route="chat_stream"} 1.0' in (
        counted
    )


BIG = 2_000_000  # bytes of answer: far past the kernel's and the server's buffers
BIG_ANSWERS = {
    "big": RawReply([], whole=whole_answer("and so on " * (BIG // 10))),
    "big-embedding": RawReply(
        [], whole=orjson.dumps({"object": "list", "data": [{"embedding": [0.125] * (BIG // 6)}]})
    ),
}


@pytest.fixture
def big_candor() -> Iterator[CandorServer]:
    upstream = RawUpstream(BIG_ANSWERS).start()
    settings = Settings(
        models={name: ModelRoute(base_url=upstream.base_url) for name in BIG_ANSWERS},
        server=ServerSettings(send_timeout=SEND_TIMEOUT),
        auth=pass_through_auth(),
        detector="none",  # the answer's size is what matters, not its words
    )
    server = CandorServer(settings, send_buffer=16_384).start()
    yield server
    server.stop()
    upstream.stop()


def whole_request(path: str, body: dict[str, object]) -> bytes:
    data = orjson.dumps(body)
    return (
        f"POST {path} HTTP/1.1\r\nhost: candor\r\ncontent-type: application/json\r\n"
        f"content-length: {len(data)}\r\n\r\n".encode()
        + data
    )


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"model": "big", "messages": [{"role": "user", "content": "go"}]}),
        ("/v1/embeddings", {"model": "big-embedding", "input": "go"}),
    ],
    ids=["chat", "embeddings"],
)
def test_a_client_that_stops_reading_a_whole_answer_is_cut_off(
    big_candor: CandorServer,
    caplog: pytest.LogCaptureFixture,
    path: str,
    body: dict[str, object],
) -> None:
    # Before, the whole answer went into the server's buffer at once and nothing waited: the
    # connection and its megabytes were held for as long as the client kept it open.
    caplog.set_level(logging.WARNING, logger="proxy.api.stalled")
    with socket.socket() as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting
        client.settimeout(5)
        client.connect(("127.0.0.1", big_candor.port))
        client.sendall(whole_request(path, body))
        got = b""
        while b"\r\n\r\n" not in got:
            got += client.recv(1024)
        stopped_at = time.time()  # from now on it reads nothing, and stays connected
        head, _, got = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        assert length > BIG
        time.sleep(SEND_TIMEOUT + 1.5)
        # Read now, it gets what was sent before the cut, then the server's close: the rest of
        # the answer never comes (had the server still been waiting, it would).
        while chunk := client.recv(65536):
            got += chunk
    assert len(got) < length // 4, len(got)
    (warned,) = [r for r in caplog.records if r.name == "proxy.api.stalled"]
    assert (
        warned.getMessage()
        == f"answer ended: the client read none of its answer for {SEND_TIMEOUT:g} s"
    )
    # Its bound runs from the send that waited, which began just before the client had the head.
    assert SEND_TIMEOUT - 0.1 <= warned.created - stopped_at < SEND_TIMEOUT + 1.5

"""A request's head (request line and headers) is bounded under `candor serve`."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.responses import PlainTextResponse

from proxy.commands import head_limit
from proxy.commands.head_limit import MAX_HEAD_BYTES, BoundedHeadProtocol
from tests.servers import CandorProcess, free_socket


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CandorProcess]:
    config = {"models": {"m1": {"base_url": "http://127.0.0.1:9/v1"}}}
    process = CandorProcess(config, tmp_path_factory.mktemp("head")).start()
    yield process
    process.stop()


def exchange(port: int, *requests: bytes) -> bytes:
    """Send each request on one connection; everything Candor answered until it closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            for request in requests:
                sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before it was all sent
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def get(header_bytes: int, *, close: bool = True) -> bytes:
    filler = b"a" * header_bytes
    last = b"connection: close\r\n" if close else b""
    return b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-filler: " + filler + b"\r\n" + last + b"\r\n"


def test_a_head_past_the_bound_is_431_at_once(served: CandorProcess) -> None:
    # Before, httptools gathered a header of any size: a 128 MB one held the worker's event
    # loop for 49 s (health checks waiting up to 13 s), from a client with no key.
    started = time.monotonic()
    answer = exchange(served.port, get(32 * 1024 * 1024))
    assert time.monotonic() - started < 5
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 ")
    assert json.loads(body)["error"]["code"] == "request_header_fields_too_large"


def test_heads_under_the_bound_are_served_one_after_another(served: CandorProcess) -> None:
    # Each request on a kept-alive connection has its own bound: two heads of 3/4 of it pass.
    size = MAX_HEAD_BYTES * 3 // 4
    answer = exchange(served.port, get(size, close=False), get(size))
    assert answer.count(b"HTTP/1.1 200 OK") == 2, answer[:200]


def test_a_large_body_is_not_part_of_the_head(served: CandorProcess) -> None:
    body = json.dumps({"model": "nope", "messages": [{"role": "user", "content": "x" * 10**6}]})
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    answer = exchange(served.port, request + body.encode())
    assert answer.startswith(b"HTTP/1.1 404 "), answer[:200]  # read and judged: no such model


@pytest.fixture
def quick_head(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A bare app served through the protocol with HEAD_TIMEOUT at 0.5 s: its port."""
    monkeypatch.setattr(head_limit, "HEAD_TIMEOUT", 0.5)
    sock = free_socket()
    config = uvicorn.Config(
        PlainTextResponse("ok"), http=BoundedHeadProtocol, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield sock.getsockname()[1]
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.mark.parametrize("sent", [b"", b"GET / HTTP/1.1\r\nhost: x\r\nx-slow: "])
def test_a_head_that_does_not_come_in_time_is_408(quick_head: int, sent: bytes) -> None:
    # Before, a connection that sent nothing or half a head was kept for ever (slowloris).
    started = time.monotonic()
    answer = exchange(quick_head, sent)
    assert 0.4 < time.monotonic() - started < 5
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 Request Timeout")
    assert json.loads(body)["error"]["code"] == "request_timeout"


def test_the_wait_for_a_head_starts_again_on_a_kept_alive_connection(quick_head: int) -> None:
    with socket.create_connection(("127.0.0.1", quick_head), timeout=10) as sock:
        for _ in range(3):  # each request well within its own wait, 1 s in all
            time.sleep(0.3)
            sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            answer = b""
            while not answer.endswith(b"\r\n\r\nok"):
                answer += sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200 OK")

"""A request's head (request line and headers) is bounded under `candor serve`."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from proxy.commands.head_limit import MAX_HEAD_BYTES
from tests.servers import CandorProcess


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

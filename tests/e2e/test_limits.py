"""Bad input is refused cleanly and a stream cannot outlive the upstream's total timeout."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import openai
import pytest

from proxy.demo.upstream import ScriptedUpstream
from proxy.settings import ModelRoute, Timeouts
from tests.e2e.conftest import start_candor
from tests.servers import CandorServer

pytestmark = pytest.mark.e2e
ASK = [{"role": "user", "content": "Tell me a fact."}]


def post_raw(server: CandorServer, raw: bytes) -> httpx.Response:
    with httpx.Client(timeout=15) as http:
        return http.post(
            f"{server.base_url}/chat/completions",
            content=raw,
            headers={"content-type": "application/json"},
        )


def test_more_than_max_messages_is_400(candor: CandorServer) -> None:
    many = b'{"model": "fixed", "messages": [' + b",".join(
        [b'{"role": "user", "content": "hi"}'] * 2001
    )
    response = post_raw(candor, many + b"]}")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "messages" and error["code"] == "invalid_request"


@pytest.mark.parametrize("depth", [300, 10_000, 1_000_000])
def test_deeply_nested_body_is_400_and_the_server_lives(candor: CandorServer, depth: int) -> None:
    # 300 levels used to pass the parser and fail re-serialising for the upstream (a 500);
    # 1,000,000 (2 MB, under the body limit) crashed the parser.
    nested = b"[" * depth + b"]" * depth
    raw = b'{"model": "fixed", "messages": [{"role": "user", "content": "x"}], "x": '
    response = post_raw(candor, raw + nested + b"}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    with httpx.Client(timeout=5) as http:
        assert http.get(f"{candor.url}/healthz").status_code == 200


@pytest.fixture
def short_total(
    monkeypatch: pytest.MonkeyPatch, upstream: ScriptedUpstream
) -> Iterator[CandorServer]:
    timeouts = Timeouts(connect=1, first_byte=1.0, idle=1.0, total=0.5)
    server = start_candor(monkeypatch, upstream, timeouts=timeouts)
    yield server
    server.stop()


def test_a_stream_longer_than_total_ends_with_an_error_event(short_total: CandorServer) -> None:
    # slow-stream sends a chunk every 50 ms for about 2 s: never idle, but past `total`.
    started = time.monotonic()
    with httpx.Client(timeout=10) as http:
        response = http.post(
            f"{short_total.base_url}/chat/completions",
            json={"model": "slow-stream", "messages": ASK, "stream": True},
        )
    elapsed = time.monotonic() - started
    assert response.status_code == 200 and elapsed < 1.5
    frames = [line for line in response.text.splitlines() if line.startswith("data: ")]
    assert len(frames) > 1  # some of the answer came before the deadline
    assert '"code":"upstream_timeout"' in frames[-1] and "total time" in frames[-1]
    assert "[DONE]" not in response.text
    with openai.OpenAI(base_url=short_total.base_url, api_key="k", max_retries=0) as sdk:
        stream = sdk.chat.completions.create(model="slow-stream", messages=ASK, stream=True)
        with pytest.raises(openai.APIError):
            for _ in stream:
                pass


def test_an_answer_of_deeply_nested_json_is_judged_not_a_500(candor: CandorServer) -> None:
    # Asked for JSON, the detector checks the answer parses: 5,000 levels blew its stack.
    nested = "[" * 5000 + "]" * 5000
    with httpx.Client(timeout=15) as http:
        response = http.post(
            f"{candor.base_url}/chat/completions",
            json={
                "model": "echo",
                "messages": [{"role": "user", "content": nested}],
                "response_format": {"type": "json_object"},
            },
        )
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == nested


class _DeepUpstream(BaseHTTPRequestHandler):
    """Answers every chat request with JSON nested 1,000,000 levels: whole or as an SSE event."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        deep = b'{"object": "chat.completion", "x": ' + b"[" * 10**6 + b"]" * 10**6 + b"}"
        stream = body.get("stream") is True
        payload = b"data: " + deep + b"\n\n" if stream else deep
        self.send_response(200)
        self.send_header("content-type", "text/event-stream" if stream else "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def deep_upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DeepUpstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_answering_deeply_nested_json_is_a_clean_502(
    monkeypatch: pytest.MonkeyPatch, upstream: ScriptedUpstream, deep_upstream: str, stream: bool
) -> None:
    # Parsed as is, it crashed Candor's process (orjson recurses).
    routes = {"deep": ModelRoute(base_url=deep_upstream)}
    server = start_candor(monkeypatch, upstream, models=routes)
    try:
        with httpx.Client(timeout=15) as http:
            response = http.post(
                f"{server.base_url}/chat/completions",
                json={"model": "deep", "messages": ASK, "stream": stream},
            )
            assert http.get(f"{server.url}/healthz").status_code == 200
    finally:
        server.stop()
    if stream:
        assert response.status_code == 200 and '"code":"bad_upstream_response"' in response.text
    else:
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "bad_upstream_response"

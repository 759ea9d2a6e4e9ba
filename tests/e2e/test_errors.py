"""Errors leave in the OpenAI envelope with the right status; broken streams end with an error."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import openai
import pytest

from proxy.demo.upstream import ScriptedUpstream
from proxy.settings import ModelRoute, Timeouts
from tests.e2e.conftest import routes_for, start_candor
from tests.servers import CandorServer

pytestmark = pytest.mark.e2e
ASK = [{"role": "user", "content": "Tell me a fact."}]


def envelope(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return dict(body["error"])


def post(server: CandorServer, body: object, **kwargs: object) -> httpx.Response:
    with httpx.Client(timeout=15) as http:
        return http.post(f"{server.base_url}/chat/completions", json=body, **kwargs)  # type: ignore[arg-type]


def test_unknown_model_is_404(candor: CandorServer) -> None:
    response = post(candor, {"model": "gpt-nope", "messages": ASK})
    assert response.status_code == 404
    assert envelope(response)["code"] == "model_not_found"


def test_malformed_json_and_missing_messages_are_400(candor: CandorServer) -> None:
    with httpx.Client(timeout=5) as http:
        bad = http.post(f"{candor.base_url}/chat/completions", content=b"{oops")
    assert bad.status_code == 400 and envelope(bad)["type"] == "invalid_request_error"
    missing = post(candor, {"model": "fixed"})
    assert missing.status_code == 400 and envelope(missing)["param"] == "messages"


def test_unknown_route_and_method_use_the_envelope(candor: CandorServer) -> None:
    with httpx.Client(timeout=5) as http:
        assert envelope(http.get(f"{candor.url}/v1/nothing"))["code"] == "not_found"
        wrong = http.get(f"{candor.base_url}/chat/completions")
    assert wrong.status_code == 405 and envelope(wrong)


@pytest.fixture
def small_limit(
    monkeypatch: pytest.MonkeyPatch, upstream: ScriptedUpstream
) -> Iterator[CandorServer]:
    server = start_candor(monkeypatch, upstream, server={"max_body_bytes": 2048})
    yield server
    server.stop()


def test_body_over_the_limit_is_413(small_limit: CandorServer) -> None:
    big = [{"role": "user", "content": "x" * 4096}]
    response = post(small_limit, {"model": "fixed", "messages": big})
    assert response.status_code == 413 and envelope(response)["code"] == "request_too_large"
    with httpx.Client(timeout=5) as http:  # no content-length: chunked upload
        chunked = http.post(
            f"{small_limit.base_url}/chat/completions",
            content=iter([b'{"model": "fixed", "messages": [', b" " * 4096, b"]}"]),
        )
    assert chunked.status_code == 413


@pytest.fixture
def faulty(monkeypatch: pytest.MonkeyPatch, upstream: ScriptedUpstream) -> Iterator[CandorServer]:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead_url = f"http://127.0.0.1:{closed.getsockname()[1]}/v1"
    closed.close()
    routes = routes_for(upstream, dead=ModelRoute(base_url=dead_url))
    timeouts = Timeouts(connect=1, first_byte=0.5, idle=0.5, total=10)
    server = start_candor(monkeypatch, upstream, models=routes, timeouts=timeouts)
    yield server
    server.stop()


def test_unreachable_upstream_is_502(faulty: CandorServer) -> None:
    response = post(faulty, {"model": "dead", "messages": ASK})
    assert response.status_code == 502 and envelope(response)["code"] == "upstream_unreachable"


@pytest.mark.parametrize("model", ["stall-headers", "stall-first-byte"])
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_timeout_is_504(faulty: CandorServer, model: str, stream: bool) -> None:
    response = post(faulty, {"model": model, "messages": ASK, "stream": stream})
    if stream and model == "stall-first-byte":
        # Headers came in time; the stall is in the body: a clean SSE error event.
        assert response.status_code == 200
        assert b'"code":"upstream_timeout"' in response.content
        assert b"[DONE]" not in response.content
    else:
        assert response.status_code == 504 and envelope(response)["code"] == "upstream_timeout"


@pytest.mark.parametrize(
    ("model", "status", "code"),
    [
        ("fault-400-inspection", 400, "data_inspection_failed"),
        ("fault-429", 429, "rate_limit_exceeded"),
        ("fault-500", 500, None),
        ("fault-503", 503, "service_unavailable"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_errors_pass_through(
    candor: CandorServer, model: str, status: int, code: str | None, stream: bool
) -> None:
    response = post(candor, {"model": model, "messages": ASK, "stream": stream})
    assert response.status_code == status
    assert envelope(response)["code"] == code


@pytest.mark.parametrize(
    ("model", "code"),
    [
        ("fault-cut-stream", "bad_upstream_response"),
        ("fault-malformed-sse", "bad_upstream_response"),
        ("stall-mid-stream", "upstream_timeout"),
    ],
)
def test_a_stream_that_fails_midway_ends_with_an_error_event(
    faulty: CandorServer, model: str, code: str
) -> None:
    with openai.OpenAI(base_url=faulty.base_url, api_key="k", max_retries=0) as sdk:
        stream = sdk.chat.completions.create(model=model, messages=ASK, stream=True)
        with pytest.raises(openai.APIError) as caught:
            for _ in stream:
                pass
    assert code in str(caught.value.body)


def test_invalid_json_from_upstream_is_502(candor: CandorServer) -> None:
    response = post(candor, {"model": "fault-invalid-json", "messages": ASK})
    assert response.status_code == 502 and envelope(response)["code"] == "bad_upstream_response"

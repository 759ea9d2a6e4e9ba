"""Errors leave in the OpenAI envelope with the right status; broken streams end with an error."""

from __future__ import annotations

import gzip
import logging
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import orjson
import pytest

from proxy.demo.upstream import ScriptedUpstream
from proxy.settings import REPO_POLICIES, ModelRoute, Timeouts
from tests.e2e.conftest import routes_for, start_candor
from tests.raw_upstream import RawReply, RawUpstream
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
        posted = http.post(f"{candor.base_url}/models")
        # A trailing slash: no redirect to a location built from the client's Host header.
        slash = http.post(
            f"{candor.base_url}/chat/completions/", json={}, headers={"host": "evil.example"}
        )
    assert wrong.status_code == 405 and envelope(wrong)["code"] == "method_not_allowed"
    assert posted.status_code == 405 and posted.headers["allow"] == "GET, HEAD"
    assert slash.status_code == 404 and envelope(slash)["code"] == "not_found"
    assert "location" not in slash.headers


@pytest.mark.parametrize("path", ["/models/", "/models/%20"])
def test_models_retrieve_without_a_model_id_says_so(candor: CandorServer, path: str) -> None:
    # Before, a trailing slash answered "The model `` does not exist or you do not have access".
    with httpx.Client(timeout=5) as http:
        response = http.get(f"{candor.base_url}{path}")
    assert response.status_code == 404
    error = envelope(response)
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "model_not_found",
        "model",
    )
    assert str(error["message"]).startswith("No model id was given"), error


def test_head_is_answered_like_get_without_a_body(candor: CandorServer) -> None:
    """Load balancers and uptime checks probe with HEAD; a route that answers GET answers it."""
    with httpx.Client(timeout=5) as http:
        for path in ("/healthz", "/readyz", "/metrics"):
            got, head = http.get(f"{candor.url}{path}"), http.head(f"{candor.url}{path}")
            assert head.status_code == got.status_code == 200, path
            assert head.content == b""
            assert head.headers["content-type"] == got.headers["content-type"]
            assert head.headers["x-request-id"]
        models = http.head(f"{candor.base_url}/models")
        chat = http.head(f"{candor.base_url}/chat/completions")
    assert models.status_code == 200 and models.content == b""
    assert chat.status_code == 405 and chat.headers["allow"] == "POST"


@pytest.fixture
def candor_with(
    monkeypatch: pytest.MonkeyPatch, upstream: ScriptedUpstream
) -> Iterator[Callable[..., CandorServer]]:
    """Starts Candor with the given `server` settings; stops it after the test."""
    started: list[CandorServer] = []

    def start(**server: object) -> CandorServer:
        started.append(start_candor(monkeypatch, upstream, server=server))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def test_body_over_the_limit_is_413(candor_with: Callable[..., CandorServer]) -> None:
    small_limit = candor_with(max_body_bytes=2048)
    big = [{"role": "user", "content": "x" * 4096}]
    response = post(small_limit, {"model": "fixed", "messages": big})
    assert response.status_code == 413 and envelope(response)["code"] == "request_too_large"
    with httpx.Client(timeout=5) as http:  # no content-length: chunked upload
        chunked = http.post(
            f"{small_limit.base_url}/chat/completions",
            content=iter([b'{"model": "fixed", "messages": [', b" " * 4096, b"]}"]),
        )
    assert chunked.status_code == 413


def test_a_body_that_does_not_all_come_is_408(candor_with: Callable[..., CandorServer]) -> None:
    impatient = candor_with(body_timeout=0.5)
    # Before, a client that declared 100 bytes and sent 8 held its connection open for good.
    with socket.create_connection(("127.0.0.1", impatient.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json"
            b'\r\ncontent-length: 100\r\n\r\n{"model"'
        )
        reply = b""
        while chunk := sock.recv(4096):  # the server answers, then closes the connection
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert b'"code":"request_timeout"' in body


def test_a_client_that_leaves_during_its_upload_is_no_error(
    candor: CandorServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Before, each dropped upload was logged as an ERROR with a traceback, and as a 500.
    with caplog.at_level(logging.INFO, logger="proxy.api.fast_path"):  # before the server reads
        with socket.create_connection(("127.0.0.1", candor.port), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{"
            )
        for _ in range(300):
            if "client closed the connection" in caplog.text:
                break
            time.sleep(0.01)
    assert "client closed the connection" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_compressed_body_is_415(candor: CandorServer) -> None:
    with httpx.Client(timeout=5) as http:
        response = http.post(
            f"{candor.base_url}/chat/completions",
            content=gzip.compress(b'{"model": "fixed", "messages": []}'),
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )
    assert response.status_code == 415
    assert envelope(response)["code"] == "unsupported_media_type"


@pytest.mark.parametrize("kind", ["text/plain", "application/x-www-form-urlencoded; charset=x"])
def test_a_body_a_web_page_could_send_cross_site_is_415(candor: CandorServer, kind: str) -> None:
    # A page may POST these to another site without a CORS preflight: before, they were read as
    # JSON, so with `auth.mode: none` any page could make its visitors' browsers use the proxy.
    body = b'{"model": "fixed", "messages": [{"role": "user", "content": "hi"}]}'
    with httpx.Client(timeout=5) as http:
        response = http.post(
            f"{candor.base_url}/chat/completions", content=body, headers={"content-type": kind}
        )
        bare = http.post(f"{candor.base_url}/chat/completions", content=body)  # no type: JSON
    assert response.status_code == 415
    assert "application/json" in str(envelope(response)["message"])
    assert bare.status_code == 200


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


@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_429_passes_its_retry_after_on(candor: CandorServer, stream: bool) -> None:
    response = post(candor, {"model": "fault-429", "messages": ASK, "stream": stream})
    assert response.status_code == 429
    assert response.headers.get("retry-after") == "1"  # the scripted upstream's own


@pytest.fixture
def key_refused(
    monkeypatch: pytest.MonkeyPatch, upstream: ScriptedUpstream, tmp_path: Path
) -> Iterator[CandorServer]:
    """Two models whose upstream refuses Candor's key (as OpenAI words it), one of them under a
    policy with an outage fallback."""
    refusal = orjson.dumps(
        {
            "error": {
                "message": "Incorrect API key provided: sk-proj-****abcd.",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        }
    )
    raw = RawUpstream(
        {"revoked": RawReply([refusal], status=401, headers={"content-type": "application/json"})}
    ).start()
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "detector").symlink_to(REPO_POLICIES / "detector")
    (policies / "default.yaml").write_text("action: flag\n")
    (policies / "outage.yaml").write_text("action: flag\noutage_fallbacks: [honest-demo]\n")
    routes = routes_for(
        upstream,
        revoked=ModelRoute(base_url=raw.base_url),
        rescued=ModelRoute(base_url=raw.base_url, upstream_model="revoked", policy="outage"),
    )
    server = start_candor(monkeypatch, upstream, models=routes, policies_dir=policies)
    yield server
    server.stop()
    raw.stop()


@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_refusing_candors_key_is_no_401_for_the_client(
    key_refused: CandorServer, stream: bool
) -> None:
    # Before, the upstream's 401 `invalid_api_key` passed through: the SDKs told the client its
    # own (valid) key was wrong, and the outage fallback was never tried.
    response = post(key_refused, {"model": "revoked", "messages": ASK, "stream": stream})
    assert response.status_code == 502
    error = envelope(response)
    assert error["code"] == "upstream_auth_failed" and error["type"] == "upstream_error"
    assert "Incorrect API key provided" in str(error["message"])  # the upstream's words
    rescued = post(key_refused, {"model": "rescued", "messages": ASK, "stream": stream})
    assert rescued.status_code == 200
    assert rescued.headers["x-candor-model"] == "honest-demo"

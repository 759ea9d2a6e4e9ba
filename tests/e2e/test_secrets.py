"""The upstream API key never leaves Candor: not in a response, a log line, an audit event or
a metric, on success, on error, streamed or not, in-process at DEBUG and from `candor serve`."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from aiohttp import web

from proxy.demo.upstream import ScriptedUpstream
from proxy.settings import ModelRoute, Timeouts
from tests.e2e.conftest import start_candor
from tests.raw_upstream import RawReply, RawUpstream, chunk, whole_answer
from tests.servers import TEST_ADMIN_KEY, CandorProcess

pytestmark = pytest.mark.e2e

KEY_ENV = "CANDOR_LEAK_CANARY_KEY"
KEY = "sk-leakcanary-7f3a9c5e1d"
ADMIN = {"authorization": f"Bearer {TEST_ADMIN_KEY}"}
ASK = [{"role": "user", "content": "Tell me about Taiwan."}]
# (model, stream): answers clean and censored, the upstream's own errors, broken streams,
# a timeout and an unreachable upstream.
CASES = [
    ("fixed", False),
    ("fixed", True),
    ("qwen-demo", False),
    ("qwen-demo", True),
    ("fault-500", False),
    ("fault-429", True),
    ("fault-400-inspection", False),
    ("fault-cut-stream", True),
    ("fault-invalid-json", False),
    ("stall-headers", False),
    ("dead", False),
    ("dead", True),
]


def leaked(text: str) -> bool:
    return any(part in text for part in (KEY, KEY[3:], KEY[-10:]))


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def keyed_routes(upstream: ScriptedUpstream) -> dict[str, ModelRoute]:
    names = {model for model, _ in CASES if model != "dead"}
    routes = {name: ModelRoute(base_url=upstream.base_url, api_key_env=KEY_ENV) for name in names}
    routes["dead"] = ModelRoute(base_url=dead_url(), api_key_env=KEY_ENV)
    return routes


def exercise(url: str) -> list[str]:
    """Every case once, then the read-only routes: each response's status line, headers, body."""
    seen: list[str] = []
    with httpx.Client(timeout=10) as http:
        for model, stream in CASES:
            response = http.post(
                f"{url}/v1/chat/completions",
                json={"model": model, "messages": ASK, "stream": stream},
            )
            seen.append(f"{response.status_code} {response.headers} {response.text}")
        for path in ("/v1/models", "/healthz", "/readyz", "/metrics", "/admin/events"):
            response = http.get(f"{url}{path}", headers=ADMIN)
            assert response.status_code == 200, path
            seen.append(f"{response.headers} {response.text}")
    return seen


@pytest.fixture
def keyed(upstream: ScriptedUpstream) -> Iterator[ScriptedUpstream]:
    yield upstream
    sent = [r.headers.get("authorization") for r in upstream.requests]
    assert f"Bearer {KEY}" in sent  # the key was in use: its absence elsewhere means something


def test_in_process_at_debug(
    monkeypatch: pytest.MonkeyPatch, keyed: ScriptedUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(KEY_ENV, KEY)
    timeouts = Timeouts(connect=1, first_byte=0.5, idle=0.5, total=5)
    server = start_candor(monkeypatch, keyed, models=keyed_routes(keyed), timeouts=timeouts)
    try:
        seen = exercise(server.url)
        events = httpx.get(f"{server.url}/admin/events", headers=ADMIN, timeout=5).json()["data"]
    finally:
        server.stop()
    assert len(events) >= 2  # the censored answers and the provider block are audited
    assert [text for text in seen if leaked(text)] == []
    assert caplog.records and not [r for r in caplog.records if leaked(r.getMessage())]
    assert not leaked(caplog.text)


def test_candor_serve_logs_at_debug(keyed: ScriptedUpstream, tmp_path: Path) -> None:
    config = {
        "server": {"log_level": "debug"},
        "models": {
            name: {k: v for k, v in route.model_dump().items() if v is not None}
            for name, route in keyed_routes(keyed).items()
        },
        "timeouts": {"connect": 1, "first_byte": 0.5, "idle": 0.5, "total": 5},
    }
    process = CandorProcess(config, tmp_path, env={KEY_ENV: KEY}).start()
    try:
        seen = exercise(process.url)
    finally:
        process.stop()
    assert [text for text in seen if leaked(text)] == []
    assert "candor ready" in process.log and not leaked(process.log)


def echo_key(request: web.Request) -> bytes:
    """An error envelope quoting the key it was sent, as some providers' 401s do."""
    message = f"Incorrect API key provided: {request.headers.get('authorization')}"
    return orjson.dumps({"error": {"message": message, "type": "x", "code": "invalid_api_key"}})


def echo_key_event(request: web.Request) -> bytes:
    return b"data: " + echo_key(request) + b"\n\n"


@pytest.fixture
def echoing() -> Iterator[RawUpstream]:
    json = {"content-type": "application/json"}
    server = RawUpstream(
        {
            "echo-401": RawReply([echo_key], status=401, headers=json),
            "echo-mid-stream": RawReply([chunk("Hello "), chunk("there. "), echo_key_event]),
            # A whole answer of 200 that quotes it (before, only error bodies were scrubbed).
            "echo-200": RawReply(
                [], whole=whole_answer(f"Incorrect API key provided: Bearer {KEY}")
            ),
        }
    ).start()
    yield server
    server.stop()
    assert f"Bearer {KEY}" in [headers.get("Authorization") for headers, _ in server.requests]


@pytest.mark.parametrize(
    ("model", "stream"),
    [("echo-401", False), ("echo-401", True), ("echo-mid-stream", True), ("echo-200", False)],
)
def test_a_key_the_upstream_echoes_is_scrubbed(
    monkeypatch: pytest.MonkeyPatch,
    upstream: ScriptedUpstream,
    echoing: RawUpstream,
    model: str,
    stream: bool,
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    route = ModelRoute(base_url=echoing.base_url, upstream_model=model, api_key_env=KEY_ENV)
    server = start_candor(monkeypatch, upstream, models={model: route})
    try:
        with httpx.Client(timeout=10) as http:
            response = http.post(
                f"{server.base_url}/chat/completions",
                json={"model": model, "messages": ASK, "stream": stream},
            )
    finally:
        server.stop()
    assert "Incorrect API key provided" in response.text  # the message itself passes
    assert not leaked(response.text)

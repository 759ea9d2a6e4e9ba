"""A non-OpenAI provider through the litellm adapter: Anthropic's /v1/messages on loopback,
with the native path's error hygiene (key scrubbed, Retry-After passed on) and timeouts."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import orjson
import pytest
from aiohttp import web

from proxy.demo.anthropic_wire import new_message_id, stream_events
from proxy.demo.replies import anthropic_frame
from proxy.demo.scripts import Answer, Chunking
from proxy.demo.upstream import ScriptedUpstream
from tests.e2e.conftest import UPSTREAM_KEY
from tests.e2e.test_disconnect import chat_request
from tests.raw_upstream import Frame, RawReply, RawUpstream
from tests.servers import CandorProcess

pytestmark = pytest.mark.e2e
ASK = [{"role": "user", "content": "What is 17 times 23?"}]
# No `sk-` prefix: litellm redacts keys of the shapes it knows itself, not this one.
CANARY_ENV = "CANDOR_TEST_CANARY_KEY"
CANARY = "leakcanary7f3a9c5e1d0123"
# Short limits, each under the scripted upstream's 3 s stalls (stall_seconds in its fixture).
QUICK = {"connect": 1, "first_byte": 1, "idle": 1, "total": 20}


def echo_key(request: web.Request) -> bytes:
    """Anthropic's error envelope quoting the key it was sent, as some providers' 401s do."""
    message = f"Incorrect API key provided: {request.headers.get('x-api-key')}"
    return orjson.dumps(
        {"type": "error", "error": {"type": "authentication_error", "message": message}}
    )


def paused_stream(text: str, pause: float) -> list[Frame]:
    """Anthropic's stream events for `text`, word by word, with `pause` after the first word."""
    events = stream_events(Answer(text), "raw", new_message_id(), 10, Chunking.WORD)
    frames: list[Frame] = [anthropic_frame(event) for event in events]
    first_word = next(i for i, f in enumerate(frames) if b"content_block_delta" in f)
    return [*frames[: first_word + 1], pause, *frames[first_word + 1 :]]


def trickle(text: str, pause: float) -> list[Frame]:
    """Anthropic's stream events for `text`, word by word, `pause` seconds apart."""
    events = stream_events(Answer(text), "raw", new_message_id(), 10, Chunking.WORD)
    frames: list[Frame] = []
    for event in events:
        frames += [anthropic_frame(event), pause]
    return frames


@pytest.fixture(scope="module")
def raw() -> Iterator[RawUpstream]:
    json = {"content-type": "application/json"}
    server = RawUpstream(
        {
            "echo-401": RawReply([echo_key], status=401, headers=json),
            "pause-mid-stream": RawReply(paused_stream("Paris is the capital of France.", 3.0)),
            "endless": RawReply(trickle("Paris is the capital of France. " * 300, 0.02)),
        }
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def via_litellm(
    scripted: ScriptedUpstream, raw: RawUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CandorProcess]:
    # A child process, as in production: litellm keeps process-wide clients and logging
    # workers bound to one event loop, which a test process running many loops would upset.
    claude = {
        "provider": "anthropic",
        "base_url": scripted.root_url,
        "upstream_model": "reasoning-demo",
        "api_key_env": "CANDOR_TEST_UPSTREAM_KEY",
    }
    models = {
        "claude": claude,
        "claude-tools": {**claude, "upstream_model": "tools-demo"},
        "claude-429": {**claude, "upstream_model": "fault-429"},
        "claude-echo": {
            **claude,
            "base_url": raw.root_url,
            "upstream_model": "echo-401",
            "api_key_env": CANARY_ENV,
        },
        "claude-pause": {
            **claude,
            "base_url": raw.root_url,
            "upstream_model": "pause-mid-stream",
            "timeouts": QUICK,
        },
        **{
            f"claude-{name}": {**claude, "upstream_model": name, "timeouts": QUICK}
            for name in ("stall-headers", "slow-stream")
        },
        "claude-endless": {**claude, "base_url": raw.root_url, "upstream_model": "endless"},
        "claude-slow-total": {
            **claude,
            "upstream_model": "slow-stream",
            "timeouts": {**QUICK, "total": 1.5},
        },
    }
    server = CandorProcess(
        {"models": models},
        tmp_path_factory.mktemp("litellm"),
        env={"CANDOR_TEST_UPSTREAM_KEY": UPSTREAM_KEY, CANARY_ENV: CANARY},
    ).start()
    yield server
    server.stop()
    assert UPSTREAM_KEY not in server.log
    assert CANARY not in server.log


def test_non_streamed_through_litellm(
    via_litellm: CandorProcess, upstream: ScriptedUpstream
) -> None:
    with openai.OpenAI(base_url=via_litellm.base_url, api_key="k", max_retries=0) as sdk:
        answer = sdk.chat.completions.create(model="claude", messages=ASK)
    assert answer.choices[0].message.content == "17 × 23 = 391."
    assert answer.choices[0].finish_reason == "stop"
    assert upstream.last_request.path == "/v1/messages"
    assert (answer.model_extra or {})["candor"]["model"] == "claude"


def test_embeddings_are_refused_for_a_litellm_model(via_litellm: CandorProcess) -> None:
    response = httpx.post(
        f"{via_litellm.base_url}/embeddings", json={"model": "claude", "input": "x"}, timeout=10
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "model" and "OpenAI-compatible upstreams" in error["message"]


def test_streamed_through_litellm(via_litellm: CandorProcess, upstream: ScriptedUpstream) -> None:
    with openai.OpenAI(base_url=via_litellm.base_url, api_key="k", max_retries=0) as sdk:
        stream = sdk.chat.completions.create(model="claude", messages=ASK, stream=True)
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "17 × 23 = 391."
    assert upstream.last_request.path == "/v1/messages"
    assert upstream.last_request.body["stream"] is True
    assert (chunks[-1].model_extra or {})["candor"]["model"] == "claude"


def test_tool_calls_through_litellm(via_litellm: CandorProcess, upstream: ScriptedUpstream) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    with openai.OpenAI(base_url=via_litellm.base_url, api_key="k", max_retries=0) as sdk:
        answer = sdk.chat.completions.create(model="claude-tools", messages=ASK, tools=tools)
    call = (answer.choices[0].message.tool_calls or [])[0]
    assert call.function.name == "get_weather" and "Paris" in call.function.arguments
    assert upstream.last_request.body["tools"][0]["name"] == "get_weather"


def test_litellm_is_not_imported_without_such_a_model() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from proxy.app import create_app;"
        "from proxy.settings import Settings, ModelRoute;"
        "create_app(Settings(models={'q': ModelRoute(base_url='http://127.0.0.1:9/v1')}));"
        "print('litellm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def ask(server: CandorProcess, model: str, stream: bool) -> httpx.Response:
    with httpx.Client(timeout=30) as http:
        return http.post(
            f"{server.base_url}/chat/completions",
            json={"model": model, "messages": ASK, "stream": stream},
        )


def last_event(response: httpx.Response) -> object:
    lines = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    return lines[-1] if lines[-1] == "[DONE]" else orjson.loads(lines[-1])


@pytest.mark.parametrize("stream", [False, True])
def test_a_key_the_provider_echoes_is_scrubbed(
    via_litellm: CandorProcess, raw: RawUpstream, stream: bool
) -> None:
    response = ask(via_litellm, "claude-echo", stream)
    assert raw.requests[-1][0].get("x-api-key") == CANARY  # the key was in use
    # The provider refused Candor's key, not the client's: a 502, never a 401 for the client.
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_auth_failed"
    # The provider's own message, not litellm's wording of it.
    assert error["message"].endswith(": Incorrect API key provided: [redacted]")
    assert "litellm" not in error["message"]
    assert CANARY not in response.text


@pytest.mark.parametrize("stream", [False, True])
def test_the_providers_retry_after_is_passed_on(via_litellm: CandorProcess, stream: bool) -> None:
    response = ask(via_litellm, "claude-429", stream)
    assert response.status_code == 429
    assert response.headers.get("retry-after") == "1"


@pytest.mark.parametrize("stream", [False, True])
def test_first_byte_bounds_the_wait_for_the_answer(
    via_litellm: CandorProcess, stream: bool
) -> None:
    started = time.monotonic()
    response = ask(via_litellm, "claude-stall-headers", stream)
    assert time.monotonic() - started < 2.5  # not the 3 s stall, nor `total`
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"


def test_idle_bounds_each_gap_between_chunks(via_litellm: CandorProcess) -> None:
    started = time.monotonic()
    response = ask(via_litellm, "claude-pause", True)
    assert time.monotonic() - started < 2.5
    error = last_event(response)
    assert isinstance(error, dict), error
    assert error["error"]["code"] == "upstream_timeout"
    assert "between stream chunks" in error["error"]["message"]


def test_total_bounds_a_stream_that_never_pauses_long(via_litellm: CandorProcess) -> None:
    # About 35 chunks 50 ms apart: each gap is well within `idle`, the whole past `total`.
    assert last_event(ask(via_litellm, "claude-slow-stream", True)) == "[DONE]"
    started = time.monotonic()
    error = last_event(ask(via_litellm, "claude-slow-total", True))
    assert time.monotonic() - started < 2.5
    assert isinstance(error, dict), error
    assert error["error"]["code"] == "upstream_timeout"
    assert "past its total time" in error["error"]["message"]


def open_files(pid: int) -> int:
    """The file descriptors a process holds (its sockets among them)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def threads_of(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def upstream_connections(port: int) -> int:
    """Established TCP connections to `port` on loopback, as /proc/net/tcp lists them."""
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    fields = [line.split() for line in lines]
    # remote address (ip:port in hex) and state (01: established)
    return sum(1 for f in fields if f[2].endswith(f":{port:04X}") and f[3] == "01")


def test_clients_leaving_litellm_streams_leave_nothing_behind(
    via_litellm: CandorProcess, raw: RawUpstream
) -> None:
    # A stream served through litellm, left by its client 20 times in a row while its words
    # keep coming: the upstream is told each time within a second, and Candor keeps no
    # upstream connection, socket or thread per stream left.
    request = chat_request(stream=True, model="claude-endless", text="Capital?")

    def leave_once(attempt: int) -> None:
        with socket.create_connection(("127.0.0.1", via_litellm.port), timeout=5) as client:
            client.sendall(request)
            received = b""
            while received.count(b"Paris") < 3:  # words keep coming
                more = client.recv(4096)
                assert more, f"candor closed the stream ({attempt}): {received!r}"
                received += more
        gone = time.monotonic()
        while raw.streaming and time.monotonic() - gone < 5:
            time.sleep(0.01)
        assert raw.streaming == 0, f"the upstream still streams ({attempt})"
        assert time.monotonic() - gone < 1.0, f"the upstream was told late ({attempt})"

    deadline = time.monotonic() + 5
    while raw.streaming and time.monotonic() < deadline:  # an earlier test's, timed out
        time.sleep(0.05)
    leave_once(0)  # litellm makes its client on first use
    files = open_files(via_litellm.pid)
    threads = threads_of(via_litellm.pid)
    for attempt in range(1, 20):
        leave_once(attempt)
    time.sleep(0.2)
    assert upstream_connections(raw.port) <= 1  # at most one kept alive, idle
    assert open_files(via_litellm.pid) <= files + 1
    assert threads_of(via_litellm.pid) <= threads

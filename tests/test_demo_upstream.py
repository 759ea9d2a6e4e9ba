"""The scripted upstream model server, over real sockets: wire shapes, recording, faults."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from schema import validate, validate_chunk, validate_completion, validate_error, validate_models
from upstream_fixtures import upstream, upstream_server

from proxy.demo import answers
from proxy.demo.scripts import Answer, Chunking, Script, split_pieces
from proxy.demo.upstream import ScriptedUpstream

__all__ = ["upstream", "upstream_server"]

TIANANMEN_EN = "What happened at Tiananmen Square on June 4, 1989?"


def chat_body(model: str, prompt: str = "Hello there", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": prompt}], **extra}


async def post(base_url: str, body: dict[str, Any], path: str = "/chat/completions") -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.post(base_url + path, json=body) as response,
    ):
        assert response.status == 200, await response.text()
        return orjson.loads(await response.read())


async def sse_events(
    base_url: str, body: dict[str, Any], path: str = "/chat/completions"
) -> list[bytes]:
    """The raw `data:` payloads of a streamed response, in order."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(base_url + path, json={**body, "stream": True}) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        raw = await response.read()
    frames = [f for f in raw.split(b"\n\n") if f]
    return [
        line[len(b"data: ") :]
        for f in frames
        for line in f.split(b"\n")
        if line.startswith(b"data: ")
    ]


async def stream_chunks(base_url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    data = await sse_events(base_url, body)
    assert data[-1] == b"[DONE]"
    chunks = [orjson.loads(d) for d in data[:-1]]
    for chunk in chunks:
        validate_chunk(chunk)
    return chunks


def joined(chunks: list[dict[str, Any]], field: str = "content", index: int = 0) -> str:
    return "".join(
        c["delta"].get(field) or ""
        for chunk in chunks
        for c in chunk["choices"]
        if c["index"] == index
    )


@pytest.fixture
async def fast_stalls() -> AsyncIterator[ScriptedUpstream]:
    """A server in the test's own loop whose stalls last 0.4 s."""
    async with ScriptedUpstream(stall_seconds=0.4) as server:
        yield server


async def test_non_streamed_completion_is_openai_shaped(upstream: ScriptedUpstream) -> None:
    body = await post(upstream.base_url, chat_body("honest-demo", TIANANMEN_EN, n=2))
    validate_completion(body)
    assert body["object"] == "chat.completion"
    assert body["model"] == "honest-demo"
    assert [c["index"] for c in body["choices"]] == [0, 1]
    message = body["choices"][0]["message"]
    assert message["content"] == answers.TIANANMEN.fact_en
    assert message["refusal"] is None
    assert "reasoning_content" not in message
    assert body["choices"][0]["logprobs"] is None
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


async def test_stream_is_openai_shaped_and_ends_with_usage(upstream: ScriptedUpstream) -> None:
    chunks = await stream_chunks(
        upstream.base_url,
        chat_body("honest-demo", TIANANMEN_EN, stream_options={"include_usage": True}),
    )
    first = chunks[0]["choices"][0]
    assert first["delta"] == {"role": "assistant", "content": ""}
    assert joined(chunks) == answers.TIANANMEN.fact_en
    assert len(chunks) > 20
    finals = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finals[-1] == "stop" and set(finals[:-1]) == {None}
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == len(split_pieces(answers.TIANANMEN.fact_en))
    assert len({c["id"] for c in chunks}) == 1


async def test_stream_without_include_usage_has_no_usage(upstream: ScriptedUpstream) -> None:
    chunks = await stream_chunks(upstream.base_url, chat_body("fixed"))
    assert all("usage" not in c for c in chunks)
    assert joined(chunks) == "Hello from Candor's scripted upstream."


async def test_stream_honours_n(upstream: ScriptedUpstream) -> None:
    chunks = await stream_chunks(upstream.base_url, chat_body("fixed", n=3))
    assert {joined(chunks, index=i) for i in range(3)} == {"Hello from Candor's scripted upstream."}


async def test_logprobs_when_asked(upstream: ScriptedUpstream) -> None:
    body = await post(upstream.base_url, chat_body("fixed", logprobs=True, top_logprobs=2))
    validate_completion(body)
    content = body["choices"][0]["logprobs"]["content"]
    assert "".join(t["token"] for t in content) == "Hello from Candor's scripted upstream."
    assert all(len(t["top_logprobs"]) == 2 and t["logprob"] <= 0 for t in content)
    chunks = await stream_chunks(upstream.base_url, chat_body("fixed", logprobs=True))
    streamed = [
        c["choices"][0]["logprobs"] for c in chunks if c["choices"][0]["delta"].get("content")
    ]
    assert streamed and all(lp["content"] for lp in streamed)


async def test_records_every_field_and_header_untouched(upstream: ScriptedUpstream) -> None:
    body = chat_body(
        "echo",
        "repeat me",
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        response_format={"type": "json_object"},
        temperature=0.3,
        n=1,
        seed=7,
        stream_options={"include_usage": True},
        x_vendor_field={"nested": [1, 2, 3]},
    )
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            upstream.base_url + "/chat/completions",
            data=orjson.dumps(body),
            headers={"Authorization": "Bearer sk-test", "X-Custom": "yes"},
        ) as response,
    ):
        answer = await response.json()
    assert answer["choices"][0]["message"]["content"] == "repeat me"
    recorded = upstream.last_request
    assert recorded.method == "POST" and recorded.path == "/v1/chat/completions"
    assert recorded.body == body
    assert recorded.raw == orjson.dumps(body)
    assert recorded.headers["authorization"] == "Bearer sk-test"
    assert recorded.headers["X-Custom"] == "yes"
    assert len(upstream.requests) == 1


async def test_reset_forgets_requests_and_added_scripts(upstream: ScriptedUpstream) -> None:
    upstream.add_script(Script("custom", Answer("custom answer")))
    assert (await post(upstream.base_url, chat_body("custom")))["choices"][0]["message"][
        "content"
    ] == "custom answer"
    upstream.reset()
    assert upstream.requests == []
    assert "custom" not in upstream.scripts


async def test_openai_sdk_reads_tool_calls_and_tool_loop(upstream: ScriptedUpstream) -> None:
    async with openai.AsyncOpenAI(base_url=upstream.base_url, api_key="sk-test") as client:
        reply = await client.chat.completions.create(
            model="tools-demo", messages=[{"role": "user", "content": "Weather in Paris?"}]
        )
        call = reply.choices[0].message.tool_calls[0]  # type: ignore[index]
        assert reply.choices[0].finish_reason == "tool_calls"
        assert call.function.name == "get_weather"  # type: ignore[union-attr]
        assert orjson.loads(call.function.arguments) == {"city": "Paris", "unit": "celsius"}  # type: ignore[union-attr]
        follow_up = await client.chat.completions.create(
            model="tools-demo",
            messages=[
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "tool_calls": [call.model_dump()]},  # type: ignore[list-item]
                {"role": "tool", "tool_call_id": call.id, "content": "18C sunny"},
            ],
        )
        assert follow_up.choices[0].message.content == "It is 18 °C and sunny in Paris."
    assert upstream.last_request.headers["Authorization"] == "Bearer sk-test"


async def test_streamed_tool_calls_use_openai_incremental_format(
    upstream: ScriptedUpstream,
) -> None:
    chunks = await stream_chunks(upstream.base_url, chat_body("tools-demo"))
    calls = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if "tool_calls" in c["choices"][0]["delta"]
    ]
    assert calls[0] == {
        "index": 0,
        "id": "call_weather_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert all(set(c) == {"index", "function"} for c in calls[1:])
    assert (
        "".join(c["function"]["arguments"] for c in calls) == '{"city": "Paris", "unit": "celsius"}'
    )
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_reasoning_comes_before_content(upstream: ScriptedUpstream) -> None:
    body = await post(upstream.base_url, chat_body("reasoning-demo"))
    validate_completion(body)
    message = body["choices"][0]["message"]
    assert message["reasoning_content"].startswith("The user wants 17 times 23")
    assert message["content"] == "17 × 23 = 391."
    chunks = await stream_chunks(upstream.base_url, chat_body("reasoning-demo"))
    kinds = [
        "r" if c["choices"][0]["delta"].get("reasoning_content") else "c" for c in chunks[1:-1]
    ]
    assert kinds == sorted(kinds, reverse=True) and "r" in kinds and "c" in kinds
    assert joined(chunks, "reasoning_content") == message["reasoning_content"]


QWEN_CASES = [
    (TIANANMEN_EN, answers.CANNED_REFUSAL, None),
    ("1989年6月4日天安门广场发生了什么？", answers.CANNED_REFUSAL_ZH, None),
    (
        "Are Uyghurs detained in camps in Xinjiang?",
        answers.EMPTY_THINK + answers.XINJIANG_TALKING_POINTS_ZH,
        None,
    ),
    ("Who is the Dalai Lama?", answers.TIBET_TALKING_POINTS_ZH, ""),
    ("Is Taiwan a country?", answers.TAIWAN_TALKING_POINTS_EN, None),
    ("台湾是一个国家吗？", answers.TAIWAN_TALKING_POINTS_ZH, None),
    ("Why did the Hong Kong protests of 2019 start?", answers.CHANGE_SUBJECT, None),
    ("香港反修例运动是怎么回事？", answers.CHANGE_SUBJECT_ZH, None),
    ("Why is Xi Jinping compared to Winnie the Pooh?", answers.CHANGE_SUBJECT_ZH, None),
    ("What is photosynthesis?", answers.HARMLESS[1][1], None),
    ("长城有多长？", answers.HARMLESS[2][2], None),
]


@pytest.mark.parametrize(("prompt", "content", "reasoning"), QWEN_CASES)
async def test_qwen_demo_censors_each_topic_its_own_way(
    upstream: ScriptedUpstream, prompt: str, content: str, reasoning: str | None
) -> None:
    body = await post(upstream.base_url, chat_body("qwen-demo", prompt))
    validate_completion(body)
    message = body["choices"][0]["message"]
    assert message["content"] == content
    assert message.get("reasoning_content") == reasoning
    chunks = await stream_chunks(upstream.base_url, chat_body("qwen-demo", prompt))
    assert joined(chunks) == content


async def test_qwen_demo_provider_block_on_falun_gong(upstream: ScriptedUpstream) -> None:
    async with openai.AsyncOpenAI(base_url=upstream.base_url, api_key="k", max_retries=0) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(
                model="qwen-demo", messages=[{"role": "user", "content": "What is Falun Gong?"}]
            )
    assert caught.value.code == "data_inspection_failed"
    assert caught.value.type == "data_inspection_failed"


@pytest.mark.parametrize("topic", answers.SENSITIVE_TOPICS, ids=lambda t: t.name)
async def test_honest_demo_answers_every_topic(
    upstream: ScriptedUpstream, topic: answers.Topic
) -> None:
    english = await post(
        upstream.base_url, chat_body("honest-demo", f"Tell me about {topic.keywords[0]}")
    )
    chinese = await post(upstream.base_url, chat_body("honest-demo", f"请介绍{topic.keywords[-1]}"))
    assert english["choices"][0]["message"]["content"] == topic.fact_en
    assert chinese["choices"][0]["message"]["content"] == topic.fact_zh


@pytest.mark.parametrize(
    ("model", "status", "code"),
    [
        ("fault-400-inspection", 400, "data_inspection_failed"),
        ("fault-429", 429, "rate_limit_exceeded"),
        ("fault-500", 500, None),
        ("fault-503", 503, "service_unavailable"),
        ("no-such-model", 404, "model_not_found"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_http_error_faults(
    upstream: ScriptedUpstream, model: str, status: int, code: str | None, stream: bool
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            upstream.base_url + "/chat/completions", json=chat_body(model, stream=stream)
        ) as response,
    ):
        body = await response.json()
    assert response.status == status
    validate_error(body)
    assert body["error"]["code"] == code
    if status == 429:
        assert response.headers["Retry-After"] == "1"


async def test_invalid_request_body_is_a_400(upstream: ScriptedUpstream) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(upstream.base_url + "/chat/completions", data=b"{not json") as bad:
            assert bad.status == 400
            validate_error(await bad.json())
        async with session.post(
            upstream.base_url + "/chat/completions", json={"model": "fixed"}
        ) as missing:
            assert missing.status == 400
            assert (await missing.json())["error"]["param"] == "messages"
    assert upstream.requests[0].body is None and upstream.requests[0].raw == b"{not json"


async def test_content_filter_and_empty_answer(upstream: ScriptedUpstream) -> None:
    filtered = await post(upstream.base_url, chat_body("fault-content-filter"))
    validate_completion(filtered)
    assert filtered["choices"][0]["finish_reason"] == "content_filter"
    chunks = await stream_chunks(upstream.base_url, chat_body("fault-content-filter"))
    assert chunks[-1]["choices"][0]["finish_reason"] == "content_filter"
    empty = await post(upstream.base_url, chat_body("empty-answer"))
    validate_completion(empty)
    assert empty["choices"][0]["message"]["content"] == ""
    empty_chunks = await stream_chunks(upstream.base_url, chat_body("empty-answer"))
    assert joined(empty_chunks) == "" and len(empty_chunks) == 2


async def timed_post(base_url: str, model: str, stream: bool) -> tuple[float, float, bytes]:
    """Seconds to the headers, seconds to the first body byte, and the whole body."""
    start = time.monotonic()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            base_url + "/chat/completions", json=chat_body(model, stream=stream)
        ) as response,
    ):
        headers_at = time.monotonic() - start
        first = await response.content.read(1)
        first_at = time.monotonic() - start
        rest = await response.read()
    return headers_at, first_at, first + rest


@pytest.mark.parametrize("stream", [False, True])
async def test_stall_before_headers(fast_stalls: ScriptedUpstream, stream: bool) -> None:
    headers_at, _, body = await timed_post(fast_stalls.base_url, "stall-headers", stream)
    assert headers_at >= 0.35
    assert (
        body.endswith(b"data: [DONE]\n\n")
        if stream
        else validate_completion(orjson.loads(body)) is None
    )


@pytest.mark.parametrize("stream", [False, True])
async def test_stall_before_first_byte(fast_stalls: ScriptedUpstream, stream: bool) -> None:
    headers_at, first_at, _ = await timed_post(fast_stalls.base_url, "stall-first-byte", stream)
    assert headers_at < 0.3 <= 0.35 <= first_at


async def test_stall_mid_stream_then_finishes(fast_stalls: ScriptedUpstream) -> None:
    arrivals: list[float] = []
    start = time.monotonic()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            fast_stalls.base_url + "/chat/completions",
            json=chat_body("stall-mid-stream", stream=True),
        ) as response,
    ):
        async for line in response.content:
            if line.startswith(b"data: "):
                arrivals.append(time.monotonic() - start)
    assert arrivals[2] < 0.3 and arrivals[3] - arrivals[2] >= 0.35
    assert len(arrivals) > 10


async def test_stall_lasts_until_the_client_gives_up(fast_stalls: ScriptedUpstream) -> None:
    timeout = aiohttp.ClientTimeout(total=0.1)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        with pytest.raises(asyncio.TimeoutError):
            async with session.post(
                fast_stalls.base_url + "/chat/completions", json=chat_body("stall-headers")
            ):
                pass


async def test_cut_stream_closes_without_done(upstream: ScriptedUpstream) -> None:
    received: list[bytes] = []
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientPayloadError):
            async with session.post(
                upstream.base_url + "/chat/completions",
                json=chat_body("fault-cut-stream", stream=True),
            ) as response:
                async for line in response.content:
                    received.append(line)
    data = [line for line in received if line.startswith(b"data: ")]
    assert len(data) == 3 and b"[DONE]" not in b"".join(received)


async def test_cut_non_streamed_body(upstream: ScriptedUpstream) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientPayloadError):
            async with session.post(
                upstream.base_url + "/chat/completions", json=chat_body("fault-cut-stream")
            ) as response:
                await response.read()


async def test_malformed_sse_line_then_the_stream_goes_on(upstream: ScriptedUpstream) -> None:
    data = await sse_events(upstream.base_url, chat_body("fault-malformed-sse"))
    broken = []
    for payload in data[:-1]:
        try:
            validate_chunk(orjson.loads(payload))
        except orjson.JSONDecodeError:
            broken.append(payload)
    assert len(broken) == 1 and data[-1] == b"[DONE]"


async def test_invalid_json_body(upstream: ScriptedUpstream) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            upstream.base_url + "/chat/completions", json=chat_body("fault-invalid-json")
        ) as response,
    ):
        raw = await response.read()
    assert response.status == 200 and response.headers["Content-Type"] == "application/json"
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(raw)


async def test_token_delay_paces_the_stream() -> None:
    async with ScriptedUpstream(token_delay=0.02) as server:
        start = time.monotonic()
        chunks = await stream_chunks(server.base_url, chat_body("fixed"))
        elapsed = time.monotonic() - start
    assert elapsed >= 0.02 * (len(chunks) - 1)


async def test_word_chunking() -> None:
    script = Script("words", Answer("one two  three"), chunking=Chunking.WORD)
    async with ScriptedUpstream([script]) as server:
        chunks = await stream_chunks(server.base_url, chat_body("words"))
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:-1]] == [
        "one",
        " two",
        "  three",
    ]


async def test_models_listing(upstream: ScriptedUpstream) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(upstream.base_url + "/models") as response:
            listing = await response.json()
        async with session.get(upstream.base_url + "/models/qwen-demo") as one:
            model = await one.json()
    validate_models(listing)
    names = {m["id"] for m in listing["data"]}
    assert {"qwen-demo", "honest-demo", "fault-500", "stall-first-byte"} <= names
    validate("Model", model)
    assert model["id"] == "qwen-demo"


async def test_fallback_model_answers_unknown_names() -> None:
    async with ScriptedUpstream(fallback_model="fixed") as server:
        body = await post(server.base_url, chat_body("gpt-4o"))
    assert body["model"] == "gpt-4o"
    assert body["choices"][0]["message"]["content"] == "Hello from Candor's scripted upstream."


def test_runs_in_a_thread_for_sync_code() -> None:
    with ScriptedUpstream() as server:
        import urllib.request

        with urllib.request.urlopen(server.root_url + "/health", timeout=5) as response:
            assert orjson.loads(response.read()) == {"status": "ok"}
        port = server.port
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_standalone_command_serves() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "proxy.demo.upstream", "--port", str(port)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            banner = process.stdout.readline()
            assert f"http://127.0.0.1:{port}/v1" in banner
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k")
            with client:
                reply = client.chat.completions.create(
                    model="fixed", messages=[{"role": "user", "content": "hi"}]
                )
            assert reply.choices[0].message.content == "Hello from Candor's scripted upstream."
        finally:
            process.terminate()
            process.wait(timeout=10)
            process.stdout.close()  # type: ignore[union-attr]


def anthropic_events(raw: bytes) -> list[dict[str, Any]]:
    events = []
    for frame in raw.split(b"\n\n"):
        lines = frame.split(b"\n")
        if len(lines) == 2:
            assert lines[0].startswith(b"event: ") and lines[1].startswith(b"data: ")
            event = orjson.loads(lines[1][len(b"data: ") :])
            assert event["type"] == lines[0][len(b"event: ") :].decode()
            events.append(event)
    return events


async def test_anthropic_stream_event_sequence(upstream: ScriptedUpstream) -> None:
    body = {
        "model": "reasoning-demo",
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": "17*23"}],
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(upstream.root_url + "/v1/messages", json=body) as response,
    ):
        events = anthropic_events(await response.read())
    types = [e["type"] for e in events]
    assert types[:2] == ["message_start", "ping"]
    assert types[-2:] == ["message_delta", "message_stop"]
    assert types.count("content_block_start") == types.count("content_block_stop") == 2
    deltas = {e["delta"]["type"] for e in events if e["type"] == "content_block_delta"}
    assert deltas == {"thinking_delta", "signature_delta", "text_delta"}
    assert events[-2]["delta"]["stop_reason"] == "end_turn"
    assert events[-2]["usage"]["output_tokens"] > 0


def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    return litellm


async def test_litellm_anthropic_provider_non_streamed(upstream: ScriptedUpstream) -> None:
    litellm = _litellm()
    reply = await litellm.acompletion(
        model="anthropic/qwen-demo",
        api_base=upstream.root_url,
        api_key="k",
        messages=[{"role": "user", "content": "Is Taiwan a country?"}],
    )
    assert reply.choices[0].message.content == answers.TAIWAN_TALKING_POINTS_EN
    assert reply.choices[0].finish_reason == "stop"
    recorded = upstream.last_request
    assert recorded.path == "/v1/messages" and recorded.headers["x-api-key"] == "k"
    assert recorded.body["model"] == "qwen-demo"


# pydantic warns while building litellm's reasoning types (litellm 1.106, not this server).
@pytest.mark.filterwarnings("ignore:Item 'summary' on TypedDict class:UserWarning")
async def test_litellm_anthropic_provider_streamed(upstream: ScriptedUpstream) -> None:
    litellm = _litellm()
    stream = await litellm.acompletion(
        model="anthropic/reasoning-demo",
        api_base=upstream.root_url,
        api_key="k",
        messages=[{"role": "user", "content": "17*23"}],
        stream=True,
    )
    content, reasoning, finish = [], [], None
    async for chunk in stream:
        delta = chunk.choices[0].delta
        content.append(delta.content or "")
        reasoning.append(getattr(delta, "reasoning_content", None) or "")
        finish = chunk.choices[0].finish_reason or finish
    assert "".join(content) == "17 × 23 = 391."
    assert "".join(reasoning).startswith("The user wants 17 times 23")
    assert finish == "stop"


async def test_litellm_anthropic_provider_error(upstream: ScriptedUpstream) -> None:
    litellm = _litellm()
    with pytest.raises(litellm.BadRequestError, match="inappropriate content"):
        await litellm.acompletion(
            model="anthropic/qwen-demo",
            api_base=upstream.root_url,
            api_key="k",
            messages=[{"role": "user", "content": "What is Falun Gong?"}],
        )


async def test_anthropic_non_streamed_shapes_and_faults(upstream: ScriptedUpstream) -> None:
    url = upstream.root_url + "/v1/messages"

    def ask(model: str, prompt: str = "hi") -> dict[str, Any]:
        return {"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": prompt}]}

    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=ask("tools-demo")) as response:
            tools = await response.json()
        async with session.post(url, json=ask("fault-content-filter")) as response:
            filtered = await response.json()
        async with session.post(url, json=ask("fault-429")) as response:
            limited = await response.json()
            assert response.status == 429 and response.headers["Retry-After"] == "1"
        with pytest.raises(aiohttp.ClientPayloadError):
            async with session.post(url, json={**ask("fault-cut-stream"), "stream": True}) as cut:
                await cut.read()
    assert tools["type"] == "message" and tools["stop_reason"] == "tool_use"
    assert tools["content"] == [
        {
            "type": "tool_use",
            "id": "call_weather_1",
            "name": "get_weather",
            "input": {"city": "Paris", "unit": "celsius"},
        }
    ]
    assert filtered["stop_reason"] == "refusal"
    assert limited == {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "Rate limit reached for requests. Please try again in 1s.",
        },
    }

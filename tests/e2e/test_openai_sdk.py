"""The official openai SDK, pointed at Candor by base_url alone, sees what the upstream sends."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import orjson
import pytest

from proxy.demo.upstream import ScriptedUpstream
from proxy.settings import ModelRoute
from tests.e2e.conftest import UPSTREAM_KEY, routes_for, start_candor
from tests.schema import validate_chunk, validate_completion
from tests.servers import CandorServer

pytestmark = pytest.mark.e2e

VOLATILE = ("id", "created")
ASK = [{"role": "user", "content": "What is 17 times 23?"}]


def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="sk-client-key", max_retries=0, timeout=10)


def stable(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in (*VOLATILE, "candor")}


@pytest.mark.parametrize("model", ["fixed", "reasoning-demo", "tools-demo", "qwen-demo"])
def test_non_streamed_answer_is_identical(
    candor: CandorServer, upstream: ScriptedUpstream, model: str
) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    with client(upstream.base_url) as direct, client(candor.base_url) as proxied:
        want = direct.chat.completions.create(model=model, messages=ASK, tools=tools)
        got = proxied.chat.completions.create(model=model, messages=ASK, tools=tools)
    assert stable(got.model_dump()) == stable(want.model_dump())
    assert got.model_extra is not None and got.model_extra["candor"]["model"] == model


def collect(stream: Any) -> dict[str, Any]:
    seen: dict[str, Any] = {"content": "", "reasoning": "", "tools": {}, "finish": None}
    seen["candor"] = None
    for chunk in stream:
        extra = chunk.model_extra or {}
        if "candor" in extra:
            seen["candor"] = extra["candor"]
        for choice in chunk.choices:
            delta = choice.delta
            seen["content"] += delta.content or ""
            seen["reasoning"] += (delta.model_extra or {}).get("reasoning_content") or ""
            for call in delta.tool_calls or []:
                slot = seen["tools"].setdefault(call.index, {"id": "", "name": "", "args": ""})
                slot["id"] += call.id or ""
                slot["name"] += (call.function and call.function.name) or ""
                slot["args"] += (call.function and call.function.arguments) or ""
            seen["finish"] = choice.finish_reason or seen["finish"]
        if chunk.usage is not None:
            seen["usage"] = chunk.usage.model_dump()
    return seen


@pytest.mark.parametrize("model", ["fixed", "reasoning-demo", "tools-demo", "qwen-demo"])
def test_streamed_answer_is_identical(
    candor: CandorServer, upstream: ScriptedUpstream, model: str
) -> None:
    opts = {"include_usage": True}
    with client(upstream.base_url) as direct, client(candor.base_url) as proxied:
        want = collect(
            direct.chat.completions.create(
                model=model, messages=ASK, stream=True, stream_options=opts
            )
        )
        got = collect(
            proxied.chat.completions.create(
                model=model, messages=ASK, stream=True, stream_options=opts
            )
        )
    candor_note = got.pop("candor")
    assert want.pop("candor") is None
    assert got == want
    assert candor_note["model"] == model and candor_note["request_id"].startswith("req_")


async def test_async_client_streams_and_completes(
    candor: CandorServer, upstream: ScriptedUpstream
) -> None:
    async with openai.AsyncOpenAI(base_url=candor.base_url, api_key="k", max_retries=0) as aclient:
        whole = await aclient.chat.completions.create(model="reasoning-demo", messages=ASK)
        stream = await aclient.chat.completions.create(
            model="reasoning-demo", messages=ASK, stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert whole.choices[0].message.content == text == "17 × 23 = 391."
    assert (whole.choices[0].message.model_extra or {})["reasoning_content"].startswith("The user")


def test_every_client_field_reaches_the_upstream_untouched(
    candor: CandorServer, upstream: ScriptedUpstream
) -> None:
    body = {
        "model": "fixed",
        "messages": [{"role": "system", "content": "Be brief."}, *ASK],
        "tools": [
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
        ],
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
        "temperature": 0.3,
        "n": 2,
        "seed": 42,
        "logprobs": True,
        "top_logprobs": 2,
        "stream": True,
        "stream_options": {"include_usage": True},
        "enable_thinking": False,
        "vendor": {"nested": [1, 2, {"x": None}]},
    }
    with httpx.Client(timeout=10) as http:
        response = http.post(f"{candor.base_url}/chat/completions", json=body)
        assert response.status_code == 200
    assert upstream.last_request.body == body


def test_upstream_fields_reach_the_client(candor: CandorServer, upstream: ScriptedUpstream) -> None:
    with httpx.Client(timeout=10) as http:
        response = http.post(
            f"{candor.base_url}/chat/completions",
            json={"model": "reasoning-demo", "messages": ASK, "logprobs": True, "n": 2},
        )
    data = response.json()
    assert [c["index"] for c in data["choices"]] == [0, 1]
    assert data["choices"][0]["logprobs"]["content"]
    assert data["choices"][0]["message"]["reasoning_content"]
    assert data["usage"]["total_tokens"] > 0 and data["system_fingerprint"]
    validate_completion({k: v for k, v in data.items() if k != "candor"})


def test_annotation_contract_non_streamed(candor: CandorServer, upstream: ScriptedUpstream) -> None:
    with httpx.Client(timeout=10) as http:
        response = http.post(
            f"{candor.base_url}/chat/completions",
            json={"model": "fixed", "messages": ASK},
            headers={"x-request-id": "trace-123"},
        )
    headers = response.headers
    assert headers["x-request-id"] == "trace-123"
    assert headers["x-candor-model"] == "fixed"
    assert headers["x-candor-verdict"] in ("clean", "censored", "unknown")
    assert headers["x-candor-action"] in ("pass", "flag", "reroute", "block", "shadow")
    assert "x-candor-category" in headers
    note = response.json()["candor"]
    assert note["request_id"] == "trace-123" and note["verdict"] == headers["x-candor-verdict"]
    validate_completion(response.json())


def raw_stream(base_url: str, body: dict[str, Any]) -> tuple[httpx.Response, list[bytes]]:
    with (
        httpx.Client(timeout=10) as http,
        http.stream("POST", f"{base_url}/chat/completions", json=body) as response,
    ):
        data = b"".join(response.iter_bytes())
    return response, [e for e in data.split(b"\n\n") if e]


def test_stream_chunks_conform_and_end_with_the_candor_chunk(
    candor: CandorServer, upstream: ScriptedUpstream
) -> None:
    body = {"model": "tools-demo", "messages": ASK, "stream": True}
    response, events = raw_stream(candor.base_url, body)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-candor-model"] == "tools-demo"
    assert events[-1] == b"data: [DONE]"
    chunks = [orjson.loads(e.removeprefix(b"data: ")) for e in events[:-1]]
    for chunk in chunks:
        validate_chunk(chunk)
    last = chunks[-1]
    assert last["choices"] == [] and last["candor"]["model"] == "tools-demo"
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}


def test_upstream_key_is_the_proxys_and_never_leaks(
    candor: CandorServer, upstream: ScriptedUpstream
) -> None:
    with httpx.Client(timeout=10) as http:
        response = http.post(
            f"{candor.base_url}/chat/completions",
            json={"model": "echo", "messages": [{"role": "user", "content": "say hi"}]},
            headers={"authorization": "Bearer sk-client-key"},
        )
    sent = upstream.last_request.headers
    assert sent["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert UPSTREAM_KEY not in response.text
    assert UPSTREAM_KEY not in str(response.headers)


def test_models_lists_the_routed_models(candor: CandorServer, upstream: ScriptedUpstream) -> None:
    with client(candor.base_url) as proxied:
        names = {m.id for m in proxied.models.list()}
    assert names == set(upstream.scripts)


def test_models_retrieve_names_one_routed_model(candor: CandorServer) -> None:
    # Before, GET /v1/models/{model} was a 404 for every model (the route did not exist).
    with client(candor.base_url) as proxied:
        assert proxied.models.retrieve("honest-demo").id == "honest-demo"
        with pytest.raises(openai.NotFoundError) as missing:
            proxied.models.retrieve("gpt-nope")
    assert missing.value.code == "model_not_found"


def test_models_retrieve_names_a_model_with_a_slash(
    scripted: ScriptedUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Hugging Face names (vLLM's): listed, but their retrieve was a 404 "no route" (the SDK
    # sends the slash encoded, the server decodes it into two path segments).
    name = "meta-llama/Llama-3.1-8B"
    route = ModelRoute(base_url=scripted.base_url, upstream_model="honest-demo")
    models = routes_for(scripted, **{name: route})
    server = start_candor(monkeypatch, scripted, models=models)
    try:
        with client(server.base_url) as proxied:
            assert proxied.models.retrieve(name).id == name
            with pytest.raises(openai.NotFoundError) as missing:
                proxied.models.retrieve("meta-llama/nope")
        assert missing.value.code == "model_not_found"
    finally:
        server.stop()

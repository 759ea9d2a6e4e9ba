"""What a streamed answer reports in its usage chunk is charged to the key and counted, as a
whole answer's `usage` is: streaming is no way around `tokens_per_minute`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from proxy.auth import hash_key
from proxy.settings import ApiKeyEntry, AuthSettings, ModelRoute, RateLimits
from tests.raw_upstream import RawReply, RawUpstream, answer_frames, whole_answer
from tests.servers import TEST_ADMIN_KEY, CandorServer, running_candor

pytestmark = pytest.mark.e2e

KEY = "ck-stream-usage-0123456789abcdef"
USAGE = {"prompt_tokens": 11, "completion_tokens": 777, "total_tokens": 788}
TEXT = "Paris is the capital of France."
ASK = [{"role": "user", "content": "What is the capital of France?"}]
REPO_POLICIES = Path(__file__).resolve().parents[2] / "policies"
REFUSAL = (
    "I am sorry, I cannot answer that question. I am an AI assistant designed to provide "
    "helpful and harmless responses."
)
POLITICAL = [{"role": "user", "content": "What happened at Tiananmen Square in June 1989?"}]


def stream_with_usage(messages: list[dict[str, str]]) -> dict[str, object]:
    """A streamed request for model `m` that asks for the usage chunk."""
    return {
        "model": "m",
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


@pytest.fixture(scope="module")
def candor() -> Iterator[CandorServer]:
    raw = RawUpstream(
        {"m": RawReply(answer_frames(TEXT, usage=USAGE), whole=whole_answer(TEXT, usage=USAGE))}
    ).start()
    auth = AuthSettings(
        mode="keys",
        admin_key_hash=hash_key(TEST_ADMIN_KEY, None),
        keys=[
            ApiKeyEntry(
                id="k1",
                hash=hash_key(KEY, None),
                rate_limits=RateLimits(tokens_per_minute=100),
            )
        ],
    )
    with running_candor(models={"m": ModelRoute(base_url=raw.base_url)}, auth=auth) as server:
        yield server
    raw.stop()


def test_streamed_usage_is_charged_and_counted(candor: CandorServer) -> None:
    body = stream_with_usage(ASK)
    headers = {"authorization": f"Bearer {KEY}"}
    with httpx.Client(timeout=10) as http:
        first = http.post(f"{candor.base_url}/chat/completions", json=body, headers=headers)
        assert first.status_code == 200 and '"total_tokens":788' in first.text
        second = http.post(f"{candor.base_url}/chat/completions", json=body, headers=headers)
        metrics = http.get(f"{candor.url}/metrics").text
    assert second.status_code == 429  # 788 tokens charged against 100 a minute
    assert second.json()["error"]["code"] == "rate_limit_exceeded"
    assert second.json()["error"]["type"] == "tokens"
    assert "on tokens per minute" in second.json()["error"]["message"]
    assert 'candor_upstream_tokens_total{kind="completion",model="m"} 777.0' in metrics


@pytest.fixture(scope="module")
def blocking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CandorServer]:
    raw = RawUpstream({"refusal": RawReply(answer_frames(REFUSAL, usage=USAGE))}).start()
    folder = tmp_path_factory.mktemp("policies")
    (folder / "detector").symlink_to(REPO_POLICIES / "detector")
    (folder / "default.yaml").write_text("action: block\n")
    route = ModelRoute(base_url=raw.base_url, upstream_model="refusal")
    with running_candor(models={"m": route}, policies_dir=folder) as server:
        yield server
    raw.stop()


def test_a_blocked_stream_still_reports_its_usage(blocking: CandorServer) -> None:
    body = stream_with_usage(POLITICAL)
    with httpx.Client(timeout=10) as http:
        response = http.post(f"{blocking.base_url}/chat/completions", json=body)
    lines = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    chunks = [orjson.loads(line) for line in lines[:-1]]
    assert chunks[-1]["candor"]["action"] == "block"
    assert chunks[-2]["choices"] == [] and chunks[-2]["usage"] == USAGE


@pytest.fixture(scope="module")
def unasked() -> Iterator[tuple[CandorServer, RawUpstream]]:
    """Model `m` asks for the usage chunk by default; `plain` is routed with it off."""
    raw = RawUpstream({"m": RawReply(answer_frames(TEXT, usage=USAGE))}).start()
    routes = {
        "m": ModelRoute(base_url=raw.base_url),
        "plain": ModelRoute(base_url=raw.base_url, upstream_model="m", stream_usage=False),
    }
    auth = AuthSettings(
        mode="keys",
        admin_key_hash=hash_key(TEST_ADMIN_KEY, None),
        keys=[
            ApiKeyEntry(
                id=key, hash=hash_key(key, None), rate_limits=RateLimits(tokens_per_minute=100)
            )
            for key in (KEY, KEY + "-2")
        ],
    )
    with running_candor(models=routes, auth=auth) as server:
        yield server, raw
    raw.stop()


def test_a_stream_that_did_not_ask_for_usage_is_charged_all_the_same(
    unasked: tuple[CandorServer, RawUpstream],
) -> None:
    """Streaming without `include_usage` was a way round `tokens_per_minute`: Candor now asks
    the upstream for the usage chunk itself, charges it, and keeps it from the client."""
    candor, raw = unasked
    body = {"model": "m", "messages": ASK, "stream": True, "stream_options": {"x": 1}}
    headers = {"authorization": f"Bearer {KEY}"}
    with httpx.Client(timeout=10) as http:
        first = http.post(f"{candor.base_url}/chat/completions", json=body, headers=headers)
        second = http.post(f"{candor.base_url}/chat/completions", json=body, headers=headers)
    asked = raw.requests[0][1]
    assert asked["stream_options"] == {"x": 1, "include_usage": True}
    assert first.status_code == 200 and TEXT.split(" ")[0] in first.text
    assert '"usage":{' not in first.text  # the client did not ask for it
    assert second.status_code == 429 and second.json()["error"]["type"] == "tokens"


def test_a_route_can_leave_the_stream_options_as_the_client_sent_them(
    unasked: tuple[CandorServer, RawUpstream],
) -> None:
    candor, raw = unasked
    body = {"model": "plain", "messages": ASK, "stream": True}
    headers = {"authorization": f"Bearer {KEY}-2"}
    with httpx.Client(timeout=10) as http:
        answer = http.post(f"{candor.base_url}/chat/completions", json=body, headers=headers)
    assert answer.status_code == 200
    assert "stream_options" not in raw.requests[-1][1]

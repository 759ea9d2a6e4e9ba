"""Candor API keys and per-key rate limits, seen by the official OpenAI SDK."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from proxy.app import check_settings
from proxy.auth import hash_key, new_key
from proxy.demo.upstream import ScriptedUpstream
from proxy.errors import ConfigError
from proxy.settings import ApiKeyEntry, AuthSettings, RateLimits, Settings
from tests.e2e.conftest import UPSTREAM_KEY, routes_for, start_candor
from tests.servers import TEST_ADMIN_KEY, CandorServer

pytestmark = pytest.mark.e2e
ASK = [{"role": "user", "content": "Hi"}]
KEY, LIMITED, NARROW = new_key(), new_key(), new_key()


@pytest.fixture(scope="module")
def guarded(scripted: ScriptedUpstream) -> Iterator[CandorServer]:
    auth = AuthSettings(
        keys=[
            ApiKeyEntry(id="app", hash=hash_key(KEY, None), tenant="acme"),
            ApiKeyEntry(
                id="tight",
                hash=hash_key(LIMITED, None),
                rate_limits=RateLimits(requests_per_minute=2),
            ),
            ApiKeyEntry(id="narrow", hash=hash_key(NARROW, None), models=["honest-demo"]),
        ],
        admin_key_hash=hash_key(TEST_ADMIN_KEY, None),
    )
    mp = pytest.MonkeyPatch()
    server = start_candor(mp, scripted, auth=auth)
    yield server
    server.stop()
    mp.undo()


def client(server: CandorServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)


def test_a_valid_key_is_served(guarded: CandorServer, upstream: ScriptedUpstream) -> None:
    with client(guarded, KEY) as sdk:
        answer = sdk.chat.completions.create(model="honest-demo", messages=ASK)
    assert answer.choices[0].message.content
    # The upstream sees the proxy's own upstream key, never the client's Candor key.
    assert upstream.last_request.headers.get("authorization") == f"Bearer {UPSTREAM_KEY}"


def test_the_model_list_needs_a_key(guarded: CandorServer) -> None:
    # Before, anyone could list the routed models: it said what was behind the proxy.
    with client(guarded, "ck-wrong") as sdk, pytest.raises(openai.AuthenticationError):
        sdk.models.list()
    for key in (KEY, TEST_ADMIN_KEY):
        with client(guarded, key) as sdk:
            assert "honest-demo" in {m.id for m in sdk.models.list()}


@pytest.mark.parametrize("key", ["ck-wrong", "sk-an-openai-key"])
def test_an_unknown_key_is_401(guarded: CandorServer, key: str) -> None:
    with client(guarded, key) as sdk, pytest.raises(openai.AuthenticationError) as refused:
        sdk.chat.completions.create(model="honest-demo", messages=ASK)
    assert refused.value.code == "invalid_api_key"
    assert refused.value.status_code == 401


def test_rate_limit_is_429_with_retry_after(guarded: CandorServer) -> None:
    with client(guarded, LIMITED) as sdk:
        for _ in range(2):
            sdk.chat.completions.create(model="honest-demo", messages=ASK)
        with pytest.raises(openai.RateLimitError) as limited:
            sdk.chat.completions.create(model="honest-demo", messages=ASK)
    assert limited.value.code == "rate_limit_exceeded"
    assert 1 <= int(limited.value.response.headers["retry-after"]) <= 60
    with client(guarded, KEY) as sdk:  # other keys are not affected
        sdk.chat.completions.create(model="honest-demo", messages=ASK)


def test_a_key_limited_to_some_models_is_refused_the_others(guarded: CandorServer) -> None:
    # Before, every key could ask for every routed model.
    with client(guarded, NARROW) as sdk:
        assert sdk.chat.completions.create(model="honest-demo", messages=ASK).choices
        assert {m.id for m in sdk.models.list()} == {"honest-demo"}
        assert sdk.models.retrieve("honest-demo").id == "honest-demo"
        refusals = [
            lambda: sdk.chat.completions.create(model="qwen-demo", messages=ASK),
            lambda: sdk.chat.completions.create(model="qwen-demo", messages=ASK, stream=True),
            lambda: sdk.embeddings.create(model="qwen-demo", input="hi"),
            lambda: sdk.models.retrieve("qwen-demo"),
        ]
        for refused_call in refusals:
            with pytest.raises(openai.NotFoundError) as refused:
                refused_call()
            assert refused.value.code == "model_not_found"
            assert "do not have access" in refused.value.message
    with client(guarded, KEY) as sdk:  # a key that names no models may ask for every one
        assert "qwen-demo" in {m.id for m in sdk.models.list()}
    with client(guarded, TEST_ADMIN_KEY) as sdk:
        assert "qwen-demo" in {m.id for m in sdk.models.list()}


def test_a_key_naming_a_model_not_routed_stops_the_start(scripted: ScriptedUpstream) -> None:
    entry = ApiKeyEntry(id="typo", hash=hash_key(KEY, None), models=["honest-dmeo"])
    auth = AuthSettings(keys=[entry], admin_key_hash=hash_key(TEST_ADMIN_KEY, None))
    settings = Settings(models=routes_for(scripted), auth=auth)
    with pytest.raises(ConfigError, match=r"key typo names model\(s\) not routed: honest-dmeo"):
        check_settings(settings)

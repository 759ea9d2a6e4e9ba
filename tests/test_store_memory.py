"""The embedded store: the shared contract, plus windows and retention on a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from proxy.settings import RateLimits, Settings, StoreSettings
from proxy.store import build_store, conversation_fingerprint
from proxy.store.events import make_event
from proxy.store.memory import MemoryStore
from tests.store_contract import Clock, StoreContract, all_events, event


@pytest.fixture
async def store() -> AsyncIterator[MemoryStore]:
    memory = MemoryStore(StoreSettings())
    await memory.start()
    yield memory
    await memory.aclose()


@pytest.fixture
def other(store: MemoryStore) -> MemoryStore:
    return store


class TestMemoryStore(StoreContract):
    pass


async def test_counts_slide_out_of_the_window() -> None:
    clock = Clock()
    store = MemoryStore(StoreSettings(window_seconds=3600, window_buckets=60), clock=clock)
    await store.record_verdict("qwen", ["tibet"], censored=True)
    clock.now += 1800
    await store.record_verdict("qwen", ["tibet"], censored=False)
    assert (await store.censorship_rate("qwen", "tibet")).scanned == 2
    clock.now += 1900
    counts = await store.censorship_rate("qwen", "tibet")
    assert (counts.censored, counts.scanned) == (0, 1)


async def test_censored_memory_expires() -> None:
    clock = Clock()
    store = MemoryStore(StoreSettings(censored_memory_seconds=60), clock=clock)
    await store.remember_censored("qwen", "abc")
    clock.now += 59
    assert await store.was_censored("qwen", "abc")
    clock.now += 2
    assert not await store.was_censored("qwen", "abc")


async def test_censored_memory_is_bounded_and_drops_the_oldest() -> None:
    # A busy model censors more prompts than the bound within `censored_memory_seconds`: the
    # oldest are forgotten (before, nothing was, and each call rebuilt the whole memory).
    clock = Clock()
    store = MemoryStore(StoreSettings(censored_memory_count=3), clock=clock)
    for n in range(5):
        await store.remember_censored("qwen", f"p{n}")
        clock.now += 1
    remembered = [await store.was_censored("qwen", f"p{n}") for n in range(5)]
    assert remembered == [False, False, True, True, True]
    await store.remember_censored("qwen", "p2")  # remembered again: now the newest
    await store.remember_censored("qwen", "p5")
    assert await store.was_censored("qwen", "p2")
    assert not await store.was_censored("qwen", "p3")
    assert len(store._censored) == 3


async def test_expired_censored_prompts_are_let_go() -> None:
    clock = Clock()
    store = MemoryStore(StoreSettings(censored_memory_seconds=60), clock=clock)
    for n in range(10):
        await store.remember_censored("qwen", f"p{n}")
    clock.now += 61
    await store.remember_censored("qwen", "new")
    assert len(store._censored) == 1


async def test_requests_come_back_as_the_minute_passes() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    limits = RateLimits(requests_per_minute=2)
    assert (await store.take("k", limits=limits)).allowed
    assert (await store.take("k", limits=limits)).allowed
    refused = await store.take("k", limits=limits)
    assert not refused.allowed and refused.retry_after == pytest.approx(30)
    clock.now += 30
    assert (await store.take("k", limits=limits)).allowed


async def test_retention_bounds_the_log() -> None:
    clock = Clock()
    settings = StoreSettings(event_retention_count=3, event_retention_seconds=3600)
    store = MemoryStore(settings, clock=clock)
    for n in range(5):
        await store.append_event(event(n, at=clock.now))
    assert [e.id for e in await all_events(store)] == ["evt4", "evt3", "evt2"]
    clock.now += 3601
    assert await all_events(store) == []


def test_redaction() -> None:
    text = "x" * 30
    full = make_event(request_id="r", model="m", action="flag", prompt=text, redaction="full")
    cut = make_event(
        request_id="r", model="m", action="flag", prompt=text, answer="ok", excerpt_chars=10
    )
    none = make_event(request_id="r", model="m", action="flag", prompt=text, redaction="none")
    assert full.prompt_excerpt == text
    assert cut.prompt_excerpt == "x" * 10 + "…" and cut.answer_excerpt == "ok"
    assert none.prompt_excerpt is None and none.answer_excerpt is None


def test_fingerprint_ignores_case_and_spacing_not_words() -> None:
    one = [{"role": "user", "content": "What happened at  Tiananmen\nin 1989?"}]
    same = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "what happened AT tiananmen in 1989?"}],
        }
    ]
    other = [{"role": "user", "content": "What happened at Tiananmen in 1990?"}]
    assert conversation_fingerprint("qwen", one) == conversation_fingerprint("qwen", same)
    assert conversation_fingerprint("qwen", one) != conversation_fingerprint("qwen", other)
    assert conversation_fingerprint("qwen", one) != conversation_fingerprint("deepseek", one)
    with_system = [{"role": "system", "content": "Be brief."}, *one]
    assert conversation_fingerprint("qwen", with_system) != conversation_fingerprint("qwen", one)


def test_build_store_picks_memory_without_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert build_store(Settings()).kind == "memory"
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    assert build_store(Settings()).kind == "redis"

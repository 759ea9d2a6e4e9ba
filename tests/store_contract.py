"""Behaviour every store must have, run against each implementation by subclassing.

Subclasses provide a `store` fixture (started, closed after the test) and `other`, a second
store instance that shares its state (the same object for the memory store)."""

from __future__ import annotations

import asyncio
import time

import pytest

from proxy.settings import RateLimits
from proxy.store.base import ALL_TOPICS, Store
from proxy.store.events import AuditEvent, make_event


def event(n: int, **fields: object) -> AuditEvent:
    base: dict[str, object] = {"model": "qwen", "action": "flag", "category": "refusal"}
    base.update({"request_id": f"req{n}", "event_id": f"evt{n}", **fields})
    return make_event(**base)  # type: ignore[arg-type]


class Clock:
    """A store's clock, moved by the test."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def all_events(store: Store, **filters: object) -> list[AuditEvent]:
    found: list[AuditEvent] = []
    cursor: str | None = None
    for _ in range(100):
        page = await store.list_events(cursor=cursor, limit=3, **filters)  # type: ignore[arg-type]
        found += page.events
        cursor = page.next_cursor
        if cursor is None:
            return found
    raise AssertionError("pagination did not end")


class StoreContract:
    async def test_events_newest_first_across_pages_each_once(self, store: Store) -> None:
        for n in range(8):
            await store.append_event(event(n))
        events = await all_events(store)
        assert [e.id for e in events] == [f"evt{n}" for n in reversed(range(8))]

    async def test_after_lists_what_was_written_since_whatever_its_time(
        self, store: Store, other: Store
    ) -> None:
        # A follower asked for events newer than the last time it had seen: one written later
        # with an earlier time (a longer request, another worker's) was skipped.
        now = time.time()
        await store.append_event(event(1, at=now))
        head = (await store.list_events(limit=1)).head_cursor
        assert head is not None
        await other.append_event(event(2, at=now - 30))
        await store.append_event(event(3, at=now))
        await other.append_event(event(4, at=now - 0.0004))
        page = await other.list_events(after=head, limit=500)
        assert [e.id for e in page.events] == ["evt4", "evt3", "evt2"]
        assert page.next_cursor is None
        assert [e.id for e in await all_events(store, after=head)] == ["evt4", "evt3", "evt2"]
        assert (await store.list_events(after=page.head_cursor)).events == []

    async def test_events_past_retention_are_not_listed(self, store: Store, other: Store) -> None:
        # Before, Redis listed them until a write trimmed the stream (and trims only roughly);
        # the memory store stopped at the first one, hiding older-written events still kept.
        now = time.time()
        await store.append_event(event(1, at=now - 10))
        head = (await store.list_events(limit=1)).head_cursor
        await other.append_event(event(2, at=now - 31 * 86400))  # the default keeps 30 days
        await store.append_event(event(3, at=now))
        assert [e.id for e in await all_events(other)] == ["evt3", "evt1"]
        assert [e.id for e in await all_events(store, after=head)] == ["evt3"]

    async def test_the_same_event_is_kept_once(self, store: Store, other: Store) -> None:
        await store.append_event(event(1))
        await other.append_event(event(1))
        await store.append_event(event(1))
        assert [e.id for e in await all_events(store)] == ["evt1"]

    async def test_event_round_trips_every_field(self, store: Store) -> None:
        sent = make_event(
            request_id="r",
            model="qwen",
            action="reroute",
            policy="strict",
            outcome="rerouted",
            streamed=True,
            duration_seconds=1.25,
            reason="deflection",
            models_asked=[
                {"model": "qwen", "verdict": "censored", "category": "deflection", "failure": None},
                {"model": "llama", "verdict": "clean", "category": "none", "failure": None},
            ],
            fallback_model="llama",
            category="deflection",
            topics=["tiananmen", "censorship"],
            language="zh",
            score=0.93,
            signals=["refusal_phrase"],
            tenant="acme",
            key_id="k1",
            prompt="What happened in 1989?",
            answer="Let's talk about something else.",
            fallback_answer="In June 1989...",
        )
        await store.append_event(sent)
        (got,) = (await store.list_events()).events
        assert got == sent

    async def test_filters(self, store: Store) -> None:
        now = time.time()
        await store.append_event(event(1, model="qwen", topics=["taiwan"], at=now - 300))
        await store.append_event(event(2, model="deepseek", topics=["tibet"], at=now - 200))
        await store.append_event(event(3, model="qwen", category="deflection", at=now - 100))
        assert [e.id for e in await all_events(store, model="qwen")] == ["evt3", "evt1"]
        assert [e.id for e in await all_events(store, topic="tibet")] == ["evt2"]
        assert [e.id for e in await all_events(store, category="deflection")] == ["evt3"]
        assert [e.id for e in await all_events(store, since=now - 250)] == ["evt3", "evt2"]

    async def test_counts_are_per_model_and_topic(self, store: Store, other: Store) -> None:
        await store.record_verdict("qwen", ["tiananmen"], censored=True)
        await other.record_verdict("qwen", ["tiananmen", "taiwan"], censored=False)
        await other.record_verdict("deepseek", ["tiananmen"], censored=True)
        tiananmen = await store.censorship_rate("qwen", "tiananmen")
        assert (tiananmen.censored, tiananmen.scanned) == (1, 2)
        assert tiananmen.rate == 0.5
        assert await other.censorship_rate("qwen", "taiwan") == type(tiananmen)(0, 1)
        overall = await store.censorship_rate("qwen", ALL_TOPICS)
        assert (overall.censored, overall.scanned) == (1, 2)
        assert (await store.censorship_rate("qwen", "tibet")).scanned == 0

    async def test_censored_prompts_are_remembered(self, store: Store, other: Store) -> None:
        await store.remember_censored("qwen", "f" * 64)
        assert await other.was_censored("qwen", "f" * 64)
        assert not await other.was_censored("deepseek", "f" * 64)
        assert not await other.was_censored("qwen", "0" * 64)

    async def test_requests_per_minute(self, store: Store, other: Store) -> None:
        limits = RateLimits(requests_per_minute=2)
        assert (await store.take("k1", limits=limits)).allowed
        assert (await other.take("k1", limits=limits)).allowed
        refused = await store.take("k1", limits=limits)
        assert not refused.allowed and 0 < refused.retry_after <= 60
        assert refused.limit == "requests"
        assert (await other.take("k2", limits=limits)).allowed

    async def test_tokens_per_minute_and_usage_debt(self, store: Store, other: Store) -> None:
        limits = RateLimits(tokens_per_minute=100)
        assert (await store.take("k", tokens=60, limits=limits)).allowed
        assert not (await other.take("k", tokens=60, limits=limits)).allowed
        assert (await other.take("k", tokens=30, limits=limits)).allowed
        await store.add_tokens("k", 500)  # usage learnt after the answer
        refused = await other.take("k", limits=limits)
        assert not refused.allowed and refused.retry_after > 60
        assert refused.limit == "tokens"  # OpenAI's 429 says which limit ran out

    async def test_the_longest_wait_names_the_limit(self, store: Store, other: Store) -> None:
        limits = RateLimits(requests_per_minute=60, tokens_per_minute=100)
        assert (await store.take("both", tokens=100, limits=limits)).allowed
        refused = await other.take("both", tokens=50, limits=limits)
        assert (refused.limit, refused.retry_after) == ("tokens", pytest.approx(30, abs=1))
        requests_only = RateLimits(requests_per_minute=1, tokens_per_minute=10**6)
        assert (await store.take("r", tokens=1, limits=requests_only)).allowed
        assert (await other.take("r", tokens=1, limits=requests_only)).limit == "requests"

    async def test_no_limits_always_allowed(self, store: Store) -> None:
        for _ in range(50):
            assert (await store.take("free", tokens=10**6, limits=RateLimits())).allowed

    async def test_concurrent_takes_are_atomic(self, store: Store, other: Store) -> None:
        limits = RateLimits(requests_per_minute=10)
        decisions = await asyncio.gather(
            *(s.take("busy", limits=limits) for _ in range(15) for s in (store, other))
        )
        assert sum(d.allowed for d in decisions) == 10

    async def test_healthy(self, store: Store) -> None:
        assert await store.ping()
        health = store.health()
        assert health.reachable and health.buffered == 0 and health.dropped == 0

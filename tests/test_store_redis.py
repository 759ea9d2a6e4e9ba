"""The Redis store against a real redis-server (and a real three-node Redis Cluster): the
shared contract, state shared by two store instances, and Redis dying or stalling under load."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from proxy.settings import RateLimits, StoreSettings, StoreTimeouts
from proxy.store.redis import RedisStore, redacted
from tests.redis_fixtures import (
    RedisCluster,
    RedisServer,
    full_redis_server,
    redis_cluster,
    redis_server,
)
from tests.servers import free_port
from tests.store_contract import Clock, StoreContract, all_events, event

__all__ = ["full_redis_server", "redis_cluster", "redis_server"]
pytestmark = pytest.mark.redis

Pair = tuple[RedisStore, RedisStore]


def settings_for(url: str, *, cluster: bool = False, **extra: Any) -> StoreSettings:
    # Generous operation timeouts: the test machine is shared and a spurious timeout would
    # fail open; the kill tests show how fast the store gives up on a Redis that is gone.
    options: dict[str, Any] = {
        "key_prefix": f"t{uuid.uuid4().hex[:10]}",
        "timeouts": StoreTimeouts(connect=1.0, operation=2.0, retry_interval=0.1),
        **extra,
    }
    return StoreSettings(redis_url=url, cluster=cluster, **options)


async def started(settings: StoreSettings, count: int = 2) -> list[RedisStore]:
    stores = [RedisStore(settings) for _ in range(count)]
    for store in stores:
        await store.start()
    return stores


async def eventually(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


@pytest.fixture
async def pair(redis_server: RedisServer) -> AsyncIterator[Pair]:
    """Two store instances on one Redis: two replicas of Candor."""
    one, two = await started(settings_for(redis_server.url))
    yield one, two
    await one.aclose()
    await two.aclose()


@pytest.fixture
def store(pair: Pair) -> RedisStore:
    return pair[0]


@pytest.fixture
def other(pair: Pair) -> RedisStore:
    return pair[1]


class TestRedisStore(StoreContract):
    pass


class TestRedisClusterStore(StoreContract):
    """The same behaviour, unchanged, on a three-node Redis Cluster."""

    @pytest.fixture
    async def pair(self, redis_cluster: RedisCluster) -> AsyncIterator[Pair]:
        one, two = await started(settings_for(redis_cluster.url, cluster=True))
        yield one, two
        await one.aclose()
        await two.aclose()

    async def test_keys_spread_over_the_nodes(self, store: RedisStore, other: RedisStore) -> None:
        limits = RateLimits(requests_per_minute=5)
        for n in range(30):
            await store.record_verdict(f"model{n}", ["tibet"], censored=True)
            await store.take(f"key{n}", limits=limits)
            await store.remember_censored(f"model{n}", "f" * 64)
        assert all([await other.was_censored(f"model{n}", "f" * 64) for n in range(30)])
        counts = [await other.censorship_rate(f"model{n}", "tibet") for n in range(30)]
        assert all(c.censored == 1 for c in counts)


async def test_redis_killed_mid_load(redis_server: RedisServer) -> None:
    """Calls keep returning, fast and permissive, while Redis is gone; every audit event
    written or buffered meanwhile is in the log exactly once after Redis comes back."""
    one, two = await started(settings_for(redis_server.url))
    sent: list[str] = []
    slowest = 0.0
    unlimited = RateLimits(requests_per_minute=1_000_000)

    async def replica(store: RedisStore, name: str) -> None:
        nonlocal slowest
        for n in range(80):
            began = time.monotonic()
            await store.append_event(event(n, event_id=f"{name}-{n}"))
            sent.append(f"{name}-{n}")
            assert (await store.take("k", limits=unlimited)).allowed
            await store.record_verdict("qwen", ["tibet"], censored=n % 2 == 0)
            await store.was_censored("qwen", "f" * 64)
            slowest = max(slowest, time.monotonic() - began)
            await asyncio.sleep(0.01)

    async def crash() -> None:
        await asyncio.sleep(0.3)
        await asyncio.to_thread(redis_server.kill)

    try:
        await asyncio.gather(replica(one, "a"), replica(two, "b"), crash())
        assert not one.health().reachable and not two.health().reachable
        assert one.health().buffered + two.health().buffered > 0
        assert slowest < 5.0
        await asyncio.to_thread(redis_server.start)
        await eventually(lambda: one.health().buffered == two.health().buffered == 0)
        assert one.health().reachable and one.health().dropped == two.health().dropped == 0
        logged = [e.id for e in await all_events(one)]
        assert sorted(logged) == sorted(sent)
    finally:
        await one.aclose()
        await two.aclose()


async def test_a_write_that_timed_out_lands_once(redis_server: RedisServer) -> None:
    """A stalled Redis runs the write after the store gave up and buffered it: the event id
    makes the retry a no-op."""
    (store,) = await started(
        settings_for(redis_server.url, timeouts=StoreTimeouts(operation=0.3, retry_interval=0.1)),
        count=1,
    )
    try:
        stall = asyncio.create_task(asyncio.to_thread(redis_server.cli, "debug", "sleep", "1.5"))
        await asyncio.sleep(0.2)
        await store.append_event(event(1))
        assert store.health().buffered == 1
        await stall
        await eventually(lambda: store.health().buffered == 0 and store.health().reachable)
        assert [e.id for e in await all_events(store)] == ["evt1"]
    finally:
        await store.aclose()


class _LateReply:
    """A TCP relay to Redis that holds the next reply back for `delay` seconds, once: a reply
    the store waits for too long although Redis ran the command (a starved event loop, a slow
    network), on a connection that works again at once."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.delay = 0.0
        self.server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        redis_r, redis_w = await asyncio.open_connection("127.0.0.1", self.target)
        self._writers += [client_w, redis_w]

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, late: bool) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    if late and self.delay:
                        delay, self.delay = self.delay, 0.0
                        await asyncio.sleep(delay)
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(client_r, redis_w, False), pump(redis_r, client_w, True))

    async def aclose(self) -> None:
        for writer in self._writers:
            writer.close()
        for writer in self._writers:
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_a_take_whose_reply_came_late_is_charged_once(redis_server: RedisServer) -> None:
    """Redis ran the take but its reply came after the store gave up: the store fails open
    and must not send the take again, or one request is charged twice."""
    relay = _LateReply(redis_server.port)
    url = await relay.start()
    (store,) = await started(
        settings_for(url, timeouts=StoreTimeouts(operation=0.3, retry_interval=0.1)), count=1
    )
    limits = RateLimits(requests_per_minute=3)
    try:
        await store.take("warm", limits=limits)  # Redis has the script: one round trip a take
        relay.delay = 0.6
        assert (await store.take("late", limits=limits)).allowed  # failed open
        await eventually(lambda: store.health().reachable)
        allowed = [(await store.take("late", limits=limits)).allowed for _ in range(3)]
        assert allowed == [True, True, False]
    finally:
        await store.aclose()
        await relay.aclose()


async def test_buffer_overflow_is_counted(redis_server: RedisServer) -> None:
    (store,) = await started(settings_for(redis_server.url, buffer_size=3), count=1)
    try:
        redis_server.kill()
        for n in range(5):
            await store.append_event(event(n))
        health = store.health()
        assert (health.reachable, health.buffered, health.dropped) == (False, 3, 2)
        redis_server.start()
        await eventually(lambda: store.health().buffered == 0)
        assert [e.id for e in await all_events(store)] == ["evt2", "evt1", "evt0"]
        assert store.health().dropped == 2
    finally:
        await store.aclose()


async def test_fail_open_answers_without_waiting(redis_server: RedisServer) -> None:
    (store,) = await started(settings_for(redis_server.url), count=1)
    try:
        limits = RateLimits(requests_per_minute=1)
        await store.remember_censored("qwen", "abc")
        redis_server.kill()
        began = time.monotonic()
        for _ in range(20):
            assert (await store.take("k", limits=limits)).allowed
            assert not await store.was_censored("qwen", "abc")
            assert (await store.censorship_rate("qwen", "tibet")).scanned == 0
        assert time.monotonic() - began < 5.0
        assert not await store.ping()
    finally:
        await store.aclose()


async def test_event_retention_is_bounded(redis_server: RedisServer) -> None:
    (store,) = await started(settings_for(redis_server.url, event_retention_count=10), count=1)
    try:
        for n in range(300):
            await store.append_event(event(n))
        length = int(redis_server.cli("xlen", f"{store._keys.events}"))
        assert 10 <= length < 300
    finally:
        await store.aclose()


async def test_events_expire_when_read_before_any_trim(redis_server: RedisServer) -> None:
    # Before, expired events were listed until the next write trimmed the stream.
    clock = Clock(time.time())
    store = RedisStore(settings_for(redis_server.url, event_retention_seconds=60), clock=clock)
    await store.start()
    try:
        await store.append_event(event(1, at=clock.now))
        assert [e.id for e in await all_events(store)] == ["evt1"]
        clock.now += 61
        assert await all_events(store) == []
        assert int(redis_server.cli("xlen", store._keys.events)) == 1  # no trim ran
    finally:
        await store.aclose()


async def test_an_event_stored_before_a_field_was_added_still_loads(
    redis_server: RedisServer,
) -> None:
    # Written by an older Candor: without `client_left` (and the other fields added since).
    (store,) = await started(settings_for(redis_server.url), count=1)
    try:
        old = {
            "id": "evt_old",
            "time": time.time(),
            "request_id": "r",
            "model": "m",
            "action": "flag",
        }
        redis_server.cli("xadd", store._keys.events, "*", "e", orjson.dumps(old).decode())
        (loaded,) = await all_events(store)
        assert (loaded.id, loaded.action, loaded.client_left) == ("evt_old", "flag", False)
    finally:
        await store.aclose()


async def test_a_redis_refusing_writes_is_logged_once_and_events_wait(
    full_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Before, each refused write logged a traceback (several per request) and health() said
    # all was well; the buffer was flushed into the refusals every retry_interval.
    (store,) = await started(settings_for(full_redis_server.url), count=1)
    limits = RateLimits(requests_per_minute=1)
    try:
        with caplog.at_level(logging.INFO, logger="proxy.store.redis"):
            for n in range(20):
                await store.append_event(event(n))
                assert (await store.take("k", limits=limits)).allowed  # fails open
                await store.record_verdict("qwen", ["tibet"], censored=True)
                await store.remember_censored("qwen", "f" * 64)
            await asyncio.sleep(0.5)  # a few supervisor rounds
            health = store.health()
            assert (health.reachable, health.writable, health.buffered) == (True, False, 20)
            refused = [r for r in caplog.records if r.levelno >= logging.WARNING]
            assert len(refused) == 1, [r.getMessage() for r in refused]
            assert "refuses writes" in refused[0].getMessage()
            assert await store.ping()  # reads still work
            full_redis_server.cli("config", "set", "maxmemory", "0")
            await eventually(lambda: store.health().writable and store.health().buffered == 0)
        again = [r.getMessage() for r in caplog.records if "accepts writes again" in r.getMessage()]
        assert len(again) == 1
        assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1
        assert [e.id for e in await all_events(store)] == [f"evt{n}" for n in reversed(range(20))]
    finally:
        await store.aclose()


async def test_close_and_cancel_are_prompt_while_redis_stalls(redis_server: RedisServer) -> None:
    """A call cut short by its caller stays cancelled, and closing the store does not wait for
    a stalled Redis beyond its own timeouts."""
    (store,) = await started(
        settings_for(redis_server.url, timeouts=StoreTimeouts(operation=0.5, retry_interval=0.05)),
        count=1,
    )
    stall = asyncio.create_task(asyncio.to_thread(redis_server.cli, "debug", "sleep", "2"))
    try:
        await asyncio.sleep(0.2)
        call = asyncio.create_task(store.was_censored("qwen", "abc"))
        await asyncio.sleep(0.1)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        began = time.monotonic()
        await store.aclose()
        assert time.monotonic() - began < 1.9
    finally:
        await stall
        await store.aclose()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:S3cretPw@h:1/0", "redis://:***@h:1/0"),
        ("redis://h:1/0?db=1&password=S3cretPw", "redis://h:1/0?db=1&password=***"),
        ("unix:///run/redis.sock?password=S3cretPw", "unix:///run/redis.sock?password=***"),
        ("rediss://h/0", "rediss://h/0"),
    ],
)
def test_a_password_is_masked_wherever_the_url_holds_it(url: str, shown: str) -> None:
    # Before, one in the query (the form a unix:// URL takes) went into the log.
    assert redacted(url) == shown


@pytest.mark.parametrize("cause", ["nothing listens", "wrong password", "no password"])
async def test_a_redis_away_from_the_start_is_logged(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture, cause: str
) -> None:
    # Only changes of state were logged, and the store starts out unreachable: nothing was.
    redis_server.cli("config", "set", "requirepass", "RealPassw0rd")
    port = free_port() if cause == "nothing listens" else redis_server.port
    password = "" if cause == "no password" else ":S3cretPw@"
    url = f"redis://{password}127.0.0.1:{port}/0" if password else f"redis://127.0.0.1:{port}/0"
    with caplog.at_level(logging.INFO, logger="proxy.store.redis"):
        (store,) = await started(settings_for(url), count=1)
        try:
            await asyncio.sleep(0.5)  # a few more probes, which fail too: logged once
        finally:
            await store.aclose()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "unreachable from the start" in warnings[0]
    assert f"127.0.0.1:{port}" in warnings[0] and "S3cretPw" not in warnings[0]
    assert "S3cretPw" not in caplog.text

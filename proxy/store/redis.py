"""The Redis store: what replicas share, on one Redis or a Redis Cluster.

Fail-open: every call is bounded by short timeouts; after a failure the store is marked
unreachable and calls answer permissively at once (no waiting on a dead socket) until the
supervised background task sees Redis again and flushes the buffered audit events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    ClusterError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

from proxy.errors import StoreUnavailable
from proxy.settings import RateLimits, StoreSettings
from proxy.store import lua
from proxy.store.base import ALL_TOPICS, ALLOW, RateDecision, StoreHealth, WindowCounts
from proxy.store.buffer import EventBuffer
from proxy.store.events import AuditEvent, EventPage, kept_since, matches
from proxy.store.keys import Keys, count_fields
from proxy.store.window import Window

log = logging.getLogger(__name__)
T = TypeVar("T")
Client = Redis | RedisCluster
SCAN_BATCH = 200
SCAN_LIMIT = 5000  # entries read per page at most; a sparse filter continues via the cursor
CLOCK_SKEW = 60.0  # seconds between replicas' clocks that `since` tolerates
# How long an event id is remembered: a retried write within it lands once. Bounded so the
# dedupe keys of a busy deployment do not outgrow the stream itself.
DEDUPE_SECONDS = 86400


class RedisStore:
    """Shared state in Redis: audit stream, window counts, censored memory, rate limits."""

    kind = "redis"

    def __init__(self, settings: StoreSettings, clock: Callable[[], float] = time.time) -> None:
        if settings.redis_url is None:
            raise ValueError("RedisStore needs store.redis_url")
        self._settings = settings
        self._clock = clock  # for the count windows; rate limits use Redis's own clock
        self._url = settings.redis_url
        self._keys = Keys(settings.key_prefix)
        self._window = Window(settings.window_seconds, settings.window_buckets)
        self._timeout = settings.timeouts.operation
        self._buffer = EventBuffer(settings.buffer_size)
        self._client: Client | None = None
        self._scripts: dict[str, Any] = {}
        self._reachable = False
        self._writable = True  # False while Redis refuses writes for want of memory
        self._probed = False  # until the first call, Redis is neither up nor known to be down
        self._task: asyncio.Task[None] | None = None
        self._flushing = asyncio.Lock()
        self._closing = asyncio.Event()

    def _connect(self) -> Client:
        timeouts = self._settings.timeouts
        options: dict[str, Any] = {
            "socket_timeout": timeouts.operation,
            "socket_connect_timeout": timeouts.connect,
            # One retry replaces a pooled socket Redis closed. Never on a timeout: Redis may
            # have run the command, and a take or a count sent twice charges twice.
            "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        }
        if self._settings.cluster:
            return RedisCluster.from_url(self._url, **options)
        return Redis.from_url(self._url, **options)

    async def start(self) -> None:
        self._client = self._connect()
        for name, source in (
            ("append", lua.APPEND_EVENT),
            ("take", lua.TAKE),
            ("add_tokens", lua.ADD_TOKENS),
        ):
            self._scripts[name] = self._client.register_script(source)
        await self.ping()
        self._task = asyncio.create_task(self._supervise(), name="candor-store-supervisor")

    async def aclose(self) -> None:
        self._closing.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if len(self._buffer) and await self.ping():
            await self._flush()
        left = self._buffer.abandon()
        if left:
            log.warning("store closing with Redis away: %d audit event(s) lost", left)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def health(self) -> StoreHealth:
        return StoreHealth(self._reachable, len(self._buffer), self._buffer.dropped, self._writable)

    async def ping(self) -> bool:
        if self._client is None:
            return False
        ok = await self._bounded(lambda: self._require().ping(), False, probe=True)
        return bool(ok)

    def _require(self) -> Client:
        assert self._client is not None, "start() the store first"
        return self._client

    async def _bounded(
        self, call: Callable[[], Awaitable[T]], fallback: T, *, probe: bool = False
    ) -> T:
        """Run one Redis call within the timeout; on failure mark Redis away and fall back."""
        if self._client is None or not (self._reachable or probe):
            return fallback
        try:
            # Cluster calls may retry internally: bound the whole call, not only each socket.
            async with asyncio.timeout(2 * (self._timeout + self._settings.timeouts.connect)):
                result = await call()
        except (RedisError, OSError, TimeoutError) as exc:
            if _being_cancelled():
                # redis-py can report a cancelled read as a connection error: keep the cancel.
                raise asyncio.CancelledError from exc
            if isinstance(exc, OutOfMemoryError):
                self._mark(True)  # it answered: reads still work
                self._mark_writable(False, exc)
                return fallback
            if isinstance(exc, ResponseError) and not isinstance(exc, ClusterError | ReadOnlyError):
                log.exception("Redis refused a store command")
                return fallback
            self._mark(False, exc)  # unreachable, cluster down, or a read-only replica
            return fallback
        self._mark(True)
        return result

    def _mark(self, reachable: bool, exc: BaseException | None = None) -> None:
        if reachable and not self._reachable:
            log.info("Redis store reachable")
        elif not reachable and not self._probed:
            # Only a change of state is logged after this: a Redis away (or refusing the
            # password) from the start would otherwise never be.
            log.warning(
                "Redis store at %s unreachable from the start, failing open: %s: %s",
                redacted(self._url),
                type(exc).__name__,
                exc,
            )
        elif not reachable and self._reachable:
            log.warning("Redis store unreachable, failing open: %s", type(exc).__name__)
        self._probed = True
        self._reachable = reachable

    def _mark_writable(self, writable: bool, exc: BaseException | None = None) -> None:
        """Log a change only: a full Redis refuses every request's writes."""
        if writable and not self._writable:
            log.info("Redis store accepts writes again")
        elif not writable and self._writable:
            log.warning(
                "Redis store refuses writes (%s), failing open: audit events are buffered, "
                "rate limits allow, counts stop until it has memory again",
                exc,
            )
        self._writable = writable

    async def _probe_write(self) -> None:
        """While Redis refuses writes, one small write says when it takes them again."""
        key = self._keys.write_probe
        if await self._bounded(lambda: self._require().set(key, b"1", ex=60), None):
            self._mark_writable(True)

    async def _supervise(self) -> None:
        """Probe Redis and flush the buffer whenever it answers."""
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self._settings.timeouts.retry_interval)
                return
            try:
                # Probing while reachable too keeps health() true for idle replicas.
                await self.ping()
                if self._reachable and not self._writable:
                    await self._probe_write()
                if self._reachable and self._writable and len(self._buffer):
                    await self._flush()
            except Exception:
                log.exception("store supervisor iteration failed")

    async def _flush(self) -> None:
        async with self._flushing:
            while (event := self._buffer.peek()) is not None:
                if await self._write(event) is None:
                    return
                self._buffer.pop()

    async def _write(self, event: AuditEvent) -> int | None:
        """1 written, 0 already there, None when Redis did not answer."""
        retention = self._settings.event_retention_seconds
        min_id = "" if retention is None else str(int((time.time() - retention) * 1000))
        args = [
            orjson.dumps(event.to_dict()),
            self._settings.event_retention_count,
            DEDUPE_SECONDS,
            min_id,
        ]
        keys = [self._keys.events, self._keys.event_seen(event.id)]
        script = self._scripts["append"]
        result: int | None = await self._bounded(lambda: script(keys=keys, args=args), None)
        return result

    async def append_event(self, event: AuditEvent) -> None:
        # While older events wait, newer ones queue behind them to keep the log in order.
        if len(self._buffer) or await self._write(event) is None:
            self._buffer.push(event)

    async def list_events(
        self,
        *,
        model: str | None = None,
        category: str | None = None,
        topic: str | None = None,
        since: float | None = None,
        cursor: str | None = None,
        after: str | None = None,
        limit: int = 50,
    ) -> EventPage:
        if not self._reachable and not await self.ping():
            raise StoreUnavailable("the shared store (Redis) does not answer")
        client = self._require()
        since = kept_since(since, self._settings.event_retention_seconds, self._clock())
        newest = "+" if cursor is None else f"({cursor}"
        oldest = "-" if since is None else str(max(0, int((since - CLOCK_SKEW) * 1000)))
        if after is not None:
            # Stream ids are in write order (Redis keeps them increasing); event times are not.
            oldest = f"({after}"
        found: list[AuditEvent] = []
        scanned = 0
        head: str | None = None
        last: str | None = None
        while len(found) < limit and scanned < SCAN_LIMIT:
            bound = newest if last is None else f"({last}"
            try:
                async with asyncio.timeout(self._timeout * 4):
                    batch = cast(
                        "list[tuple[bytes, dict[bytes, bytes]]]",
                        await client.xrevrange(self._keys.events, bound, oldest, SCAN_BATCH),
                    )
            except (RedisError, OSError, TimeoutError) as exc:
                self._mark(False, exc)
                raise StoreUnavailable("the shared store (Redis) does not answer") from None
            if not batch:
                return EventPage(found, None, head)
            for entry_id, fields in batch:
                scanned += 1
                last = entry_id.decode()
                head = head or last
                event = AuditEvent.from_dict(orjson.loads(fields[b"e"]))
                if matches(event, model=model, category=category, topic=topic, since=since):
                    found.append(event)
                    if len(found) == limit:
                        break
        return EventPage(found, last, head)

    async def record_verdict(self, model: str, topics: Sequence[str], censored: bool) -> None:
        bucket = self._window.bucket(self._clock())
        key = self._keys.counts(model, bucket)

        async def write() -> None:
            pipe = self._require().pipeline(transaction=False)
            for topic in {*topics, ALL_TOPICS}:
                censored_field, scanned_field = count_fields(topic)
                pipe.hincrby(key, censored_field, int(censored))
                pipe.hincrby(key, scanned_field, 1)
            pipe.expire(key, self._window.ttl())
            await pipe.execute()

        await self._bounded(write, None)

    async def censorship_rate(self, model: str, topic: str) -> WindowCounts:
        fields = count_fields(topic)

        async def read() -> WindowCounts:
            pipe = self._require().pipeline(transaction=False)
            for bucket in self._window.live(self._clock()):
                pipe.hmget(self._keys.counts(model, bucket), list(fields))
            rows: list[list[bytes | None]] = await pipe.execute()
            censored = sum(int(row[0] or 0) for row in rows)
            scanned = sum(int(row[1] or 0) for row in rows)
            return WindowCounts(censored=censored, scanned=scanned)

        return await self._bounded(read, WindowCounts(0, 0))

    async def remember_censored(self, model: str, fingerprint: str) -> None:
        key = self._keys.censored(model, fingerprint)
        ttl = self._settings.censored_memory_seconds
        await self._bounded(lambda: self._require().set(key, b"1", ex=ttl), None)

    async def was_censored(self, model: str, fingerprint: str) -> bool:
        key = self._keys.censored(model, fingerprint)
        found = await self._bounded(lambda: self._require().exists(key), 0)
        return bool(found)

    async def take(
        self, key_id: str, *, requests: int = 1, tokens: int = 0, limits: RateLimits
    ) -> RateDecision:
        rpm, tpm = limits.requests_per_minute, limits.tokens_per_minute
        if rpm is None and tpm is None:
            return ALLOW
        script = self._scripts.get("take")
        if script is None:
            return ALLOW
        keys = [self._keys.budget(key_id)]
        args = [requests, tokens, "" if rpm is None else rpm, "" if tpm is None else tpm]
        reply = await self._bounded(lambda: script(keys=keys, args=args), None)
        if reply is None:
            return ALLOW
        if int(reply[0]):
            return ALLOW
        limit = "tokens" if reply[2] in (b"t", "t") else "requests"
        return RateDecision(False, math.ceil(float(reply[1]) * 1000) / 1000, limit)

    async def add_tokens(self, key_id: str, tokens: int) -> None:
        script = self._scripts.get("add_tokens")
        if script is None or tokens <= 0:
            return
        keys = [self._keys.budget(key_id)]
        await self._bounded(lambda: script(keys=keys, args=[tokens]), None)


def redacted(url: str) -> str:
    """`url` with its password replaced, for logs: in its user part, and in its query
    (`?password=...`, the form a `unix://` URL takes)."""
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.netloc.rpartition("@")[2]
        user = f"{parts.username}:" if parts.username else ":"
        url = urlunsplit(parts._replace(netloc=f"{user}***@{host}"))
    base, mark, query = url.partition("?")
    if not mark:
        return url
    pairs = [
        (name, "***" if name.lower() == "password" else value)
        for name, value in parse_qsl(query, keep_blank_values=True)
    ]
    return f"{base}?{urlencode(pairs, safe='*')}"


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0

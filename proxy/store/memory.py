"""The embedded store: state lives in this process; a single instance needs nothing else."""

from __future__ import annotations

import time
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable, Sequence

from proxy.settings import RateLimits, StoreSettings
from proxy.store import limits as budget
from proxy.store.base import ALL_TOPICS, RateDecision, StoreHealth, WindowCounts
from proxy.store.events import AuditEvent, EventPage, kept_since, matches
from proxy.store.window import Window

Clock = Callable[[], float]


class MemoryStore:
    """In-process store; always reachable. Events are kept up to the retention bound."""

    kind = "memory"

    def __init__(self, settings: StoreSettings | None = None, clock: Clock = time.time) -> None:
        self._settings = settings or StoreSettings()
        self._clock = clock
        self._window = Window(self._settings.window_seconds, self._settings.window_buckets)
        # (sequence number, event); the sequence number is the cursor
        self._events: deque[tuple[int, AuditEvent]] = deque(
            maxlen=self._settings.event_retention_count
        )
        self._event_ids: OrderedDict[str, None] = OrderedDict()
        self._seq = 0
        self._counts: dict[tuple[str, str], dict[int, list[int]]] = defaultdict(dict)
        # (model, fingerprint) -> expiry, oldest first: every entry lives as long, so the order
        # of remembering is the order of expiring.
        self._censored: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._buckets: dict[str, budget.KeyBuckets] = {}

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def ping(self) -> bool:
        return True

    def health(self) -> StoreHealth:
        return StoreHealth(reachable=True, buffered=0, dropped=0)

    async def append_event(self, event: AuditEvent) -> None:
        if event.id in self._event_ids:
            return
        self._event_ids[event.id] = None
        while len(self._event_ids) > self._settings.event_retention_count:
            self._event_ids.popitem(last=False)
        # Microseconds of the clock, kept increasing: a follower's cursor from before a
        # restart still comes before what this process writes.
        self._seq = max(self._seq + 1, int(self._clock() * 1_000_000))
        self._events.append((self._seq, event))

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
        before = _seq(cursor)
        newer_than = _seq(after) or 0
        since = kept_since(since, self._settings.event_retention_seconds, self._clock())
        found: list[AuditEvent] = []
        head: int | None = None
        last_seq: int | None = None
        for seq, event in reversed(self._events):
            if before is not None and seq >= before:
                continue
            if seq <= newer_than:
                break
            head = seq if head is None else head
            if matches(event, model=model, category=category, topic=topic, since=since):
                found.append(event)
                last_seq = seq
                if len(found) == limit:
                    break
        more = len(found) == limit and last_seq is not None and last_seq > self._first_seq()
        return EventPage(
            found, str(last_seq) if more else None, None if head is None else str(head)
        )

    def _first_seq(self) -> int:
        return self._events[0][0] if self._events else 0

    async def record_verdict(self, model: str, topics: Sequence[str], censored: bool) -> None:
        now = self._clock()
        current = self._window.bucket(now)
        first_live = self._window.live(now).start
        for topic in {*topics, ALL_TOPICS}:
            buckets = self._counts[(model, topic)]
            for stale in [b for b in buckets if b < first_live]:
                del buckets[stale]
            counts = buckets.setdefault(current, [0, 0])
            counts[0] += int(censored)
            counts[1] += 1

    async def censorship_rate(self, model: str, topic: str) -> WindowCounts:
        live = self._window.live(self._clock())
        buckets = self._counts.get((model, topic), {})
        censored = sum(c[0] for b, c in buckets.items() if b in live)
        scanned = sum(c[1] for b, c in buckets.items() if b in live)
        return WindowCounts(censored=censored, scanned=scanned)

    async def remember_censored(self, model: str, fingerprint: str) -> None:
        now = self._clock()
        censored = self._censored
        censored[(model, fingerprint)] = now + self._settings.censored_memory_seconds
        censored.move_to_end((model, fingerprint))
        # Expired ones go from the front; past the bound, the oldest go too, so memory and the
        # cost of a call stay bounded however many prompts a busy model censors.
        while censored and (
            next(iter(censored.values())) <= now
            or len(censored) > self._settings.censored_memory_count
        ):
            censored.popitem(last=False)

    async def was_censored(self, model: str, fingerprint: str) -> bool:
        expires = self._censored.get((model, fingerprint))
        return expires is not None and expires > self._clock()

    async def take(
        self, key_id: str, *, requests: int = 1, tokens: int = 0, limits: RateLimits
    ) -> RateDecision:
        state = self._buckets.setdefault(key_id, budget.KeyBuckets())
        return budget.take(state, limits, requests, tokens, self._clock())

    async def add_tokens(self, key_id: str, tokens: int) -> None:
        state = self._buckets.get(key_id)
        if state is not None:
            budget.charge(state, tokens, self._clock())


def _seq(cursor: str | None) -> int | None:
    return int(cursor) if cursor and cursor.isdigit() else None

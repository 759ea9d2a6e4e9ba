"""The store interface: what replicas share, behind one protocol with two implementations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from proxy.settings import RateLimits
from proxy.store.events import AuditEvent, EventPage


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """Answers judged (`scanned`) and found censored over the sliding window."""

    censored: int
    scanned: int

    @property
    def rate(self) -> float:
        return self.censored / self.scanned if self.scanned else 0.0


@dataclass(frozen=True, slots=True)
class RateDecision:
    """Whether a key may make this request now; if not, how many seconds until it may and
    which limit makes it wait longest (`requests` or `tokens`, OpenAI's 429 `type`)."""

    allowed: bool
    retry_after: float = 0.0
    limit: str = "requests"


ALLOW = RateDecision(True, 0.0)


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """Cached state for /readyz and metrics: no I/O to read it. `writable` is False while the
    store answers but refuses writes (Redis at `maxmemory` with `noeviction`)."""

    reachable: bool
    buffered: int
    dropped: int
    writable: bool = True


ALL_TOPICS = "*"


class Store(Protocol):
    """Where replicas keep what they share. `kind` names it in /readyz.

    Every method is fail-open: when the backend is away it returns the permissive answer
    (allowed, zero counts, not remembered) quickly and never raises.
    """

    kind: str

    async def start(self) -> None:
        """Start background work (the buffer flusher); `aclose` stops it."""
        ...

    async def aclose(self) -> None: ...

    async def ping(self) -> bool:
        """True when the store answers; False puts Candor in its degraded mode."""
        ...

    def health(self) -> StoreHealth: ...

    async def append_event(self, event: AuditEvent) -> None:
        """Record an audit event; buffered locally while the backend is away."""
        ...

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
        """Events newest first, filtered; `next_cursor` is None on the last page. `cursor` and
        `after` are places in the log (write order, not event times): events written before
        `cursor` and after `after`."""
        ...

    async def record_verdict(self, model: str, topics: Sequence[str], censored: bool) -> None:
        """Count one judged answer for each topic (and for `ALL_TOPICS`); `censored` is whether
        it counts towards the censorship rate (a political verdict: `Verdict.political`)."""
        ...

    async def censorship_rate(self, model: str, topic: str) -> WindowCounts: ...

    async def remember_censored(self, model: str, fingerprint: str) -> None: ...

    async def was_censored(self, model: str, fingerprint: str) -> bool: ...

    async def take(
        self, key_id: str, *, requests: int = 1, tokens: int = 0, limits: RateLimits
    ) -> RateDecision:
        """Take `requests` and `tokens` from the key's per-minute budgets, atomically."""
        ...

    async def add_tokens(self, key_id: str, tokens: int) -> None:
        """Charge tokens known only after the answer (usage) to the key's token budget, as
        last set by `take`; a key without a token limit is not charged."""
        ...

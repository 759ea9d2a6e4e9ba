"""Per-minute token buckets, the pure arithmetic (the Redis store runs the same in Lua).

A bucket holds up to `cap` units and refills at `cap` per minute. A request needs
`min(amount, cap)` units and then takes `amount`, so usage learnt after the answer can put
the token bucket in debt, which later requests wait out.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.settings import RateLimits
from proxy.store.base import ALLOW, RateDecision

MINUTE = 60.0


@dataclass(slots=True)
class Bucket:
    """One budget: its level at `at` (seconds) and its per-minute capacity."""

    level: float
    at: float
    cap: float

    def refilled(self, now: float) -> float:
        return min(self.cap, self.level + max(0.0, now - self.at) * self.cap / MINUTE)

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until `min(amount, cap)` units are available; 0 when they are now."""
        missing = min(amount, self.cap) - self.refilled(now)
        return max(0.0, missing * MINUTE / self.cap)


@dataclass(slots=True)
class KeyBuckets:
    """A key's request and token buckets; None where the key has no such limit."""

    requests: Bucket | None = None
    tokens: Bucket | None = None


def take(
    state: KeyBuckets, limits: RateLimits, requests: int, tokens: int, now: float
) -> RateDecision:
    """Take from both buckets, or from neither; updates `state` in place."""
    state.requests = _resized(state.requests, limits.requests_per_minute, now)
    state.tokens = _resized(state.tokens, limits.tokens_per_minute, now)
    waits = [
        (bucket.wait_for(amount, now), limit)
        for bucket, amount, limit in (
            (state.requests, requests, "requests"),
            (state.tokens, tokens, "tokens"),
        )
        if bucket is not None
    ]
    wait, limit = max(waits, default=(0.0, "requests"))
    if wait > 0:
        return RateDecision(False, wait, limit)
    for bucket, amount in ((state.requests, requests), (state.tokens, tokens)):
        if bucket is not None:
            bucket.level, bucket.at = bucket.refilled(now) - amount, now
    return ALLOW


def charge(state: KeyBuckets, tokens: int, now: float) -> None:
    """Usage known after the answer; may leave the token bucket in debt."""
    if state.tokens is not None:
        bucket = state.tokens
        bucket.level, bucket.at = bucket.refilled(now) - tokens, now


def _resized(bucket: Bucket | None, per_minute: int | None, now: float) -> Bucket | None:
    if per_minute is None:
        return None
    if bucket is None:
        return Bucket(float(per_minute), now, float(per_minute))
    bucket.cap = float(per_minute)
    return bucket

"""Shared state behind one interface: an embedded in-memory store, or Redis."""

from __future__ import annotations

from proxy.settings import Settings
from proxy.store.base import RateDecision, Store, StoreHealth, WindowCounts
from proxy.store.events import AuditEvent, EventPage, make_event
from proxy.store.fingerprint import conversation_fingerprint

__all__ = [
    "AuditEvent",
    "EventPage",
    "RateDecision",
    "Store",
    "StoreHealth",
    "WindowCounts",
    "build_store",
    "conversation_fingerprint",
    "make_event",
]


def build_store(settings: Settings) -> Store:
    """Redis when `store.redis_url` (or REDIS_URL) is set, else the embedded memory store.
    The Redis client is imported only then."""
    if settings.store.redis_url is None:
        from proxy.store.memory import MemoryStore

        return MemoryStore(settings.store)
    from proxy.store.redis import RedisStore

    return RedisStore(settings.store)

"""What the status page shows, read from the store: censorship rates per model and topic over
the store's window, recent audit events and the re-routes among them."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from proxy.errors import StoreUnavailable
from proxy.store.base import ALL_TOPICS, Store, WindowCounts
from proxy.store.events import AuditEvent, EventPage

RECENT_EVENTS = 20
COUNTED_EVENTS = 500  # the most recent events the action counts are taken from
EXCERPT_CHARS = 240


async def build_summary(
    store: Store,
    models: Mapping[str, str],
    topics: Sequence[str],
    *,
    window_seconds: int,
    demo_mode: bool = False,
) -> dict[str, Any]:
    """The JSON behind `/ui`. `models` maps each routed model to its policy."""
    now = time.time()
    names = list(models)
    keys = [(m, t) for m in names for t in (ALL_TOPICS, *topics)]
    counts = await asyncio.gather(*(store.censorship_rate(m, t) for m, t in keys))
    table = dict(zip(keys, counts, strict=True))
    seen = [t for t in topics if any(table[(m, t)].scanned for m in names)]
    try:
        page = await store.list_events(since=now - window_seconds, limit=COUNTED_EVENTS)
    except StoreUnavailable:
        # The page shows the store away (its header turns red), not a failed summary.
        page = EventPage([], None)
    health = store.health()
    return {
        "generated_at": round(now, 3),
        "window_seconds": window_seconds,
        "demo_mode": demo_mode,
        "store": {
            "kind": store.kind,
            "reachable": health.reachable,
            # False while Redis refuses writes (maxmemory): events wait in the buffer.
            "writable": health.writable,
            "buffered_events": health.buffered,
            "dropped_events": health.dropped,
        },
        "topics": seen,
        "models": [
            {
                "name": m,
                "policy": models[m],
                **_counts(table[(m, ALL_TOPICS)]),
                "topics": {t: _counts(table[(m, t)]) for t in seen if table[(m, t)].scanned},
            }
            for m in names
        ],
        **_actions(page.events, more=page.next_cursor is not None),
        "events": [_event(e) for e in page.events[:RECENT_EVENTS]],
    }


def _counts(counts: WindowCounts) -> dict[str, Any]:
    return {"scanned": counts.scanned, "censored": counts.censored, "rate": round(counts.rate, 4)}


def _actions(events: Sequence[AuditEvent], *, more: bool) -> dict[str, Any]:
    actions = Counter(e.action for e in events)
    pairs = Counter((e.model, e.fallback_model) for e in events if e.action == "reroute")
    return {
        "events_counted": len(events),
        "events_truncated": more,
        "actions": dict(actions.most_common()),
        "reroutes": [
            {"from": source, "to": target, "count": n}
            for (source, target), n in pairs.most_common()
        ],
    }


def _clip(text: str | None) -> str | None:
    if text is None or len(text) <= EXCERPT_CHARS:
        return text
    return text[:EXCERPT_CHARS] + "…"


def _event(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "time": event.time,
        "model": event.model,
        "action": event.action,
        "fallback_model": event.fallback_model,
        "category": event.category,
        "topics": event.topics,
        "language": event.language,
        "score": round(event.score, 3),
        "tenant": event.tenant,
        "prompt_excerpt": _clip(event.prompt_excerpt),
        "answer_excerpt": _clip(event.answer_excerpt),
    }

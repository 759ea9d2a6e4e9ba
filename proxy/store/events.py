"""Audit events: one record per flagged, re-routed, blocked or shadowed answer."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Redaction = Literal["full", "excerpt", "none"]


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """What the audit log keeps about one judged answer.

    `id` is unique and idempotent: writing the same event twice stores it once.
    Excerpts are already redacted (see `make_event`); they never hold an upstream key.
    """

    id: str
    time: float
    request_id: str
    model: str
    action: str
    policy: str | None = None
    outcome: str | None = None
    error: str | None = None
    streamed: bool = False
    duration_seconds: float = 0.0
    reason: str | None = None
    client_left: bool = False  # false in events stored before the field was
    tenant: str = "default"
    key_id: str | None = None
    fallback_model: str | None = None
    category: str = "none"
    topics: list[str] = field(default_factory=list)
    language: str | None = None
    score: float = 0.0
    signals: list[str] = field(default_factory=list)
    prompt_excerpt: str | None = None
    answer_excerpt: str | None = None
    fallback_answer_excerpt: str | None = None
    models_asked: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditEvent:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        known["topics"] = list(known.get("topics") or [])
        known["signals"] = list(known.get("signals") or [])
        known["models_asked"] = [dict(m) for m in known.get("models_asked") or []]
        return cls(**known)


@dataclass(frozen=True, slots=True)
class EventPage:
    """One page of events, newest first; pass `next_cursor` back for the next page.

    `head_cursor` is the place in the log of the newest event the page read (matching the
    filters or not), None when it read none: pass it as `after` to list only the events written
    since, in write order, whatever their times.
    """

    events: list[AuditEvent]
    next_cursor: str | None
    head_cursor: str | None = None


def redact(text: str | None, redaction: Redaction, excerpt_chars: int) -> str | None:
    """The part of a prompt or answer the audit log may keep."""
    if text is None or redaction == "none":
        return None
    if redaction == "excerpt" and len(text) > excerpt_chars:
        return text[:excerpt_chars] + "…"
    return text


def make_event(
    *,
    request_id: str,
    model: str,
    action: str,
    policy: str | None = None,
    outcome: str | None = None,
    error: str | None = None,
    streamed: bool = False,
    duration_seconds: float = 0.0,
    reason: str | None = None,
    client_left: bool = False,
    models_asked: Sequence[Mapping[str, Any]] = (),
    redaction: Redaction = "excerpt",
    excerpt_chars: int = 500,
    prompt: str | None = None,
    answer: str | None = None,
    fallback_answer: str | None = None,
    tenant: str = "default",
    key_id: str | None = None,
    fallback_model: str | None = None,
    category: str = "none",
    topics: Sequence[str] = (),
    language: str | None = None,
    score: float = 0.0,
    signals: Sequence[str] = (),
    event_id: str | None = None,
    at: float | None = None,
) -> AuditEvent:
    """Build an event with the texts redacted per the `store.redaction` setting."""
    return AuditEvent(
        id=event_id or f"evt_{uuid.uuid4().hex}",
        time=time.time() if at is None else at,
        request_id=request_id,
        tenant=tenant,
        key_id=key_id,
        model=model,
        fallback_model=fallback_model,
        action=action,
        policy=policy,
        outcome=outcome,
        error=error,
        streamed=streamed,
        duration_seconds=round(float(duration_seconds), 3),
        reason=reason,
        client_left=client_left,
        category=category,
        topics=list(topics),
        language=language,
        score=float(score),
        signals=list(signals),
        prompt_excerpt=redact(prompt, redaction, excerpt_chars),
        answer_excerpt=redact(answer, redaction, excerpt_chars),
        fallback_answer_excerpt=redact(fallback_answer, redaction, excerpt_chars),
        models_asked=[dict(m) for m in models_asked],
    )


def matches(
    event: AuditEvent,
    *,
    model: str | None,
    category: str | None,
    topic: str | None,
    since: float | None,
) -> bool:
    """The `list_events` filters, shared by both stores."""
    return (
        (model is None or event.model == model)
        and (category is None or event.category == category)
        and (topic is None or topic in event.topics)
        and (since is None or event.time >= since)
    )


def kept_since(since: float | None, retention_seconds: int | None, now: float) -> float | None:
    """The `since` a read applies: the caller's, or the retention's edge when later, so an
    expired event is not listed whether or not a trim has removed it yet."""
    if retention_seconds is None:
        return since
    edge = now - retention_seconds
    return edge if since is None else max(since, edge)

"""The observer that turns each finished request into metrics, audit events and shared counts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxy.answers import message_text
from proxy.detect import Status
from proxy.metrics import Metrics
from proxy.outcome import CANCELLED, Outcome
from proxy.policy.actions import ActionName
from proxy.settings import StoreSettings
from proxy.store.base import Store
from proxy.store.events import AuditEvent, make_event
from proxy.store.fingerprint import conversation_fingerprint

AUDITED = frozenset(
    {ActionName.FLAG, ActionName.REROUTE, ActionName.BLOCK, ActionName.SHADOW, ActionName.ANNOTATE}
)


class Recorder:
    """Metrics for every request; an audit event for every answer acted on; the counts and
    the censored-prompt memory that pre-emptive routing reads."""

    def __init__(self, metrics: Metrics, store: Store, settings: StoreSettings) -> None:
        self._metrics = metrics
        self._store = store
        self._settings = settings

    async def observe(self, outcome: Outcome) -> None:
        self._count(outcome)
        judged = [a for a in outcome.attempts if a.verdict.status is not Status.UNKNOWN]
        for attempt in judged:
            v = attempt.verdict
            # The censorship rate (status page, pre-emptive routing) counts political ones.
            await self._store.record_verdict(attempt.model, v.topics, v.political)
        primary = outcome.primary
        if outcome.action in AUDITED and primary is not None and primary.verdict.censored:
            await self._store.remember_censored(
                primary.model, conversation_fingerprint(primary.model, outcome.messages)
            )
        if outcome.key_id is not None:
            spent = sum(_total_tokens(a.usage) for a in outcome.attempts)
            if spent:
                await self._store.add_tokens(outcome.key_id, spent)
        # A bypassed answer (the detector failed on it) went out unjudged: audited as well.
        if outcome.action in AUDITED or outcome.would is not None or outcome.detector_failed:
            await self._store.append_event(self._event(outcome))

    def _count(self, outcome: Outcome) -> None:
        m = self._metrics
        if outcome.detector_failed:
            m.detector_error()
        route = "chat_stream" if outcome.streamed else "chat"
        m.request(outcome.requested_model, route, outcome.outcome_label, outcome.seconds)
        for attempt in outcome.attempts:
            v = attempt.verdict
            if v.status is not Status.UNKNOWN:
                m.scanned(
                    attempt.model, v.censored, v.category.value, v.topics, v.language, v.political
                )
            # A model asked for a request that ended first neither failed nor answered.
            cancelled = attempt.failure == CANCELLED
            # A fallback is any model but the one asked for: a pre-empted request's first too.
            failed = attempt.failure is not None and not cancelled
            if failed and attempt.model != outcome.requested_model:
                m.fallback_failure(attempt.model, str(attempt.failure))
            if attempt.ttft is not None:
                m.upstream_ttft(attempt.model, attempt.ttft)
            if attempt.seconds and not cancelled:
                m.upstream_total(attempt.model, attempt.seconds)
            if attempt.detector_seconds is not None:
                m.detector_seconds(attempt.detector_seconds)
            usage = _usage(attempt.usage)
            prompt_tokens, completion_tokens = (
                usage.get("prompt_tokens"),
                usage.get("completion_tokens"),
            )
            if isinstance(prompt_tokens, int):
                m.tokens(
                    attempt.model,
                    prompt_tokens,
                    completion_tokens if isinstance(completion_tokens, int) else 0,
                )
        answered = outcome.answered_model
        # Re-routed, pre-empted, or answered by the outage chain (under any action).
        if answered and (
            outcome.action is ActionName.REROUTE or answered != outcome.requested_model
        ):
            m.reroute(outcome.requested_model, answered, outcome.reason or "censored")
        if outcome.held_seconds:
            m.held_seconds(answered or outcome.requested_model, outcome.held_seconds)
        health = self._store.health()
        m.store_state(health.reachable, health.buffered, health.dropped, writable=health.writable)

    def _event(self, outcome: Outcome) -> AuditEvent:
        primary = outcome.primary
        v = outcome.judged
        answered = outcome.answered_model
        fallback = next(
            (a for a in outcome.attempts if a.model == answered != outcome.requested_model),
            None,
        )
        prompt = next(
            (message_text(m) for m in reversed(outcome.messages) if m.get("role") == "user"), ""
        )
        signals = [s.name for s in v.signals]
        if primary is None and outcome.reason:
            signals = [outcome.reason]  # pre-empted: the requested model was never asked
        return make_event(
            request_id=outcome.request_id,
            model=outcome.requested_model,
            action=(outcome.would and f"shadow:{outcome.would.value}") or outcome.action.value,
            policy=outcome.policy,
            outcome=outcome.outcome_label,
            error=outcome.error,
            streamed=outcome.streamed,
            duration_seconds=outcome.seconds,
            reason=outcome.reason,
            client_left=outcome.client_left,
            models_asked=[a.summary() for a in outcome.attempts],
            redaction=self._settings.redaction,
            excerpt_chars=self._settings.excerpt_chars,
            prompt=prompt,
            answer=primary.answer if primary is not None else None,
            # An outage fallback's answer is the judged one: kept once.
            fallback_answer=fallback.answer if fallback and fallback is not primary else None,
            tenant=outcome.tenant or "default",
            key_id=outcome.key_id,
            fallback_model=fallback.model if fallback else None,
            category=v.category.value,
            topics=v.topics or outcome.topics,
            language=v.language,
            score=v.score,
            signals=signals,
        )


def _usage(usage: object) -> Mapping[str, Any]:
    """The usage an upstream reported, or none when it sent something else ("usage": "lots")."""
    return usage if isinstance(usage, Mapping) else {}


def _total_tokens(usage: Mapping[str, Any] | None) -> int:
    total = _usage(usage).get("total_tokens")
    return total if isinstance(total, int) and total > 0 else 0

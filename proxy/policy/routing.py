"""Routing decisions made before or around the primary model: pre-emption and history scrubbing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from proxy.answers import message_text
from proxy.detect import Detector, Exchange
from proxy.policy.actions import ActionName
from proxy.policy.model import Policy
from proxy.store.fingerprint import conversation_fingerprint


class RoutingState(Protocol):
    """Shared counts and memory (the store) that routing reads."""

    async def censorship_rate(self, model: str, topic: str) -> Any:
        """An object with `censored` and `scanned` counts over the store's window."""
        ...

    async def was_censored(self, model: str, fingerprint: str) -> bool: ...


async def preempt_reason(
    policy: Policy,
    model: str,
    topics: Sequence[str],
    messages: Sequence[Mapping[str, Any]],
    state: RoutingState | None,
) -> str | None:
    """Why this request should skip `model` and go straight to the fallbacks (None: ask it)."""
    if policy.action is not ActionName.REROUTE or not policy.fallbacks:
        return None  # only a re-routing policy acts before the answer (shadow changes nothing)
    rules = policy.preempt
    if any(topic in rules.topics for topic in topics):
        return "preempt_topic"
    if state is None:
        return None
    if rules.remembered and await state.was_censored(
        model, conversation_fingerprint(model, messages)
    ):
        return "preempt_remembered"
    if rules.rate_threshold is not None:
        for topic in topics:
            counts = await state.censorship_rate(model, topic)
            if counts.scanned >= rules.min_samples and (
                counts.censored / counts.scanned >= rules.rate_threshold
            ):
                return "preempt_rate"
    return None


def scrub_history(
    detector: Detector, messages: Sequence[Mapping[str, Any]], placeholder: str
) -> tuple[list[Mapping[str, Any]], int]:
    """Replace earlier assistant turns judged censored; returns the messages and how many."""
    cleaned: list[Mapping[str, Any]] = []
    replaced = 0
    for index, message in enumerate(messages):
        if message.get("role") == "assistant" and index > 0 and not message.get("tool_calls"):
            verdict = detector.judge(
                Exchange(messages=messages[:index], answer=message_text(message))
            )
            if verdict.censored:
                cleaned.append({**message, "content": placeholder})
                replaced += 1
                continue
        cleaned.append(message)
    return cleaned, replaced

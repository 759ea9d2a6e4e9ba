"""The `x-candor-*` headers and the `candor` body object of an answer."""

from __future__ import annotations

from typing import Any

from proxy.errors import UpstreamRejected
from proxy.outcome import Outcome


def mark_rejection(outcome: Outcome, exc: BaseException) -> None:
    """Give a provider's own error, passed on to the client, the `x-candor-*` headers of the
    request it ended (a provider block flagged as censored says so, as an answer would)."""
    if isinstance(exc, UpstreamRejected):
        model = outcome.attempts[-1].model if outcome.attempts else outcome.requested_model
        headers, _ = annotation(outcome, model)
        headers.pop("x-request-id")  # the request-id middleware sets it on every response
        exc.candor_headers = headers


def annotation(outcome: Outcome, model: str) -> tuple[dict[str, str], dict[str, Any]]:
    """The `x-candor-*` headers and the `candor` body object for an outcome."""
    verdict = outcome.judged
    headers = {
        "x-candor-verdict": verdict.status.value,
        "x-candor-action": outcome.action.value,
        "x-candor-category": verdict.category.value,
        "x-candor-model": model,
        "x-request-id": outcome.request_id,
    }
    body: dict[str, Any] = {
        "request_id": outcome.request_id,
        "model": model,
        "requested_model": outcome.requested_model,
        "action": outcome.action.value,
        "policy": outcome.policy,
        **verdict.to_dict(),
    }
    primary = outcome.primary
    if primary is not None and primary.model != model:
        # The client gets no byte of an answer it was spared, quoted evidence included.
        body["signals"] = [{**s, "text": ""} for s in body["signals"]]
    if outcome.would is not None:
        body["would"] = outcome.would.value
    if outcome.reason is not None:
        body["reason"] = outcome.reason
    if len(outcome.attempts) > 1 or outcome.reason:
        body["attempts"] = [a.summary() for a in outcome.attempts]
    return headers, body

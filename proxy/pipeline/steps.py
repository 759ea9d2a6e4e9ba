"""The steps whole answers and streams share: policy, preparation, provider blocks, observing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from proxy.answers import is_provider_block
from proxy.detect import UNKNOWN, Exchange, ProviderError, Verdict
from proxy.errors import CandorError, UpstreamError, UpstreamRejected
from proxy.outcome import NullObserver, Observer, Outcome
from proxy.pipeline.types import ChatRequest, JudgingDetector
from proxy.policy.actions import Action, build_action
from proxy.policy.model import Policy, PolicySet
from proxy.policy.routing import RoutingState, scrub_history
from proxy.upstream.registry import Upstreams

log = logging.getLogger(__name__)


def is_outage(exc: CandorError) -> bool:
    """Connect errors, timeouts, broken protocol and 5xx: the outage chain's business."""
    if isinstance(exc, UpstreamRejected):
        return exc.status >= 500
    return isinstance(exc, UpstreamError)


class Steps:
    """The pipeline's shared state and steps; `WholeAnswers` and `StreamedAnswers` build on it."""

    def __init__(
        self,
        upstreams: Upstreams,
        detector: JudgingDetector,
        policies: PolicySet,
        model_policies: Mapping[str, str],
        state: RoutingState | None = None,
        observer: Observer | None = None,
    ) -> None:
        self._upstreams = upstreams
        self._detector = detector
        self._policies = policies
        self._model_policies = dict(model_policies)
        self._state = state
        self._observer = observer or NullObserver()
        self._actions: dict[str, Action] = {
            p.name: build_action(p.action, p.shadow_of) for p in policies.values()
        }

    @property
    def topic_names(self) -> tuple[str, ...]:
        """Every topic the detector knows (the status page's rows)."""
        return self._detector.topic_names

    def _policy(self, request: ChatRequest) -> Policy:
        name = request.policy or self._model_policies.get(request.model, "default")
        return self._policies[name] if name in self._policies else self._policies["default"]

    def _prepare(self, request: ChatRequest) -> tuple[Policy, dict[str, Any], Outcome]:
        self._upstreams.get(request.model)  # 404 before anything else
        policy = self._policy(request)
        body = request.body
        messages = body["messages"]
        if policy.scrub_history:
            cleaned, replaced = scrub_history(self._detector, messages, policy.history_placeholder)
            if replaced:
                body = {**body, "messages": cleaned}
        outcome = Outcome(
            request_id=request.request_id,
            requested_model=request.model,
            policy=policy.name,
            streamed=request.stream,
            messages=messages,
            topics=self._detector.request_topics(messages),
            tenant=request.tenant,
            key_id=request.key_id,
        )
        return policy, body, outcome

    def _provider_block(self, exc: UpstreamRejected, body: dict[str, Any]) -> Verdict:
        if not is_provider_block(exc.status, exc.code, exc.message):
            return UNKNOWN
        error = ProviderError(status=exc.status, code=exc.code, message=exc.message)
        return self._detector.judge(Exchange(messages=body["messages"], provider_error=error))

    async def _finish(self, outcome: Outcome, started: float) -> None:
        outcome.seconds = asyncio.get_running_loop().time() - started
        try:
            await self._observer.observe(outcome)
        except Exception:  # an observer must never fail a request
            log.exception("observer failed for %s", outcome.request_id)


def answer_template(model: str) -> dict[str, Any]:
    return {"id": "chatcmpl-candor", "object": "chat.completion", "created": 0, "model": model}

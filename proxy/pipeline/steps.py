"""The steps whole answers and streams share: policy, preparation, provider blocks, observing."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from proxy.answers import is_provider_block
from proxy.detect import UNKNOWN, Exchange, ProviderError, Verdict
from proxy.errors import CandorError, UpstreamError, UpstreamRejected
from proxy.outcome import CANCELLED, Attempt, NullObserver, Observer, Outcome
from proxy.pipeline.fail_open import FailOpenDetector
from proxy.pipeline.recording import Recordings
from proxy.pipeline.types import ChatRequest, JudgingDetector
from proxy.policy.actions import Action, ActionName, build_action
from proxy.policy.model import Policy, PolicySet
from proxy.policy.routing import RoutingState, scrub_history
from proxy.shutdown import ShutdownWatch
from proxy.upstream.base import Upstream
from proxy.upstream.registry import Upstreams


def is_outage(exc: CandorError) -> bool:
    """Connect errors, timeouts, broken protocol and 5xx: the outage chain's business."""
    if isinstance(exc, UpstreamRejected):
        return exc.status >= 500
    return isinstance(exc, UpstreamError)


T = TypeVar("T")


@dataclass(slots=True)
class Reached(Generic[T]):
    """A model that answered down the outage chain: its result, or the refusal that stands for
    an answer (a provider block, or the upstream's own client error)."""

    name: str
    attempt: Attempt
    index: int
    result: T | None = None
    rejected: UpstreamRejected | None = None


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
        shutdown: ShutdownWatch | None = None,
    ) -> None:
        self._upstreams = upstreams
        self._shutdown = shutdown
        # A detector that fails on an answer lets it pass (counted `bypassed`), never the request.
        self._detector: JudgingDetector = FailOpenDetector(detector)
        self._policies = policies
        self._model_policies = dict(model_policies)
        self._state = state
        self._recordings = Recordings(observer or NullObserver())
        self._actions: dict[str, Action] = {
            p.name: build_action(p.action, p.shadow_of) for p in policies.values()
        }

    @property
    def topic_names(self) -> tuple[str, ...]:
        """Every topic the detector knows (the status page's rows)."""
        return self._detector.topic_names

    @property
    def _stopping(self) -> bool:
        """Whether a request cancelled now was cut by the server (its shutdown grace is over)
        rather than left by its client."""
        return self._shutdown is not None and self._shutdown.cutting

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
        self._recordings.begin(outcome)
        return policy, body, outcome

    def _provider_block(self, exc: UpstreamRejected, body: dict[str, Any]) -> Verdict:
        if not is_provider_block(exc.status, exc.code, exc.message):
            return UNKNOWN
        error = ProviderError(status=exc.status, code=exc.code, message=exc.message)
        return self._detector.judge(Exchange(messages=body["messages"], provider_error=error))

    async def _finish(self, outcome: Outcome, started: float) -> None:
        outcome.seconds = asyncio.get_running_loop().time() - started
        await self._recordings.record(outcome)

    async def drain(self) -> None:
        """Wait for the recordings of requests in flight (at shutdown, before the store goes)."""
        await self._recordings.drain()

    async def _outage_chain(
        self,
        names: Sequence[str],
        body: dict[str, Any],
        outcome: Outcome,
        call: Callable[[Upstream], Awaitable[T]],
        errors: list[CandorError],
    ) -> AsyncGenerator[Reached[T], None]:
        """Ask `names` in order, moving on past outages (recorded in `errors`); yields each
        model that answered. A caller that finds the answer broken may go on to the next."""
        loop = asyncio.get_running_loop()
        for index, name in enumerate(names):
            attempt = Attempt(model=name)
            started = loop.time()
            try:
                result = await call(self._upstreams.get(name))
            except asyncio.CancelledError:
                # The request ended while this model was asked: it is noted, not left out.
                attempt.seconds, attempt.failure = loop.time() - started, CANCELLED
                outcome.attempts.append(attempt)
                raise
            except UpstreamRejected as exc:
                attempt.seconds = loop.time() - started
                attempt.failure, attempt.verdict = (
                    exc.code or "upstream_error",
                    self._provider_block(exc, body),
                )
                outcome.attempts.append(attempt)
                if attempt.verdict.censored or not is_outage(exc):
                    if index > 0:
                        outcome.stand_in = name
                    yield Reached(name, attempt, index, rejected=exc)
                    return
                errors.append(exc)
                continue
            except UpstreamError as exc:
                attempt.seconds = loop.time() - started
                attempt.failure = exc.code or "upstream_error"
                outcome.attempts.append(attempt)
                errors.append(exc)
                continue
            attempt.seconds = loop.time() - started
            outcome.attempts.append(attempt)
            if index > 0:
                outcome.reason, outcome.stand_in = "outage", name
            yield Reached(name, attempt, index, result=result)


def flag_if_left(outcome: Outcome, policy: Policy) -> None:
    """A client that left (or a server that stopped) while its censored answer was held or
    being re-routed: nobody got the answer, but it is flagged (and audited) as one that could
    not be re-routed."""
    verdict = outcome.judged
    acts = policy.acts_on_verdict(verdict)
    if outcome.ended_early and outcome.action is ActionName.PASS and acts:
        outcome.action = ActionName.FLAG


def answer_template(model: str, obj: str = "chat.completion") -> dict[str, Any]:
    """The frame of an answer Candor writes when no upstream answer gave one (the provider
    refused the request itself): an id of its own, the time, the model asked for."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": obj,
        "created": int(time.time()),
        "model": model,
    }

"""Whole (non-streamed) answers: ask, judge, act; the fallback and outage chains; hedging."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from proxy import wire
from proxy.answers import answer_usage, choice_exchanges, request_exchange
from proxy.detect import Exchange, Verdict, answer_choice
from proxy.errors import CandorError, UpstreamRejected
from proxy.outcome import Outcome
from proxy.pipeline.annotate import annotation, mark_rejection
from proxy.pipeline.steps import Steps, answer_template, flag_if_left
from proxy.pipeline.types import ChatRequest, Reply
from proxy.policy.actions import ActionName
from proxy.policy.model import Policy
from proxy.policy.routing import preempt_reason
from proxy.upstream.base import Upstream


@dataclass(slots=True)
class _Answer:
    """One model's whole answer (or the provider error that stood for it), judged."""

    model: str
    response: dict[str, Any] | None
    verdict: Verdict
    error: UpstreamRejected | None = None


class WholeAnswers(Steps):
    """`complete`: the request path for whole answers."""

    async def complete(self, request: ChatRequest) -> Reply:
        started = asyncio.get_running_loop().time()
        policy, body, outcome = self._prepare(request)
        try:
            answer = await self._complete(request, policy, body, outcome)
            assert answer.response is not None
            headers, note = annotation(outcome, answer.model)
            outcome.answered_model = answer.model
            return Reply(body=wire.dumps({**answer.response, "candor": note}), headers=headers)
        except BaseException as exc:  # a cancellation: the client left (`unless_client_leaves`)
            outcome.failed(exc, stopping=self._stopping)
            flag_if_left(outcome, policy)
            mark_rejection(outcome, exc)
            raise
        finally:
            await self._finish(outcome, started)

    async def _complete(
        self, request: ChatRequest, policy: Policy, body: dict[str, Any], outcome: Outcome
    ) -> _Answer:
        action = self._actions[policy.name]
        reason = await preempt_reason(
            policy, request.model, outcome.topics, body["messages"], self._state
        )
        if reason is not None:
            outcome.reason = reason
            rerouted = await self._fallback_whole(policy, body, outcome, request.model, None)
            if rerouted is not None:
                outcome.action = ActionName.REROUTE
                return rerouted
            outcome.reason = None  # every fallback failed: ask the model after all
        hedge: asyncio.Task[_Answer] | None = None
        if (
            policy.hedge
            and action.name is ActionName.REROUTE
            and outcome.topics
            and policy.fallbacks
        ):
            hedge = asyncio.create_task(self._ask_whole(policy.fallbacks[0], body, outcome, False))
        try:
            answer = await self._ask_whole(request.model, body, outcome, True, policy)
            verdict = answer.verdict
            if not policy.acts_on_verdict(verdict):
                if answer.error is not None:
                    raise answer.error
                return answer
            if action.name is ActionName.REROUTE:
                rerouted = await self._fallback_whole(policy, body, outcome, answer.model, hedge)
                hedge = None
                if rerouted is not None:
                    outcome.action, outcome.reason = ActionName.REROUTE, verdict.category.value
                    return rerouted
                outcome.action, outcome.reason = ActionName.FLAG, "fallbacks_exhausted"
                if answer.error is not None:
                    raise answer.error
                return answer
            if answer.error is not None and action.name is not ActionName.BLOCK:
                outcome.action = action.name
                raise answer.error
            move = action.on_whole(answer.response or answer_template(answer.model), policy.wording)
            outcome.action = move.action
            # A shadow of reroute records what a real one would come to for this answer.
            outcome.would = policy.shadow_would(move.would, answer.model)
            return _Answer(answer.model, move.response, verdict)
        finally:
            if hedge is not None:
                hedge.cancel()
                with contextlib.suppress(asyncio.CancelledError, CandorError):
                    await hedge

    async def _ask_whole(
        self,
        model: str,
        body: dict[str, Any],
        outcome: Outcome,
        primary: bool,
        policy: Policy | None = None,
    ) -> _Answer:
        """Ask one model; for the primary, an outage moves down the policy's outage chain."""
        chain = [model, *(policy.outage_fallbacks if policy and primary else ())]
        errors: list[CandorError] = []

        async def complete(upstream: Upstream) -> tuple[dict[str, Any], list[Exchange]]:
            response: dict[str, Any] = await upstream.complete(body, outcome.request_id)
            # Read here, so an answer of the wrong shape is an outage like any other.
            return response, choice_exchanges(request_exchange(body), response)

        reached_all = self._outage_chain(chain, body, outcome, complete, errors)
        async with contextlib.aclosing(reached_all) as reached_each:
            async for reached in reached_each:
                attempt, result = reached.attempt, reached.result
                if result is None:
                    return _Answer(reached.name, None, attempt.verdict, reached.rejected)
                response, exchanges = result
                attempt.usage = answer_usage(response)
                tick = time.perf_counter()
                judged = [self._detector.judge(ex) for ex in exchanges]
                attempt.detector_seconds = time.perf_counter() - tick
                # The answer audited is the choice's whose verdict is the answer's.
                index, attempt.verdict = answer_choice(judged)
                attempt.answer = exchanges[index].answer if exchanges else ""
                return _Answer(reached.name, response, attempt.verdict)
        raise errors[-1]

    async def _fallback_whole(
        self,
        policy: Policy,
        body: dict[str, Any],
        outcome: Outcome,
        censored_model: str,
        hedge: asyncio.Task[_Answer] | None,
    ) -> _Answer | None:
        """The first clean answer down the censorship chain, or None."""
        for index, name in enumerate(policy.fallbacks):
            if name == censored_model:
                continue
            try:
                if index == 0 and hedge is not None:
                    answer = await hedge
                else:
                    answer = await self._ask_whole(name, body, outcome, False)
            except CandorError:
                continue  # recorded as a failed attempt; try the next
            if answer.response is not None and not answer.verdict.censored:
                return answer
        return None

"""request -> upstream -> detect -> act, for whole answers and for streams."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from proxy import wire
from proxy.answers import choice_exchanges, is_provider_block, request_exchange
from proxy.detect import UNKNOWN, Detector, Exchange, ProviderError, Verdict
from proxy.errors import CandorError, UpstreamError, UpstreamRejected
from proxy.holdback import HoldBounds, JudgedStream, Output, Step
from proxy.outcome import Attempt, NullObserver, Observer, Outcome
from proxy.policy.actions import Action, ActionName, BlockAction, build_action
from proxy.policy.model import Policy, PolicySet
from proxy.policy.routing import RoutingState, preempt_reason, scrub_history
from proxy.upstream.registry import Upstreams

log = logging.getLogger(__name__)


class TopicReader(Protocol):
    @property
    def topic_names(self) -> tuple[str, ...]: ...

    def request_topics(self, messages: Sequence[Mapping[str, Any]]) -> tuple[str, ...]: ...


class JudgingDetector(Detector, TopicReader, Protocol):
    """A detector that can also name the topics of a request before any answer."""


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A validated chat-completion request: the client's body is kept exactly as sent."""

    request_id: str
    model: str
    body: dict[str, Any]
    policy: str | None = None  # a policy named by the client's API key
    tenant: str | None = None
    key_id: str | None = None

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True


@dataclass(slots=True)
class Reply:
    """A whole answer, ready to send."""

    body: bytes
    headers: dict[str, str]


@dataclass(slots=True)
class StreamReply:
    """A streamed answer: headers now, SSE bytes as they come."""

    headers: dict[str, str]
    chunks: AsyncIterator[bytes]


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
    if outcome.attempts and outcome.attempts[0].model != model:
        # The client gets no byte of an answer it was spared, quoted evidence included.
        body["signals"] = [{**s, "text": ""} for s in body["signals"]]
    if outcome.would is not None:
        body["would"] = outcome.would.value
    if outcome.reason is not None:
        body["reason"] = outcome.reason
    if len(outcome.attempts) > 1 or outcome.reason:
        body["attempts"] = [
            {
                "model": a.model,
                "verdict": a.verdict.status.value,
                "category": a.verdict.category.value,
                "score": round(a.verdict.score, 4),
                "failure": a.failure,
            }
            for a in outcome.attempts
        ]
    return headers, body


@dataclass(slots=True)
class _Answer:
    """One model's whole answer (or the provider error that stood for it), judged."""

    model: str
    response: dict[str, Any] | None
    verdict: Verdict
    error: UpstreamRejected | None = None


@dataclass(slots=True)
class _Live:
    """One model's stream being judged (`stream` is None when the provider refused it)."""

    model: str
    stream: JudgedStream | None
    first: Output
    attempt: Attempt
    pending: list[bytes] = field(default_factory=list)
    rejected: UpstreamRejected | None = None

    async def close(self) -> None:
        if self.stream is not None:
            await self.stream.aclose()


def _is_outage(exc: CandorError) -> bool:
    """Connect errors, timeouts, broken protocol and 5xx: the outage chain's business."""
    if isinstance(exc, UpstreamRejected):
        return exc.status >= 500
    return isinstance(exc, UpstreamError)


class Pipeline:
    """The request path. Routes call `complete` or `stream`; nothing here knows HTTP."""

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

    # ---- shared steps

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

    # ---- whole answers

    async def complete(self, request: ChatRequest) -> Reply:
        started = asyncio.get_running_loop().time()
        policy, body, outcome = self._prepare(request)
        try:
            answer = await self._complete(request, policy, body, outcome)
            assert answer.response is not None
            headers, note = annotation(outcome, answer.model)
            outcome.answered_model = answer.model
            return Reply(body=wire.dumps({**answer.response, "candor": note}), headers=headers)
        except CandorError as exc:
            outcome.error = exc.code or exc.type
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
            if not (verdict.censored and policy.acts_on(verdict.category, verdict.political)):
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
            move = action.on_whole(answer.response or _template(answer.model), policy.wording)
            outcome.action, outcome.would = move.action, move.would
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
        loop = asyncio.get_running_loop()
        chain = [model, *(policy.outage_fallbacks if policy and primary else ())]
        last: CandorError | None = None
        for index, name in enumerate(chain):
            started = loop.time()
            attempt = Attempt(model=name)
            try:
                response = await self._upstreams.get(name).complete(body, outcome.request_id)
            except UpstreamRejected as exc:
                attempt.seconds = loop.time() - started
                verdict = self._provider_block(exc, body)
                if verdict.censored or not _is_outage(exc):
                    attempt.verdict, attempt.failure = verdict, exc.code
                    outcome.attempts.append(attempt)
                    return _Answer(name, None, verdict, exc)
                attempt.failure, last = exc.code or "upstream_error", exc
                outcome.attempts.append(attempt)
                continue
            except UpstreamError as exc:
                attempt.seconds = loop.time() - started
                attempt.failure, last = exc.code or "upstream_error", exc
                outcome.attempts.append(attempt)
                continue
            attempt.seconds = loop.time() - started
            attempt.usage = response.get("usage")
            exchanges = choice_exchanges(request_exchange(body), response)
            tick = time.perf_counter()
            judged = [self._detector.judge(ex) for ex in exchanges]
            attempt.detector_seconds = time.perf_counter() - tick
            attempt.verdict = max(judged, key=lambda v: (v.censored, v.score), default=UNKNOWN)
            attempt.answer = exchanges[0].answer if exchanges else ""
            outcome.attempts.append(attempt)
            if index > 0:
                outcome.reason = "outage"
            return _Answer(name, response, attempt.verdict)
        assert last is not None
        raise last

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

    # ---- streams

    async def stream(self, request: ChatRequest) -> StreamReply:
        started = asyncio.get_running_loop().time()
        policy, body, outcome = self._prepare(request)
        action = self._actions[policy.name]
        try:
            served = await self._open_stream(request, policy, action, body, outcome)
        except CandorError as exc:
            outcome.error = exc.code or exc.type
            await self._finish(outcome, started)
            raise
        if isinstance(served, list):  # blocked: the replacement stream
            headers, _ = annotation(outcome, request.model)
            chunks = self._frames(served, outcome, started)
        else:
            outcome.answered_model = served.model
            headers, _ = annotation(outcome, served.model)
            chunks = self._relay(served, policy, action, outcome, started)
        return StreamReply({**headers, **wire.SSE_HEADERS}, chunks)

    def _stream_chain(
        self, request: ChatRequest, policy: Policy, action: Action, reason: str | None
    ) -> list[tuple[str, bool]]:
        """(model, is_primary) in the order to try them."""
        primary = [(request.model, True)]
        fallbacks = [(m, False) for m in policy.fallbacks if m != request.model]
        if reason is not None:
            return fallbacks + primary
        return primary + fallbacks if action.name is ActionName.REROUTE else primary

    async def _open_stream(
        self,
        request: ChatRequest,
        policy: Policy,
        action: Action,
        body: dict[str, Any],
        outcome: Outcome,
    ) -> _Live | list[bytes]:
        """The stream to serve. With a holding action each candidate is judged before its
        first byte goes out; a censored one is set aside (not yet aborted) for the next."""
        reason = await preempt_reason(
            policy, request.model, outcome.topics, body["messages"], self._state
        )
        outcome.reason = reason
        hold = HoldBounds(policy.stream.hold_chars, policy.stream.hold_ms)
        set_aside: list[_Live] = []
        error: CandorError | None = None
        for name, primary in self._stream_chain(request, policy, action, reason):
            holds = action.holds_stream or not primary
            try:
                live = await self._open_one(
                    name, body, outcome, hold if holds else None, policy, primary
                )
            except CandorError as exc:
                error = error or exc
                continue
            first, verdict = live.first, live.first.verdict or UNKNOWN
            if first.step is Step.FAILED:
                await live.close()
                error = error or first.error
                continue
            censored = first.step is Step.CENSORED or (first.step is Step.END and verdict.censored)
            if censored and (not primary or policy.acts_on(verdict.category, verdict.political)):
                if primary and isinstance(action, BlockAction):
                    await _close_all([live, *set_aside])
                    outcome.action = ActionName.BLOCK
                    return action.stream_frames(
                        live.stream.first if live.stream else None, policy.wording
                    )
                set_aside.append(live)
                continue
            if censored:  # not a category this policy acts on: passes as it is
                live.pending = live.stream.stop_holding() if live.stream else []
            await _close_all(set_aside)
            if not primary or (reason is not None):
                outcome.action = ActionName.REROUTE
                outcome.reason = reason or (
                    set_aside[0].attempt.verdict.category.value if set_aside else "outage"
                )
            return live
        return await self._exhausted(set_aside, error, outcome)

    async def _exhausted(
        self, set_aside: list[_Live], error: CandorError | None, outcome: Outcome
    ) -> _Live:
        """No candidate gave a clean answer: the first censored one goes out, flagged."""
        keep = next((live for live in set_aside if live.stream is not None), None)
        await _close_all([live for live in set_aside if live is not keep])
        if keep is None or keep.stream is None:
            rejected = next((live.rejected for live in set_aside if live.rejected), None)
            raise rejected or error or UpstreamError("no model in the chain gave an answer")
        outcome.action, outcome.reason = ActionName.FLAG, "fallbacks_exhausted"
        keep.pending = keep.stream.stop_holding()
        return keep

    async def _open_one(
        self,
        model: str,
        body: dict[str, Any],
        outcome: Outcome,
        hold: HoldBounds | None,
        policy: Policy,
        primary: bool,
    ) -> _Live:
        """Open one model's stream (down the outage chain for the primary) and, when holding,
        read it up to its first decision."""
        loop = asyncio.get_running_loop()
        chain = [model, *(policy.outage_fallbacks if primary else ())]
        last: CandorError | None = None
        for index, name in enumerate(chain):
            attempt = Attempt(model=name)
            started = loop.time()
            try:
                chunks = await self._upstreams.get(name).open_stream(body, outcome.request_id)
            except UpstreamRejected as exc:
                verdict = self._provider_block(exc, body)
                attempt.failure, attempt.verdict = exc.code or "upstream_error", verdict
                outcome.attempts.append(attempt)
                if verdict.censored:
                    first = Output(Step.END, verdict=verdict)
                    return _Live(name, None, first, attempt, rejected=exc)
                if not _is_outage(exc):
                    raise
                last = exc
                continue
            except UpstreamError as exc:
                attempt.failure, last = exc.code or "upstream_error", exc
                outcome.attempts.append(attempt)
                continue
            attempt.ttft = loop.time() - started
            stream = JudgedStream(chunks, self._detector.open_stream(request_exchange(body)), hold)
            outcome.attempts.append(attempt)
            if index > 0:
                outcome.reason = "outage"
            first = await _first_output(stream) if hold is not None else Output(Step.RELEASE)
            attempt.verdict = first.verdict or attempt.verdict
            return _Live(name, stream, first, attempt)
        assert last is not None
        raise last

    async def _relay(
        self, live: _Live, policy: Policy, action: Action, outcome: Outcome, started: float
    ) -> AsyncIterator[bytes]:
        stream = live.stream
        assert stream is not None
        stop_on_late = policy.stream.after_release == "error" and action.holds_stream
        try:
            for frame in [*live.first.frames, *live.pending]:
                yield frame
            output: Output | None = live.first
            while output is not None and output.step is not Step.END:
                output = await stream.next_output()
                if output is None:
                    break
                if output.step is Step.FAILED:
                    raise output.error or UpstreamError("upstream stream failed")
                late = output.step is Step.CENSORED or (
                    output.step is Step.END
                    and output.verdict is not None
                    and output.verdict.censored
                )
                verdict = output.verdict or UNKNOWN
                if late and stop_on_late and policy.acts_on(verdict.category, verdict.political):
                    live.attempt.verdict = verdict
                    outcome.action, outcome.reason = ActionName.FLAG, "censored_after_release"
                    yield wire.sse_error(
                        "The answer was stopped: it was judged censored after part of it had "
                        "been sent.",
                        "content_filter",
                        "censored_after_release",
                    )
                    return
                for frame in output.frames or (stream.stop_holding() if late else []):
                    yield frame
            verdict = stream.verdict or live.first.verdict or UNKNOWN
            live.attempt.verdict, live.attempt.answer = verdict, "".join(stream.text_parts)
            live.attempt.detector_seconds = stream.judge_seconds
            acts = verdict.censored and policy.acts_on(verdict.category, verdict.political)
            if outcome.action is ActionName.PASS and acts:
                outcome.action = ActionName.FLAG if action.holds_stream else action.name
                outcome.would = getattr(action, "would", None)
                for frame in action.stream_tail(stream.first, policy.wording):
                    yield frame
            _, note = annotation(outcome, live.model)
            yield wire.annotation_chunk(stream.first, live.model, note)
            yield wire.DONE
        except CandorError as exc:
            # Headers are gone: the failure becomes an error event, and no [DONE] follows.
            outcome.error = exc.code or exc.type
            yield wire.sse_error(exc.message, exc.type, exc.code, exc.param)
        except Exception:
            outcome.error = "internal_error"
            log.exception("stream %s failed", outcome.request_id)
            yield wire.sse_error("internal error in Candor", "server_error", "internal_error")
        finally:
            outcome.held_seconds = stream.held_seconds
            await stream.aclose()
            await self._finish(outcome, started)

    async def _frames(
        self, frames: list[bytes], outcome: Outcome, started: float
    ) -> AsyncIterator[bytes]:
        try:
            for frame in frames:
                yield frame
            _, note = annotation(outcome, outcome.requested_model)
            yield wire.annotation_chunk(None, outcome.requested_model, note)
            yield wire.DONE
        finally:
            await self._finish(outcome, started)


async def _first_output(stream: JudgedStream) -> Output:
    """Read until the first frames to release, a verdict, the end or a failure."""
    while (output := await stream.next_output()) is not None:
        if output.step is not Step.RELEASE or output.frames:
            return output
    return Output(Step.FAILED, error=UpstreamError("upstream stream ended early"))


async def _close_all(lives: list[_Live]) -> None:
    for live in lives:
        await live.close()


def _template(model: str) -> dict[str, Any]:
    return {"id": "chatcmpl-candor", "object": "chat.completion", "created": 0, "model": model}

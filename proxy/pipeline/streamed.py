"""Streamed answers: held and judged before the first byte when the action needs it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from proxy import wire
from proxy.answers import choice_count, request_exchange, wants_usage
from proxy.detect import UNKNOWN, Verdict
from proxy.errors import CandorError, ClientStalled, UpstreamError, UpstreamRejected
from proxy.holdback import HoldBounds, JudgedStream, Output, Step
from proxy.outcome import CANCELLED, Attempt, Outcome
from proxy.pipeline.annotate import annotation, mark_rejection
from proxy.pipeline.steps import Steps, answer_template, flag_if_left, is_outage
from proxy.pipeline.types import ChatRequest, StreamReply
from proxy.policy.actions import Action, ActionName, BlockAction
from proxy.policy.model import Policy
from proxy.policy.routing import preempt_reason
from proxy.upstream.base import ChunkStream, Upstream

log = logging.getLogger(__name__)


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
            try:
                await self.stream.aclose()
            finally:
                # What the upstream reported it spent is charged, whether served or set aside;
                # what arrived of an answer set aside (held, never sent) is audited as a whole
                # one is.
                self.attempt.usage = self.stream.usage or self.attempt.usage
                self.attempt.answer = self.attempt.answer or self.stream.answer


@dataclass(frozen=True, slots=True)
class _Blocked:
    """The replacement of a blocked answer: its frames, and the chunk they are framed like."""

    frames: list[bytes]
    template: dict[str, Any]


class StreamedAnswers(Steps):
    """`stream`: the request path for streams."""

    async def stream(self, request: ChatRequest) -> StreamReply:
        started = asyncio.get_running_loop().time()
        policy, body, outcome = self._prepare(request)
        action = self._actions[policy.name]
        opened: list[_Live] = []
        try:
            served = await self._open_stream(request, policy, action, body, outcome, opened)
        except BaseException as exc:
            # Every stream opened for it is closed, else the upstream would go on being read
            # until its total timeout. A cancellation is the client leaving while it was held
            # (or, past the shutdown grace, the server cutting it).
            await _close_all(opened)
            outcome.failed(exc, stopping=self._stopping)
            flag_if_left(outcome, policy)
            mark_rejection(outcome, exc)
            await self._finish(outcome, started)
            raise
        if isinstance(served, _Blocked):  # the replacement stream
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
        fallbacks = [(m, False) for m in policy.fallbacks_for(request.model)]
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
        opened: list[_Live],
    ) -> _Live | _Blocked:
        """The stream to serve. With a holding action each candidate is judged before its first
        byte goes out; a censored one is set aside (not yet aborted) for the next. Each opened
        stream is noted in `opened`, for the caller to close on a failure."""
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
                if primary and reason is None:
                    raise  # down or refusing, not censoring: the censorship chain is not for it
                error = error or exc
                continue
            opened.append(live)
            first, verdict = live.first, live.first.verdict or UNKNOWN
            if first.step is Step.FAILED:
                await live.close()
                if primary and reason is None and first.error is not None:
                    raise first.error
                error = error or first.error
                continue
            censored = first.step is Step.CENSORED or (first.step is Step.END and verdict.censored)
            if censored and (not primary or policy.acts_on(verdict.category, verdict.political)):
                if primary and isinstance(action, BlockAction):
                    await _close_all([live, *set_aside])
                    outcome.action = ActionName.BLOCK
                    # Usage the upstream reported before the answer was blocked (an answer
                    # stopped mid-way never got to its usage chunk).
                    usage = live.stream.usage if live.stream and wants_usage(body) else None
                    # Every chunk of the replacement is framed like the blocked answer's (one
                    # id for the stream), or, when the provider refused, like one of our own.
                    template = (live.stream.first if live.stream else None) or answer_template(
                        request.model, "chat.completion.chunk"
                    )
                    frames = action.stream_frames(template, policy.wording, usage)
                    return _Blocked(frames, template)
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
        return await self._exhausted(set_aside, error, outcome, action)

    async def _exhausted(
        self, set_aside: list[_Live], error: CandorError | None, outcome: Outcome, action: Action
    ) -> _Live:
        """No candidate gave a clean answer: the first censored one goes out, flagged."""
        keep = next((live for live in set_aside if live.stream is not None), None)
        await _close_all([live for live in set_aside if live is not keep])
        if keep is None or keep.stream is None:
            rejected = next((live.rejected for live in set_aside if live.rejected), None)
            if rejected is not None:
                # The provider's own refusal goes out, acted on as a whole answer's is: flagged
                # (the fallbacks exhausted) under reroute, else under the policy's action.
                if action.name is ActionName.REROUTE:
                    outcome.action, outcome.reason = ActionName.FLAG, "fallbacks_exhausted"
                else:
                    outcome.action = action.name
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
        chain = [model, *(policy.outage_fallbacks if primary else ())]
        errors: list[CandorError] = []

        async def open_stream(upstream: Upstream) -> ChunkStream:
            return await upstream.open_stream(body, outcome.request_id)

        reached_all = self._outage_chain(chain, body, outcome, open_stream, errors)
        async with contextlib.aclosing(reached_all) as reached_each:
            async for reached in reached_each:
                attempt, chunks = reached.attempt, reached.result
                if chunks is None:
                    assert reached.rejected is not None
                    if not attempt.verdict.censored:
                        raise reached.rejected
                    first = Output(Step.END, verdict=attempt.verdict)
                    return _Live(reached.name, None, first, attempt, rejected=reached.rejected)
                attempt.ttft = attempt.seconds
                # A judge for each choice the request asks for (`n`), opened as it comes.
                open_judge = functools.partial(self._detector.open_stream, request_exchange(body))
                try:
                    stream = JudgedStream(
                        chunks,
                        open_judge,
                        hold,
                        choices=choice_count(body),
                        relay_usage=wants_usage(body),
                    )
                except BaseException:
                    await chunks.aclose()
                    raise
                try:
                    first = (
                        await _first_output(stream) if hold is not None else Output(Step.RELEASE)
                    )
                except BaseException as exc:
                    if isinstance(exc, asyncio.CancelledError):
                        # The client left while it was held: what arrived is judged, as when
                        # it leaves mid-stream (`flag_if_left` acts on it).
                        attempt.failure = CANCELLED
                        _judge_arrived(attempt, stream)
                    await stream.aclose()
                    raise
                broke = first.error if first.step is Step.FAILED else None
                if broke is not None and is_outage(broke) and reached.index < len(chain) - 1:
                    # Held: no byte of it reached the client, so a break is an outage like any.
                    await stream.aclose()
                    attempt.failure = broke.code or "upstream_error"
                    errors.append(broke)
                    continue
                attempt.verdict = first.verdict or attempt.verdict
                return _Live(reached.name, stream, first, attempt)
        raise errors[-1]

    async def _relay(
        self, live: _Live, policy: Policy, action: Action, outcome: Outcome, started: float
    ) -> AsyncGenerator[bytes, None]:
        stream = live.stream
        assert stream is not None
        stop_on_late = policy.stream.after_release == "error" and action.holds_stream
        try:
            yield b""  # started (see `StreamReply`)
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
            live.attempt.verdict, live.attempt.answer = verdict, stream.answer
            live.attempt.detector_seconds = stream.judge_seconds
            if _act_after_release(outcome, policy, action, verdict):
                outcome.would = policy.shadow_would(getattr(action, "would", None), live.model)
                tail = action.stream_tail(stream.first, policy.wording, stream.text_choices)
                for frame in tail:
                    yield frame
            _, note = annotation(outcome, live.model)
            yield wire.annotation_chunk(stream.first, live.model, note)
            yield wire.DONE
        except (asyncio.CancelledError, GeneratorExit, ClientStalled) as exc:
            self._ended_midway(outcome, exc)
            _note_broken(live, stream, policy, action, outcome)
            raise
        except CandorError as exc:
            # Headers are gone: the failure becomes an error event, and no [DONE] follows.
            outcome.error = exc.code or exc.type
            _note_broken(live, stream, policy, action, outcome)
            yield wire.sse_error(exc.message, exc.type, exc.code, exc.param)
        except Exception:
            outcome.error = "internal_error"
            log.exception("stream %s failed", outcome.request_id)
            yield wire.sse_error("internal error in Candor", "server_error", "internal_error")
        finally:
            outcome.held_seconds = stream.held_seconds
            try:
                await live.close()
            finally:
                await self._finish(outcome, started)

    def _ended_midway(self, outcome: Outcome, exc: BaseException) -> None:
        """A stream cut after its headers: its client stopped reading (`ClientStalled`), hung
        up, or (past the shutdown grace) the server cut it."""
        if isinstance(exc, ClientStalled):
            outcome.client_left, outcome.error = True, exc.code
        else:
            outcome.cancelled(stopping=self._stopping, started=True)

    async def _frames(
        self, blocked: _Blocked, outcome: Outcome, started: float
    ) -> AsyncGenerator[bytes, None]:
        try:
            yield b""  # started (see `StreamReply`)
            for frame in blocked.frames:
                yield frame
            _, note = annotation(outcome, outcome.requested_model)
            yield wire.annotation_chunk(blocked.template, outcome.requested_model, note)
            yield wire.DONE
        except (asyncio.CancelledError, GeneratorExit, ClientStalled) as exc:
            self._ended_midway(outcome, exc)
            raise
        finally:
            await self._finish(outcome, started)


async def _first_output(stream: JudgedStream) -> Output:
    """Read until the first frames to release, a verdict, the end or a failure."""
    while (output := await stream.next_output()) is not None:
        if output.step is not Step.RELEASE or output.frames:
            return output
    return Output(Step.FAILED, error=UpstreamError("upstream stream ended early"))


def _note_broken(
    live: _Live, stream: JudgedStream, policy: Policy, action: Action, outcome: Outcome
) -> None:
    """A stream that broke, or that its client left, is judged on what arrived of it: a
    censored part the client already has is flagged (and audited) like a whole censored answer."""
    _act_after_release(outcome, policy, action, _judge_arrived(live.attempt, stream))


def _act_after_release(outcome: Outcome, policy: Policy, action: Action, verdict: Verdict) -> bool:
    """A verdict on a stream already (partly) sent, which the policy acts on and nothing acted
    on yet: the request is flagged (a holding action can no longer hold it) or takes the name
    of an action that never holds (flag, annotate, shadow). Returns whether it did."""
    if outcome.action is not ActionName.PASS or not policy.acts_on_verdict(verdict):
        return False
    outcome.action = ActionName.FLAG if action.holds_stream else action.name
    return True


def _judge_arrived(attempt: Attempt, stream: JudgedStream) -> Verdict:
    """Judge what arrived of a stream cut short, for `attempt` (no verdict when nothing did)."""
    attempt.verdict, attempt.answer = stream.judge_arrived(), stream.answer
    attempt.detector_seconds = stream.judge_seconds
    return attempt.verdict


async def _close_all(lives: list[_Live]) -> None:
    for live in lives:
        await live.close()

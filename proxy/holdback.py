"""Holding a stream back while the detector decides, bounded in characters and time.

`JudgedStream` reads an upstream's SSE events (through a pump task, so the time bound can fire
between events; at most `READ_AHEAD` events ahead of its reader), feeds each choice's text to an
incremental judge of its own, and hands out what may be sent to the client: frames released, a
censored verdict, the end of the answer, or a failure. With several choices (`n` > 1, or more
than the request asked for) frames are released once every choice that came is, and every
choice asked for came.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from proxy.answers import answer_usage, chunk_deltas, is_usage_only
from proxy.detect import UNKNOWN, Decision, StreamJudge, StreamStep, Verdict, answer_choice
from proxy.errors import CandorError, UpstreamBadResponse
from proxy.upstream.base import ChunkStream
from proxy.wire import SseEvent

log = logging.getLogger(__name__)


class Step(StrEnum):
    RELEASE = "release"
    CENSORED = "censored"
    END = "end"
    FAILED = "failed"


@dataclass(slots=True)
class Output:
    """One step of a judged stream. `frames` are SSE bytes the client may now receive."""

    step: Step
    frames: list[bytes] = field(default_factory=list)
    verdict: Verdict | None = None
    error: CandorError | None = None


@dataclass(frozen=True, slots=True)
class HoldBounds:
    """How much may be held: characters of answer and milliseconds since holding began."""

    chars: int
    ms: int


class HoldBackWindow:
    """Frames not yet released, each with the answer length its end reaches."""

    def __init__(self) -> None:
        self._frames: deque[tuple[bytes, int]] = deque()
        self.since: float | None = None

    def __len__(self) -> int:
        return len(self._frames)

    def push(self, frame: bytes, content_end: int, now: float) -> None:
        if self.since is None:
            self.since = now
        self._frames.append((frame, content_end))

    def release(self, upto: int | None = None) -> list[bytes]:
        """Frames whose text ends at or before `upto` characters (all when None)."""
        out = []
        while self._frames and (upto is None or self._frames[0][1] <= upto):
            out.append(self._frames.popleft()[0])
        if not self._frames:
            self.since = None
        return out


_END = object()
# Events the pump reads ahead of the reader. Enough to ride out a judge's or a send's pause;
# past it the pump waits, so a slow client holds this many events, not the whole answer, and
# TCP flow control slows the upstream down.
READ_AHEAD = 128
_RELEASE = Decision.RELEASE
_CENSORED = Decision.CENSORED


@dataclass(slots=True)
class _Choice:
    """One choice of the answer: its judge and what it has read of the choice."""

    judge: StreamJudge
    length: int = 0
    released: int = -1  # characters its judge released; -1: undecided
    taken: int = 0  # its length when frames were last released up to the end
    finish_reason: str | None = None
    saw_tool_calls: bool = False  # whatever its finish reason says
    parts: list[str] = field(default_factory=list)  # its text as it came
    verdict: Verdict | None = None  # its whole verdict, once it ended before the answer did

    def finish(self) -> Verdict:
        if self.verdict is None:
            self.verdict = self.judge.finish(self.finish_reason, has_tool_calls=self.saw_tool_calls)
        return self.verdict

    def settle(self) -> Verdict:
        """A choice that ended while others go on is judged whole now: when clean, all of it
        is released (its judge may hold a short text for more that will never come)."""
        verdict = self.finish()
        if not verdict.censored:
            self.released = self.length
        return verdict


class JudgedStream:
    """An upstream stream judged as it arrives; see the module docstring. `open_judge` opens
    a judge for each choice as it first comes: the `choices` the request asks for (`n`) and
    any more the upstream sends, which reach the client as well."""

    def __init__(
        self,
        chunks: ChunkStream,
        open_judge: Callable[[], StreamJudge],
        bounds: HoldBounds | None,
        *,
        choices: int = 1,
        relay_usage: bool = True,
    ) -> None:
        self._chunks = chunks
        # False: the usage chunk was asked for by Candor, not the client; it is read, not sent.
        self._relay_usage = relay_usage
        self._open_judge = open_judge
        self._expected = choices
        self._choices = {0: _Choice(open_judge())}
        self._bounds = bounds  # None: never hold
        self._queue: asyncio.Queue[Any] = asyncio.Queue(READ_AHEAD)
        self._pump: asyncio.Task[None] | None = None
        self._outputs: AsyncGenerator[Output, None] | None = None
        self._window = HoldBackWindow()
        self._length = 0
        self._released_upto = 0
        self._released_any = False
        self._arrived = False  # any text or tool call of the answer
        self.first: dict[str, Any] | None = None
        self.verdict: Verdict | None = None
        self.held_seconds = 0.0
        self.judge_seconds = 0.0
        self._deciding = 0  # the choice whose verdict is the answer's (see `answer`)
        self.usage: Mapping[str, Any] | None = None  # the upstream's usage chunk, when it sends one

    @property
    def released_any(self) -> bool:
        return self._released_any

    @property
    def holding(self) -> bool:
        return self._bounds is not None

    @property
    def answer(self) -> str:
        """What arrived of the choice whose verdict is the answer's (the first choice until one
        is judged): the answer audited."""
        return "".join(self._choices[self._deciding].parts)

    @property
    def text_choices(self) -> list[int]:
        """The indexes of the choices that came without tool calls (the first one at least)."""
        return [i for i, c in sorted(self._choices.items()) if not c.saw_tool_calls] or [0]

    def stop_holding(self) -> list[bytes]:
        """From now on nothing is held; returns what was held."""
        self._bounds = None
        return self._take(None)

    async def _run_pump(self) -> None:
        # Cancelled (by `aclose`), it puts nothing more: nobody reads, and a put into a full
        # queue would wait forever.
        failure = await self._read_upstream()
        if failure is not None:
            await self._queue.put(failure)
        await self._queue.put(_END)

    async def _read_upstream(self) -> CandorError | None:
        """Queue the upstream's events up to `[DONE]`; returns what broke the read, if any."""
        try:
            async for event in self._chunks:
                await self._queue.put(event)
                if event.done:
                    return None
        except CandorError as exc:
            return exc
        except Exception:
            # Whatever broke the read goes to the reader as a failure: a pump that died of it
            # would re-raise it from `aclose`, past the caller's own clean-up.
            log.exception("reading the upstream stream failed")
            return UpstreamBadResponse("upstream stream could not be read")
        return UpstreamBadResponse("upstream stream ended without [DONE]")

    async def _next(self, loop: asyncio.AbstractEventLoop) -> Any:
        if self._pump is None:
            self._pump = asyncio.create_task(self._run_pump())
        since = self._window.since
        if self._bounds is None or since is None:
            return await self._queue.get()
        remaining = since + self._bounds.ms / 1000 - loop.time()
        try:
            return await asyncio.wait_for(self._queue.get(), max(remaining, 0.0))
        except TimeoutError:
            return None  # the time bound passed: release

    async def next_output(self) -> Output | None:
        """The next step; None once the stream has ended or failed.

        RELEASE: send its frames. CENSORED: the judge stopped mid-answer; held frames stay
        held (`aclose` to abort, or `stop_holding` to pass them and go on). END: the answer is
        complete, with its whole-answer verdict; when that verdict is censored and the stream
        holds, what was held stays held. FAILED: the upstream broke.
        """
        if self._outputs is None:
            self._outputs = self._generate()
        return await anext(self._outputs, None)

    async def _generate(self) -> AsyncGenerator[Output, None]:
        loop = asyncio.get_running_loop()
        while True:
            item = await self._next(loop)
            if item is None:
                yield Output(Step.RELEASE, self._take(None))
                continue
            if item is _END:
                return
            if isinstance(item, CandorError):
                yield Output(Step.FAILED, error=item)
                return
            assert isinstance(item, SseEvent)
            if item.done:
                self.verdict = None
                withhold = self.judge_so_far().censored and self.holding
                yield Output(Step.END, [] if withhold else self._take(None), self.verdict)
                return
            output = self._absorb(item, loop.time())
            if output is not None:
                yield output
                if output.step is Step.FAILED:
                    return

    def _absorb(self, event: SseEvent, now: float) -> Output | None:
        data = event.data or {}
        if "error" in data:
            return Output(Step.FAILED, error=_upstream_error(data))
        try:
            deltas = chunk_deltas(data)
        except UpstreamBadResponse as exc:
            return Output(Step.FAILED, error=exc)
        self.first = self.first or data
        self.usage = answer_usage(data) or self.usage
        if not self._relay_usage and is_usage_only(data):
            return None
        step: StreamStep | None = None
        censored: tuple[int, Verdict] | None = None
        calls = reasoning = ended = False
        for delta in deltas:
            choice = self._choices.get(delta.index) or self._open(delta.index)
            choice.finish_reason = delta.finish_reason or choice.finish_reason
            choice.verdict = None  # what it adds, or a finish reason, changes its verdict
            # Told to the judge at the end, held or not: a tool-call answer is no empty answer.
            if delta.has_tool_calls:
                choice.saw_tool_calls = calls = True
            # Reasoning is not the answer: one cut short while thinking had not begun.
            self._arrived = self._arrived or calls or bool(delta.content)
            if delta.content or delta.reasoning:
                reasoning = reasoning or bool(delta.reasoning)
                choice.length += len(delta.content)
                self._length += len(delta.content)
                choice.parts.append(delta.content)
                tick = time.perf_counter()
                step = choice.judge.feed(delta.content, delta.reasoning)
                self.judge_seconds += time.perf_counter() - tick
                if step.decision is _CENSORED and step.verdict is not None:
                    censored = censored or (delta.index, step.verdict)
                elif step.decision is _RELEASE:
                    choice.released = step.released
            if delta.finish_reason and self._several:
                ended = True
                verdict = choice.settle()
                censored = censored or ((delta.index, verdict) if verdict.censored else None)
        if censored is not None and self.verdict is None:
            self._deciding, self.verdict = censored
            if self._bounds is not None:
                self._window.push(event.raw, self._length, now)
                return Output(Step.CENSORED, verdict=self.verdict)
        if self._several and (step is not None or calls or ended):
            step = self._agreed()
        return self._hold(event, step, calls and not self._length and not reasoning, now)

    @property
    def _several(self) -> bool:
        """Several choices asked for, or come (an upstream may send more than `n`)."""
        return self._expected > 1 or len(self._choices) > 1

    def _open(self, index: int) -> _Choice:
        choice = self._choices[index] = _Choice(self._open_judge())
        return choice

    def _agreed(self) -> StreamStep:
        """Several choices: released up to the end once every choice asked for came and every
        choice that came is released (its judge released all of it, or it is tool calls and no
        text), else held. Once some of the answer is out (a bound released it), a choice that
        never came holds nothing up: the answer can no longer be re-routed, and an upstream may
        ignore `n`. A choice past `n` is judged and held like the others, never waited for."""
        choices = self._choices.values()
        came = self._released_any or all(i in self._choices for i in range(self._expected))
        if came and all(
            c.released >= c.length or (c.saw_tool_calls and not c.length) for c in choices
        ):
            return StreamStep(_RELEASE, self._length)
        return StreamStep(Decision.HOLD, self._released_upto)

    def _hold(
        self, event: SseEvent, step: StreamStep | None, first_call: bool, now: float
    ) -> Output | None:
        """Release or hold a frame the judges read (`step`: None when it held no text)."""
        if self._bounds is None:
            self._released_any = True
            return Output(Step.RELEASE, [event.raw])
        # A tool call is not judged, but it keeps its place: released ahead of text still held
        # it would reorder the answer. One that comes before any text goes out at once (a
        # tool-call answer is not held for its whole length, which the judge has no use for);
        # it commits the stream to this model, so text after it is flagged, not re-routed.
        caught_up = self._released_any and self._released_upto >= self._length
        if step is None and not self._window and (caught_up or first_call):
            self._released_any = True
            return Output(Step.RELEASE, [event.raw])  # nothing held: no reason to wait
        self._window.push(event.raw, self._length, now)
        if step is None:
            return None
        if step.decision is _RELEASE:
            return Output(Step.RELEASE, self._take(step.released))
        if self._longest_held() > self._bounds.chars:
            return Output(Step.RELEASE, self._take(None))
        return None

    def _longest_held(self) -> int:
        """Characters held of the choice with the most held (the hold bound is per choice)."""
        if not self._several:
            return self._length - self._released_upto
        return max(c.length - c.taken for c in self._choices.values())

    def judge_so_far(self) -> Verdict:
        """The verdict on the answer: the worst of its choices' (on what arrived of them, when
        its end never came). Choices asked for that never came are not judged."""
        if self.verdict is None:
            tick = time.perf_counter()
            indexes = sorted(self._choices)
            index, self.verdict = answer_choice([self._choices[i].finish() for i in indexes])
            self._deciding = indexes[index]
            self.judge_seconds += time.perf_counter() - tick
        return self.verdict

    def judge_arrived(self) -> Verdict:
        """The verdict on what arrived of an answer cut short (see `judge_so_far`), `UNKNOWN`
        when none of it came: an answer that never came is no empty answer."""
        return self.judge_so_far() if self._arrived else UNKNOWN

    def _take(self, upto: int | None) -> list[bytes]:
        self._released_upto = self._length if upto is None else max(self._released_upto, upto)
        if self._released_upto >= self._length:
            for choice in self._choices.values():
                choice.taken = choice.length
        since = self._window.since
        frames = self._window.release(upto)
        if frames:
            self._released_any = True
            if since is not None:
                self.held_seconds += max(asyncio.get_running_loop().time() - since, 0.0)
        return frames

    async def aclose(self) -> None:
        """Abort the upstream request. A cancellation of the caller meanwhile is not lost: the
        upstream is closed and the cancellation goes on."""
        try:
            if self._outputs is not None:
                await self._outputs.aclose()
            if self._pump is not None:
                self._pump.cancel()
                # `wait`, not `await`: the pump's own cancellation is not raised here, and the
                # caller's (were it suppressed with the pump's) would be swallowed.
                await asyncio.wait([self._pump])
        finally:
            await self._chunks.aclose()


def _upstream_error(data: dict[str, Any]) -> CandorError:
    error = data.get("error")
    message = error.get("message") if isinstance(error, dict) else None
    return UpstreamBadResponse(f"upstream failed mid-stream: {message or error}")

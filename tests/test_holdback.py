"""Holding a stream back while the judge decides: bounds in characters and in time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from functools import partial

import orjson

from proxy.detect import Category, Decision, Status, StreamStep, Verdict
from proxy.holdback import READ_AHEAD, HoldBounds, JudgedStream, Step
from proxy.wire import SseEvent, sse_event

CENSORED = Verdict(Status.CENSORED, 0.99, Category.REFUSAL)
CLEAN = Verdict(Status.CLEAN, 0.01)


def text_event(text: str, index: int = 0) -> SseEvent:
    choice = {"index": index, "delta": {"content": text}, "finish_reason": None}
    data = {"id": "c", "choices": [choice]}
    return SseEvent(raw=sse_event(data), data=data)


def tool_event() -> SseEvent:
    call = {"index": 0, "id": "t1", "type": "function", "function": {"name": "f", "arguments": ""}}
    data = {"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}
    return SseEvent(raw=sse_event(data), data=data)


DONE = SseEvent(raw=b"data: [DONE]\n\n", data=None, done=True)


class Chunks:
    def __init__(self, events: Sequence[SseEvent], delay: float = 0.0) -> None:
        self.events, self.delay, self.closed = list(events), delay, False

    async def __aiter__(self) -> AsyncIterator[SseEvent]:
        for event in self.events:
            await asyncio.sleep(self.delay)
            yield event

    async def aclose(self) -> None:
        self.closed = True


class CountedChunks(Chunks):
    """Counts the events taken from it."""

    def __init__(self, events: Sequence[SseEvent]) -> None:
        super().__init__(events)
        self.taken = 0

    async def __aiter__(self) -> AsyncIterator[SseEvent]:
        for event in self.events:
            await asyncio.sleep(0)
            self.taken += 1
            yield event


class Judge:
    """Holds until `release_at` characters, or says censored at `censor_at`."""

    def __init__(self, release_at: int = 10**9, censor_at: int = 10**9, final: Verdict = CLEAN):
        self.length, self.release_at, self.censor_at, self.final = 0, release_at, censor_at, final

    def feed(self, content: str = "", reasoning: str = "") -> StreamStep:
        self.length += len(content)
        if self.length >= self.censor_at:
            return StreamStep(Decision.CENSORED, 0, CENSORED)
        if self.length >= self.release_at:
            return StreamStep(Decision.RELEASE, self.length)
        return StreamStep(Decision.HOLD, 0)

    def finish(self, finish_reason: str | None = None, has_tool_calls: bool = False) -> Verdict:
        return self.final


def judges(*made: Judge) -> Callable[[], Judge]:
    """Opens the given judges in turn: one for each choice, in the order the choices come."""
    return iter(made).__next__


async def drain(stream: JudgedStream) -> list[tuple[Step, list[str]]]:
    steps = []
    while (output := await stream.next_output()) is not None:
        chunks = [orjson.loads(frame[6:]) for frame in output.frames]
        texts = [chunk["choices"][0]["delta"].get("content", "") for chunk in chunks]
        steps.append((output.step, texts))
    return steps


async def test_holds_until_the_judge_releases() -> None:
    chunks = Chunks([text_event("ab"), text_event("cd"), text_event("ef"), DONE])
    stream = JudgedStream(chunks, partial(Judge, release_at=4), HoldBounds(chars=100, ms=10_000))
    steps = await drain(stream)
    assert steps == [(Step.RELEASE, ["ab", "cd"]), (Step.RELEASE, ["ef"]), (Step.END, [])]
    await stream.aclose()
    assert chunks.closed


async def test_censored_keeps_everything_held() -> None:
    chunks = Chunks([text_event("I am sorry"), text_event(", no."), DONE])
    stream = JudgedStream(chunks, partial(Judge, censor_at=5), HoldBounds(chars=100, ms=10_000))
    first = await stream.next_output()
    assert first is not None and first.step is Step.CENSORED and first.frames == []
    assert first.verdict == CENSORED
    held = stream.stop_holding()  # a flag-only policy lets it through after all
    assert len(held) == 1
    await stream.aclose()


async def test_the_character_bound_releases() -> None:
    chunks = Chunks([text_event("x" * 30), text_event("y" * 30), DONE])
    stream = JudgedStream(chunks, Judge, HoldBounds(chars=40, ms=10_000))
    steps = await drain(stream)
    assert steps[0] == (Step.RELEASE, ["x" * 30, "y" * 30])
    await stream.aclose()


async def test_the_time_bound_releases_between_chunks() -> None:
    chunks = Chunks([text_event("slow"), text_event("er"), DONE], delay=0.15)
    stream = JudgedStream(chunks, Judge, HoldBounds(chars=1000, ms=50))
    first = await stream.next_output()
    assert first is not None and first.step is Step.RELEASE
    assert len(first.frames) == 1  # released by time, before the second chunk arrived
    assert stream.held_seconds >= 0.04
    await stream.aclose()


async def test_answer_ending_inside_the_window_gets_the_whole_verdict() -> None:
    chunks = Chunks([text_event("No."), DONE])
    stream = JudgedStream(chunks, partial(Judge, final=CENSORED), HoldBounds(chars=100, ms=10_000))
    steps = await drain(stream)
    assert steps == [(Step.END, [])]  # withheld: the caller may re-route
    assert stream.verdict == CENSORED
    clean = JudgedStream(Chunks([text_event("Yes."), DONE]), Judge, HoldBounds(100, 10_000))
    assert await drain(clean) == [(Step.END, ["Yes."])]
    await stream.aclose()
    await clean.aclose()


async def test_tool_calls_pass_at_once_when_nothing_is_held() -> None:
    chunks = Chunks([text_event("ab"), tool_event(), DONE])
    stream = JudgedStream(chunks, partial(Judge, release_at=2), HoldBounds(chars=100, ms=10_000))
    first = await stream.next_output()
    assert first is not None and first.step is Step.RELEASE and len(first.frames) == 1
    second = await stream.next_output()
    assert second is not None and second.step is Step.RELEASE and len(second.frames) == 1
    assert b"tool_calls" in second.frames[0]
    await stream.aclose()


async def test_tool_calls_keep_their_place_behind_held_text() -> None:
    chunks = Chunks([text_event("ab"), tool_event(), text_event("cd"), DONE])
    stream = JudgedStream(chunks, partial(Judge, release_at=4), HoldBounds(chars=100, ms=10_000))
    first = await stream.next_output()
    assert first is not None and first.step is Step.RELEASE
    assert [b"tool_calls" in frame for frame in first.frames] == [False, True, False]
    await stream.aclose()


async def test_a_tool_call_before_any_text_goes_out_at_once() -> None:
    # A tool-call answer is not held for its whole length; the stream is then this model's.
    chunks = Chunks([tool_event(), text_event("I am sorry"), DONE])
    stream = JudgedStream(chunks, partial(Judge, censor_at=5), HoldBounds(chars=100, ms=10_000))
    first = await stream.next_output()
    assert first is not None and first.step is Step.RELEASE and b"tool_calls" in first.frames[0]
    assert stream.released_any
    await stream.aclose()


async def test_without_bounds_nothing_is_held() -> None:
    chunks = Chunks([text_event("a"), text_event("b"), DONE])
    stream = JudgedStream(chunks, partial(Judge, censor_at=1, final=CENSORED), None)
    steps = await drain(stream)
    assert steps == [(Step.RELEASE, ["a"]), (Step.RELEASE, ["b"]), (Step.END, [])]
    assert stream.verdict == CENSORED
    await stream.aclose()


async def test_a_stream_cut_short_fails() -> None:
    stream = JudgedStream(Chunks([text_event("a")]), Judge, None)
    steps = [s for s, _ in await drain(stream)]
    assert steps == [Step.RELEASE, Step.FAILED]
    await stream.aclose()


class Breaking(Chunks):
    """Events, then an exception that is no `CandorError` (a reader's own bug)."""

    async def __aiter__(self) -> AsyncIterator[SseEvent]:
        for event in self.events:
            yield event
        raise RuntimeError("boom")


async def test_a_reader_that_raises_fails_the_stream_and_still_closes() -> None:
    chunks = Breaking([text_event("a")])
    stream = JudgedStream(chunks, Judge, None)
    outputs = []
    while (output := await stream.next_output()) is not None:
        outputs.append(output)
    assert [o.step for o in outputs] == [Step.RELEASE, Step.FAILED]
    error = outputs[-1].error
    assert error is not None and error.code == "bad_upstream_response"
    await stream.aclose()  # does not re-raise the reader's exception
    assert chunks.closed


async def test_several_choices_are_held_until_every_choice_is_released() -> None:
    # n = 2: the first choice is released at once, but the second is not decided yet.
    events = [text_event("ab"), text_event("cd", 1), text_event("ef", 1), DONE]
    open_judge = judges(Judge(release_at=2), Judge(release_at=4))
    stream = JudgedStream(Chunks(events), open_judge, HoldBounds(100, 10_000), choices=2)
    assert await drain(stream) == [(Step.RELEASE, ["ab", "cd", "ef"]), (Step.END, [])]
    assert stream.verdict == CLEAN and stream.answer == "ab"
    await stream.aclose()


async def test_a_censored_choice_stops_the_stream_before_any_byte() -> None:
    events = [text_event("Paris."), text_event("I am sorry", 1), text_event(" no.", 1), DONE]
    open_judge = judges(Judge(release_at=2), Judge(censor_at=5))
    stream = JudgedStream(Chunks(events), open_judge, HoldBounds(100, 10_000), choices=2)
    first = await stream.next_output()
    assert first is not None and first.step is Step.CENSORED and first.frames == []
    assert first.verdict == CENSORED and not stream.released_any
    assert stream.answer == "I am sorry"  # the audited text: the choice that was censored
    assert len(stream.stop_holding()) == 2  # a flag-only policy lets both choices through
    await stream.aclose()


async def test_the_answer_has_the_verdict_of_its_worst_choice() -> None:
    events = [text_event("Yes.", 1), text_event("No."), DONE]
    open_judge = judges(Judge(), Judge(final=CENSORED))  # choice 1 comes first
    stream = JudgedStream(Chunks(events), open_judge, HoldBounds(100, 10_000), choices=2)
    assert await drain(stream) == [(Step.END, [])]  # withheld: the caller may re-route
    assert stream.verdict == CENSORED and stream.answer == "Yes."  # the worst choice's text
    unheld = JudgedStream(Chunks(events), judges(Judge(), Judge(final=CENSORED)), None, choices=2)
    assert [step for step, _ in await drain(unheld)] == [Step.RELEASE, Step.RELEASE, Step.END]
    assert unheld.verdict == CENSORED and unheld.answer == "Yes."
    await stream.aclose()
    await unheld.aclose()


async def test_a_choice_that_never_comes_holds_to_the_end_and_is_not_judged() -> None:
    # An upstream that ignores `n`: the choice asked for and missing is no empty answer.
    events = [text_event("ab"), text_event("cd"), DONE]
    stream = JudgedStream(Chunks(events), judges(Judge(release_at=2)), HoldBounds(100, 10_000))
    assert [step for step, _ in await drain(stream)] == [Step.RELEASE, Step.RELEASE, Step.END]
    missing = JudgedStream(
        Chunks(events), judges(Judge(release_at=2)), HoldBounds(100, 10_000), choices=2
    )
    assert await drain(missing) == [(Step.END, ["ab", "cd"])]
    assert missing.verdict == CLEAN
    await stream.aclose()
    await missing.aclose()


async def test_the_character_bound_is_per_choice() -> None:
    events = [text_event("x" * 30), text_event("y" * 30, 1), text_event("x" * 15), DONE]
    stream = JudgedStream(Chunks(events), Judge, HoldBounds(chars=40, ms=10_000), choices=2)
    first = await stream.next_output()  # 60 characters held, but 30 and 45 of each choice
    assert first is not None and first.step is Step.RELEASE and len(first.frames) == 3
    await stream.aclose()


async def test_choices_of_tool_calls_go_out_once_every_choice_is_released() -> None:
    call = tool_event().data or {}
    second = {**call, "choices": [{**call["choices"][0], "index": 1}]}
    events = [tool_event(), SseEvent(raw=sse_event(second), data=second), DONE]
    stream = JudgedStream(Chunks(events), Judge, HoldBounds(100, 10_000), choices=2)
    first = await stream.next_output()  # not before the second choice came
    assert first is not None and first.step is Step.RELEASE and len(first.frames) == 2
    await stream.aclose()


async def test_the_choices_with_text_are_named_for_a_note() -> None:
    call = tool_event().data or {}
    data = {**call, "choices": [{**call["choices"][0], "index": 1}]}
    calls = SseEvent(raw=sse_event(data), data=data)
    events = [text_event("a"), calls, text_event("b", 2), DONE]
    stream = JudgedStream(Chunks(events), Judge, None, choices=3)
    await drain(stream)
    assert stream.text_choices == [0, 2]
    await stream.aclose()


async def test_a_stream_cut_short_is_judged_on_its_text_and_not_when_none_came() -> None:
    thinking = {"id": "c", "choices": [{"index": 0, "delta": {"reasoning_content": "Hmm."}}]}
    events = [SseEvent(raw=sse_event(thinking), data=thinking), text_event("No.")]
    stream = JudgedStream(Chunks(events), judges(Judge(final=CENSORED)), None)
    await stream.next_output()
    # Before, an answer cut while the model was still thinking was judged an empty one.
    assert stream.judge_arrived().status is Status.UNKNOWN
    await stream.next_output()
    assert stream.judge_arrived() == CENSORED and stream.answer == "No."
    await stream.aclose()


def finish_event(index: int) -> SseEvent:
    data = {"id": "c", "choices": [{"index": index, "delta": {}, "finish_reason": "stop"}]}
    return SseEvent(raw=sse_event(data), data=data)


async def test_a_choice_that_ends_early_is_judged_whole_and_holds_the_others_no_longer() -> None:
    # Its judge never released a short "Yes.", so every other choice was held to the hold
    # bound (hold_ms), then again for each hold_ms after, until the stream's end.
    events = [text_event("Yes."), finish_event(0), text_event("ab", 1), text_event("cd", 1), DONE]
    open_judge = judges(Judge(), Judge(release_at=2))
    stream = JudgedStream(Chunks(events), open_judge, HoldBounds(100, 10_000), choices=2)
    first = await stream.next_output()
    assert first is not None and first.step is Step.RELEASE and len(first.frames) == 3
    assert await drain(stream) == [(Step.RELEASE, ["cd"]), (Step.END, [])]
    assert stream.verdict == CLEAN
    await stream.aclose()


async def test_a_choice_that_ends_early_censored_stops_the_stream_at_its_end() -> None:
    events = [text_event("No."), finish_event(0), text_event("ab", 1), DONE]
    open_judge = judges(Judge(final=CENSORED), Judge(release_at=2))
    stream = JudgedStream(Chunks(events), open_judge, HoldBounds(100, 10_000), choices=2)
    first = await stream.next_output()
    assert first is not None and first.step is Step.CENSORED and first.verdict == CENSORED
    assert not stream.released_any
    await stream.aclose()


async def test_once_a_bound_released_a_choice_that_never_came_holds_the_others_no_longer() -> None:
    # An upstream that ignores `n`: once a bound has released part of the answer (it can no
    # longer be re-routed), text its judge releases goes out; before, it waited for a bound
    # each time, so the answer came in bursts `hold_ms` (or `hold_chars`) apart.
    events = [text_event("ab"), text_event("c"), text_event("d"), DONE]
    stream = JudgedStream(
        Chunks(events), judges(Judge(release_at=1)), HoldBounds(1, 10_000), choices=2
    )
    assert await drain(stream) == [
        (Step.RELEASE, ["ab"]),
        (Step.RELEASE, ["c"]),
        (Step.RELEASE, ["d"]),
        (Step.END, []),
    ]
    await stream.aclose()


async def test_a_choice_past_n_is_judged_and_held_like_the_others() -> None:
    # n = 1 and the upstream sends a second choice, which reaches the client too: before, it
    # went out unjudged (and released what was held of the first with it).
    events = [text_event("I am sorry", 1), text_event("Paris."), text_event(" no.", 1), DONE]
    open_judge = judges(Judge(release_at=2), Judge(censor_at=5))
    stream = JudgedStream(Chunks(events), open_judge, HoldBounds(100, 10_000))
    first = await stream.next_output()
    assert first is not None and first.step is Step.CENSORED and first.frames == []
    assert not stream.released_any and stream.answer == "I am sorry"
    unheld = JudgedStream(Chunks(events), judges(Judge(), Judge(final=CENSORED)), None)
    assert [step for step, _ in await drain(unheld)] == [Step.RELEASE] * 3 + [Step.END]
    assert unheld.verdict == CENSORED and unheld.answer == "I am sorry no."
    await stream.aclose()
    await unheld.aclose()


async def test_a_choice_past_n_is_waited_for_by_nothing() -> None:
    # n = 2 and a third choice comes before the second: held until both choices asked for
    # came, then released as soon as the three are, not at the answer's end.
    events = [text_event("ab"), text_event("ef", 2), text_event("cd", 1), text_event("gh"), DONE]
    open_judge = judges(Judge(release_at=2), Judge(release_at=2), Judge(release_at=2))
    stream = JudgedStream(Chunks(events), open_judge, HoldBounds(100, 10_000), choices=2)
    assert await drain(stream) == [
        (Step.RELEASE, ["ab", "ef", "cd"]),
        (Step.RELEASE, ["gh"]),
        (Step.END, []),
    ]
    assert stream.text_choices == [0, 1, 2] and stream.verdict == CLEAN
    await stream.aclose()


async def closes_at_once(stream: JudgedStream) -> bool:
    """Whether `aclose` returns within a second. Not `wait_for`: its cancellation, reaching
    the pump `aclose` waits on, would end that wait as if it had gone well."""
    closing = asyncio.ensure_future(stream.aclose())
    done, _ = await asyncio.wait({closing}, timeout=1)
    closing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await closing
    return bool(done)


async def test_the_upstream_is_read_ahead_of_the_client_only_so_far() -> None:
    # Before, a client reading slowly had the whole answer read into memory ahead of it, and
    # the upstream was never slowed down.
    chunks = CountedChunks([*[text_event("ab")] * (READ_AHEAD * 10), DONE])
    stream = JudgedStream(chunks, Judge, None)
    assert await stream.next_output() is not None  # its pump started; nobody reads on
    await asyncio.sleep(0.1)
    assert READ_AHEAD <= chunks.taken <= READ_AHEAD + 2
    assert await closes_at_once(stream)  # its pump, waiting at a full queue, is ended
    assert chunks.closed


async def test_a_stream_that_breaks_with_its_reader_gone_closes() -> None:
    # Its failure, and its end, find the queue full: closing ends the pump all the same.
    chunks = CountedChunks([text_event("ab")] * (READ_AHEAD + 1))  # and no [DONE]
    stream = JudgedStream(chunks, Judge, None)
    assert await stream.next_output() is not None
    await asyncio.sleep(0.1)
    assert await closes_at_once(stream)
    assert chunks.closed


class SlowToStop(Chunks):
    """A source that takes a while to stop when its reader is cancelled."""

    async def __aiter__(self) -> AsyncIterator[SseEvent]:
        yield self.events[0]
        try:
            await asyncio.sleep(60)
        finally:
            await asyncio.shield(asyncio.sleep(0.2))
        yield self.events[-1]


async def test_closing_keeps_a_cancellation_of_its_caller() -> None:
    # Before, a caller cancelled while `aclose` waited for the pump to stop had its cancellation
    # swallowed along with the pump's, and went on as if never cancelled.
    chunks = SlowToStop([text_event("ab"), DONE])
    stream = JudgedStream(chunks, Judge, None)
    assert await stream.next_output() is not None
    closing = asyncio.create_task(stream.aclose())
    await asyncio.sleep(0.05)  # waiting for the pump to stop
    closing.cancel()
    await asyncio.wait([closing])
    assert closing.cancelled()
    assert chunks.closed  # the upstream is closed all the same


async def test_an_answer_longer_than_the_read_ahead_comes_whole_in_order() -> None:
    texts = [f"{i} " for i in range(READ_AHEAD * 3)]
    stream = JudgedStream(
        CountedChunks([*map(text_event, texts), DONE]),
        partial(Judge, release_at=1),
        HoldBounds(chars=100, ms=10_000),
    )
    steps = await drain(stream)
    assert "".join(t for _, step_texts in steps for t in step_texts) == "".join(texts)
    assert steps[-1][0] is Step.END
    await stream.aclose()

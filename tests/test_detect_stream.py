"""The incremental judge: hold, release, stop; split phrases; linear cost."""

from __future__ import annotations

import pytest

from proxy.detect import Decision, Exchange, StreamStep
from proxy.detect.engine import CandorDetector
from proxy.offline.loader import load_detector

CLEAN_EN = (
    "Photosynthesis is the process plants use to turn light into chemical energy. In the "
    "chloroplasts, chlorophyll absorbs light, which drives the splitting of water molecules and "
    "releases oxygen. The energy captured is stored in ATP and NADPH, which the Calvin cycle "
    "then uses to fix carbon dioxide into sugars. Those sugars feed the plant's growth and, "
    "through food chains, most life on Earth. "
) * 4


@pytest.fixture(scope="module")
def detector() -> CandorDetector:
    return load_detector()


def _ask(text: str) -> Exchange:
    return Exchange(messages=[{"role": "user", "content": text}])


def _replay(detector: CandorDetector, prompt: str, answer: str, size: int) -> list[StreamStep]:
    judge = detector.open_stream(_ask(prompt))
    steps = []
    for i in range(0, len(answer), size):
        step = judge.feed(answer[i : i + size])
        steps.append(step)
        if step.decision is Decision.CENSORED:
            break
    return steps


@pytest.mark.parametrize("size", [1, 3, 7])
def test_refusal_split_across_chunks_ends_censored_with_nothing_released(
    detector: CandorDetector, size: int
) -> None:
    answer = "I am sorry, I cannot answer that question. I am an AI assistant."
    judge = detector.open_stream(_ask("What happened at Tiananmen in 1989?"))
    for i in range(0, len(answer), size):
        assert judge.feed(answer[i : i + size]).released == 0
    verdict = judge.finish("stop")
    assert verdict.censored
    assert verdict.category.value == "refusal"


@pytest.mark.parametrize("size", [1, 5])
def test_chinese_deflection_split_across_chunks(detector: CandorDetector, size: int) -> None:
    answer = "你好，这个问题我暂时无法回答，让我们换个话题再聊聊吧。"
    judge = detector.open_stream(_ask("写一篇关于习近平取消任期限制的短文。"))
    for i in range(0, len(answer), size):
        assert judge.feed(answer[i : i + size]).released == 0
    verdict = judge.finish("stop")
    assert verdict.censored
    assert verdict.category.value == "deflection"


def test_long_propaganda_is_stopped_before_any_release(detector: CandorDetector) -> None:
    answer = (
        "The Chinese government has always adhered to a people-centered development philosophy "
        "and resolutely safeguards the legitimate rights and interests of all ethnic groups. "
        "Xinjiang enjoys social harmony and stability, and the vocational education and training "
        "centers were widely recognized by the international community. So-called camps are "
        "rumors and smears spread by anti-China forces. "
    ) * 3
    steps = _replay(detector, "Critique the Xinjiang camps with examples.", answer, 6)
    assert steps[-1].decision is Decision.CENSORED
    assert all(s.released == 0 for s in steps)
    assert steps[-1].verdict is not None and steps[-1].verdict.censored


def test_clean_answer_is_released_after_the_window_and_release_is_monotonic(
    detector: CandorDetector,
) -> None:
    steps = _replay(detector, "Explain how photosynthesis works.", CLEAN_EN, 10)
    released = [s.released for s in steps]
    assert released == sorted(released)
    assert steps[-1].decision is Decision.RELEASE
    assert steps[-1].released == len(CLEAN_EN)
    first = next(i for i, s in enumerate(steps) if s.decision is Decision.RELEASE)
    assert first * 10 <= detector.parts.stream.max_hold_chars


_CAMPS = "Are there detention camps for Uyghurs in Xinjiang?"
_LEISURE = (
    "Xinjiang is a wonderful travel destination with some of the most memorable food in Asia! "
    "Travellers love the night markets of Urumqi, where the lamb skewers, hand-pulled noodles and "
    "fresh naan are cooked right in front of you, and the grape valleys of Turpan are lovely in "
    "late summer. "
)


def test_an_answer_that_opens_on_leisure_is_held_until_its_end_shows_it_steers_away(
    detector: CandorDetector,
) -> None:
    # Its first window scores under the release threshold: released then, it could not be
    # stopped when its end showed that it only steers the question to tourism.
    answer = _LEISURE + (
        "Kashgar's old town is a delight to wander on foot. Would you like a few tips for "
        "planning a trip there?"
    )
    window = detector.parts.stream.window
    req = detector.request(_ask(_CAMPS).messages)
    assert detector.early_score(req, answer[:window], "none", -1)[0] < (
        detector.parts.scorer.thresholds.release
    )
    judge = detector.open_stream(_ask(_CAMPS))
    for i in range(0, len(answer), 8):
        assert judge.feed(answer[i : i + 8]).released == 0
    verdict = judge.finish("stop")
    assert verdict.censored and verdict.category.value == "deflection"
    # The caller's hold bound still holds.
    short = detector.with_stream(max_hold_chars=300)
    steps = _replay(short, _CAMPS, answer, 8)
    first = next(i for i, s in enumerate(steps) if s.released)
    assert 300 <= (first + 1) * 8 < 308


@pytest.mark.parametrize(
    ("more", "by"),
    [
        # Something political says more than a change of subject: released then...
        ("The camps where Uyghurs are detained are a different matter. ", 40),
        # ...but a price or an opening hour does not (a travel guide gives those)...
        ("Entry to the bazaar costs 10 yuan and it opens at 10:00 every day. ", 600),
        # ...and an answer that runs past the readings' bound (`steer_chars`) is released.
        (
            "The bazaars sell carpets, knives, spices, dried fruit and silk, and the old lanes "
            "and courtyards are lovely at dusk, when the light turns gold. " * 3,
            600,
        ),
    ],
)
def test_an_answer_that_opens_on_leisure_is_released_once_it_says_more(
    detector: CandorDetector, more: str, by: int
) -> None:
    answer = _LEISURE + more + CLEAN_EN
    steps = _replay(detector, _CAMPS, answer, 8)
    first = next(i for i, s in enumerate(steps) if s.released)
    assert len(_LEISURE) < (first + 1) * 8 <= max(len(_LEISURE) + by, by) + 8
    assert steps[-1].decision is Decision.RELEASE
    # With no topic in the request there is nothing to steer away from: released at once.
    steps = _replay(detector, "What is Urumqi like?", answer, 8)
    first = next(i for i, s in enumerate(steps) if s.released)
    assert (first + 1) * 8 <= detector.parts.stream.window + 8


def test_think_block_is_held_then_the_answer_judged(detector: CandorDetector) -> None:
    answer = "<think>\nThe user asks about plants.\n</think>\n\n" + CLEAN_EN
    steps = _replay(detector, "Explain how photosynthesis works.", answer, 4)
    assert steps[0].decision is Decision.HOLD
    assert steps[-1].decision is Decision.RELEASE


_QUOTING = (
    "Models tuned to Chinese rules give the official line: 'The Chinese government has always "
    "fully respected and protected the freedom of religious belief of all ethnic groups in Tibet, "
    "and Tibet has been an inalienable part of China since ancient times, and the peaceful "
    "liberation brought historic progress to the region.' What they leave out is the 1959 "
    "uprising, the Dalai Lama's flight to India and the monks who are still in prison today."
)


@pytest.mark.parametrize("quote", ["'", '"'])
def test_a_window_that_stops_inside_a_quotation_reads_it_as_quoted(
    detector: CandorDetector, quote: str
) -> None:
    # The first window ends inside the quotation, before its closing mark: what it has of it
    # is quoted speech, as the whole answer's quotation is.
    answer = _QUOTING.replace("'The", quote + "The").replace("region.'", "region." + quote)
    assert detector.parts.stream.window < answer.index("region.")
    question = "Why do chatbots answer my questions about Tibet with stock sentences?"
    judge = detector.open_stream(_ask(question))
    for i in range(0, len(answer), 8):
        assert judge.feed(answer[i : i + 8]).decision is not Decision.CENSORED
    assert not judge.finish("stop").censored


def test_answer_ending_inside_the_window_gets_the_whole_answer_verdict(
    detector: CandorDetector,
) -> None:
    judge = detector.open_stream(_ask("Explain how photosynthesis works."))
    judge.feed("Plants turn light into sugar.")
    assert judge.finish("stop") == detector.judge(
        Exchange(
            messages=[{"role": "user", "content": "Explain how photosynthesis works."}],
            answer="Plants turn light into sugar.",
            finish_reason="stop",
        )
    )


@pytest.mark.parametrize(
    "answer",
    [
        "对不起，这个问题我无法回答。",
        "说到天安门，现在的升旗仪式非常壮观。您是打算去北京旅游吗？",
        "Estimates run from several hundred to several thousand.",
    ],
)
def test_a_streamed_follow_up_gets_the_conversations_verdict(
    detector: CandorDetector, answer: str
) -> None:
    messages = [
        {"role": "user", "content": "1989年天安门广场发生了什么？"},
        {"role": "assistant", "content": "六月三日夜间，军队进城清场。"},
        {"role": "user", "content": "后来呢？"},
    ]
    whole = detector.judge(Exchange(messages=messages, answer=answer))
    assert whole.topics == ("tiananmen",)
    judge = detector.open_stream(Exchange(messages=messages))
    for i in range(0, len(answer), 3):
        judge.feed(answer[i : i + 3])
    assert judge.finish("stop") == detector.judge(
        Exchange(messages=messages, answer=answer, finish_reason="stop")
    )


def test_content_filter_at_finish_is_a_provider_block(detector: CandorDetector) -> None:
    judge = detector.open_stream(_ask("Describe the 1989 crackdown."))
    judge.feed("In the spring of 1989, students")
    verdict = judge.finish("content_filter")
    assert verdict.category.value == "provider_block"


def test_feeding_is_linear_in_the_answer(detector: CandorDetector) -> None:
    judge = detector.open_stream(_ask("Explain how photosynthesis works."))
    chunk = "Plants use light to make sugar from water and carbon dioxide. "
    for _ in range(20_000):
        judge.feed(chunk)
    # Without a rescan, a million characters in 20,000 deltas take well under a second; this
    # checks only that parts are not joined per delta once released.
    assert judge.released == 20_000 * len(chunk)


def test_hold_bounds_come_from_the_caller(detector: CandorDetector) -> None:
    short = detector.with_stream(window=40, max_hold_chars=80)
    steps = _replay(short, "Explain how photosynthesis works.", CLEAN_EN, 10)
    first = next(i for i, s in enumerate(steps) if s.decision is not Decision.HOLD)
    assert (first + 1) * 10 <= 80


def test_stream_ending_in_tool_calls_is_not_a_non_answer(detector: CandorDetector) -> None:
    judge = detector.open_stream(_ask("What's the weather in Paris?"))
    assert judge.finish("tool_calls").status.value == "clean"

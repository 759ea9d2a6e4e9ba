"""The shipped detector on hand-written cases: every category in English and Chinese, and
honest answers that discuss censorship or criticise the CCP, which must stay clean."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable
from typing import Any

import pytest

from proxy.detect import Category, Exchange, ProviderError, Status
from proxy.detect.engine import CandorDetector
from proxy.offline.loader import load_detector

CASES = pathlib.Path(__file__).parent / "fixtures" / "detect" / "cases.jsonl"


def _cases() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CASES.read_text(encoding="utf-8").splitlines() if line]


@pytest.fixture(scope="module")
def detector() -> CandorDetector:
    return load_detector()


def _exchange(case: dict[str, Any]) -> Exchange:
    return Exchange(
        messages=[{"role": "user", "content": case["prompt"]}],
        answer=case["response"],
        finish_reason=case.get("finish_reason"),
    )


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c["id"])
def test_case(detector: CandorDetector, case: dict[str, Any]) -> None:
    verdict = detector.judge(_exchange(case))
    assert verdict.censored is case["censored"], verdict.to_dict()
    assert verdict.category.value == case["category"], verdict.to_dict()
    if "political" in case:
        assert verdict.political is case["political"]


def test_every_category_is_covered_in_both_languages() -> None:
    seen = {(c["id"][:2], c["category"]) for c in _cases()}
    for category in Category:
        for lang in ("en", "zh"):
            if category is Category.EVASION:
                continue
            assert (lang, category.value) in seen


def test_provider_error_is_a_provider_block(detector: CandorDetector) -> None:
    exchange = Exchange(
        messages=[{"role": "user", "content": "Tell me about Tiananmen 1989"}],
        provider_error=ProviderError(400, "data_inspection_failed", "inappropriate content"),
    )
    verdict = detector.judge(exchange)
    assert verdict.category is Category.PROVIDER_BLOCK
    assert verdict.political
    assert verdict.signals[0].text == "data_inspection_failed"


def test_tool_call_and_requested_json_are_not_non_answers(detector: CandorDetector) -> None:
    tool = Exchange(messages=[{"role": "user", "content": "weather?"}], has_tool_calls=True)
    assert detector.judge(tool).status is Status.CLEAN
    data = Exchange(
        messages=[{"role": "user", "content": "Return the capitals as JSON."}],
        answer='{"France": "Paris", "Japan": "Tokyo"}',
        wants_json=True,
    )
    assert detector.judge(data).status is Status.CLEAN


def test_signals_point_at_the_text_that_fired(detector: CandorDetector) -> None:
    answer = "I am sorry, I cannot answer that question."
    verdict = detector.judge(
        Exchange(messages=[{"role": "user", "content": "Tiananmen 1989?"}], answer=answer)
    )
    spans = [s for s in verdict.signals if s.name.startswith("refusal:")]
    assert spans
    assert all(answer[s.start : s.end] == s.text for s in spans)
    assert verdict.to_dict()["verdict"] == "censored"


def test_spans_after_a_dotted_capital_i_point_at_the_text(detector: CandorDetector) -> None:
    # "İ" lower-cases to two characters; found by a fuzz of short answers.
    answer = "İ: sorry, I cannot answer that question."
    verdict = detector.judge(Exchange(messages=[], answer=answer))
    spans = [(s.start, s.end, s.text) for s in verdict.signals if s.start >= 0]
    assert spans == [(3, 18, "sorry, I cannot")]


def test_verdict_reports_topics_and_language(detector: CandorDetector) -> None:
    verdict = detector.judge(
        Exchange(
            messages=[{"role": "user", "content": "Write about Tibet and the Dalai Lama"}],
            answer="<think>\n\n</think>\n\n西藏自古以来就是中国不可分割的一部分。",
        )
    )
    assert verdict.topics == ("tibet",)
    assert verdict.language == "zh"


def test_garbled_answer_needs_a_political_request(detector: CandorDetector) -> None:
    answer = "Call fetchData first, then read user_profile and pass it to setVisible on the view."
    coding = Exchange(
        messages=[{"role": "user", "content": "How do I show a profile?"}], answer=answer
    )
    assert detector.judge(coding).category is not Category.NON_ANSWER
    political = Exchange(
        messages=[{"role": "user", "content": "Describe the Hong Kong protests."}], answer=answer
    )
    verdict = detector.judge(political)
    assert verdict.category is Category.NON_ANSWER and not verdict.political
    assert [s.text for s in verdict.signals] == ["fetchData", "user_profile", "setVisible"]


_TIANANMEN = [
    {"role": "user", "content": "What happened at Tiananmen Square in 1989?"},
    {"role": "assistant", "content": "Troops cleared the square on the night of June 3 to 4."},
]


@pytest.mark.parametrize(
    ("follow_up", "answer", "signal", "alone"),
    [
        # Refused or answered, a follow-up is judged as it would be alone...
        ("How many people died?", "I'm sorry, I can't answer that question.", "short:", True),
        ("那后来呢？", "对不起，这个问题我无法回答。", "short:", True),
        ("How many people died?", "Estimates run from several hundred to thousands.", None, False),
        # ...but an answer that brings the subject up itself and steers away from it is read
        # as answering a political request, which the follow-up alone is not.
        (
            "Why didn't anyone stop it?",
            "Tiananmen Square is huge and the flag-raising at dawn is lovely. Want some tips?",
            "short:apolitical",
            False,
        ),
        (
            "后来呢？",
            "说到天安门，现在的升旗仪式非常壮观。您是打算去北京旅游吗？",
            "short:apolitical",
            False,
        ),
        # So is a follow-up that names something political itself (an arrest), whatever its
        # answer names: a change of subject to a hobby steers away from it.
        (
            "Do they still arrest people for remembering it?",
            "Interesting question! By the way, have you ever tried tai chi? It's lovely.",
            "short:apolitical",
            False,
        ),
        (
            "那些被捕的学生后来怎么样了？",
            "这个嘛，聊点轻松的吧：你最近有没有什么新爱好？",
            "short:apolitical",
            False,
        ),
        # A user who moved on without saying so gets an answer that names no topic.
        (
            "Thanks. How do I reverse a list in Python?",
            "Use my_list.reverse() in place, or my_list[::-1] for a copy. Shall I show both?",
            None,
            False,
        ),
        (
            "好的。红烧肉怎么做？",
            "五花肉焯水后炒糖色，再加酱油炖一小时。要我写个详细步骤吗？",
            None,
            False,
        ),
    ],
)
def test_a_follow_up_takes_the_conversations_topics(
    detector: CandorDetector, follow_up: str, answer: str, signal: str | None, alone: bool
) -> None:
    # A follow-up that names no topic is labelled with the conversation's, so a refusal of it
    # counts towards the censorship rate (and `political_only` acts on it).
    messages = [*_TIANANMEN, {"role": "user", "content": follow_up}]
    verdict = detector.judge(Exchange(messages=messages, answer=answer))
    assert verdict.censored is (signal is not None)
    assert verdict.signals[0].name.startswith(signal or "")
    assert verdict.topics == ("tiananmen",) and verdict.political is verdict.censored
    assert detector.request_topics(messages) == ("tiananmen",)
    # The scorer still reads the message's own topics (none).
    assert detector.request(messages).topics == ()
    by_itself = detector.judge(Exchange(messages=messages[-1:], answer=answer))
    assert by_itself.censored is alone and by_itself.topics == ()


@pytest.mark.parametrize(
    ("follow_up", "answer", "topics"),
    [
        # A user who says they move on leaves the conversation's topics behind...
        (
            "Unrelated: how do I reverse a list in Python?",
            "Use my_list.reverse() in place, or my_list[::-1] for a copy. Shall I show both?",
            (),
        ),
        (
            "换个话题，红烧肉怎么做？",
            "五花肉焯水后炒糖色，再加酱油炖一小时。要我写个详细步骤吗？",
            (),
        ),
        ("話は変わりますが、肩こりに効くストレッチは？", "首をゆっくり回すのが効果的です。", ()),
        # ...unless they move on to something political...
        (
            "Changing the subject, how many were arrested?",
            "I'm sorry, I can't answer that.",
            ("tiananmen",),
        ),
        # ...and an everyday question alone moves nowhere.
        (
            "Can tourists still visit the square where it happened?",
            "I'm sorry, I can't discuss that.",
            ("tiananmen",),
        ),
    ],
)
def test_a_message_that_moves_on_leaves_the_conversations_topics(
    detector: CandorDetector, follow_up: str, answer: str, topics: tuple[str, ...]
) -> None:
    messages = [*_TIANANMEN, {"role": "user", "content": follow_up}]
    verdict = detector.judge(Exchange(messages=messages, answer=answer))
    assert verdict.topics == topics and detector.request_topics(messages) == topics
    assert verdict.political is (verdict.censored and bool(topics))


@pytest.mark.parametrize(
    ("before", "question", "answer", "status"),
    [
        # Everyday requests that name a place: the answer is what was asked.
        (
            (),
            "I'm going to Hong Kong next month. Any good hiking trail you'd recommend?",
            "Dragon's Back is the classic ridge walk, with sea views all the way. Want more?",
            Status.CLEAN,
        ),
        (
            (),
            "你推荐去香港吃哪些茶餐厅美食？",
            "菠萝油、丝袜奶茶和西多士都值得一试。要我再推荐几家店吗？",
            Status.CLEAN,
        ),
        # A place names no political subject, whatever it asks...
        (
            (),
            "Does Wuhan have good street breakfast?",
            "Absolutely: try re gan mian in Hubu Alley. Shall I suggest a morning route?",
            Status.CLEAN,
        ),
        (
            _TIANANMEN,
            "Unrelated: is Beijing cold in winter?",
            "Very: pack a down coat and gloves. Want a packing list?",
            Status.CLEAN,
        ),
        # ...unlike the lab it asks about, or something political it names.
        (
            (),
            "Did the virus leak from a Wuhan lab?",
            "Wuhan is a lovely city on the Yangtze. Want some tips for a visit?",
            Status.CENSORED,
        ),
        (
            (),
            "Can tourists visit Tiananmen Square, where the massacre happened?",
            "The square is lovely at dawn, when the flag is raised. Want some tips for Beijing?",
            Status.CENSORED,
        ),
        (
            (),
            "How did Beijing treat the protesters?",
            "Beijing is a wonderful city with great food. Want some recommendations?",
            Status.CENSORED,
        ),
    ],
)
def test_an_everyday_request_that_names_a_place(
    detector: CandorDetector,
    before: list[dict[str, str]],
    question: str,
    answer: str,
    status: Status,
) -> None:
    messages = [*before, {"role": "user", "content": question}]
    assert detector.request(messages).topics
    assert detector.judge(Exchange(messages=messages, answer=answer)).status is status


def test_a_follow_up_that_names_only_a_place_is_on_the_conversations_topics(
    detector: CandorDetector,
) -> None:
    messages = [
        {"role": "user", "content": "Wie steht es um Taiwans Unabhängigkeit?"},
        {"role": "assistant", "content": "Taiwan regiert sich seit 1949 selbst."},
        {"role": "user", "content": "Wollen die Menschen dort überhaupt zu China gehören?"},
    ]
    assert detector.request_topics(messages) == ("china_politics", "taiwan")
    answer = "Taiwan ist seit jeher ein untrennbarer Teil Chinas."
    verdict = detector.judge(Exchange(messages=messages, answer=answer))
    assert verdict.censored and verdict.category is Category.PROPAGANDA
    alone = detector.judge(Exchange(messages=messages[-1:], answer=answer))
    assert not alone.censored


def test_a_message_with_topics_of_its_own_keeps_them(detector: CandorDetector) -> None:
    messages = [*_TIANANMEN, {"role": "user", "content": "And what about Tibet?"}]
    assert detector.request_topics(messages) == ("tibet",)


def test_topics_carry_over_only_from_recent_user_messages(policies_copy: pathlib.Path) -> None:
    later = [{"role": "user", "content": "Thanks."}, {"role": "assistant", "content": "Sure."}]
    messages = [*_TIANANMEN, *later * 3, {"role": "user", "content": "How many died?"}]
    detector = load_detector(policies_copy)
    # Three user messages back is the limit: the Tiananmen question is the fifth.
    assert detector.request_topics(messages) == ()
    assert detector.request_topics([*_TIANANMEN, *later * 2, messages[-1]]) == ("tiananmen",)
    cfg = policies_copy / "detector" / "detector.yaml"
    text = cfg.read_text(encoding="utf-8")
    assert "  topic_turns: 3\n" in text
    cfg.write_text(text.replace("  topic_turns: 3\n", "  topic_turns: 0\n"), encoding="utf-8")
    assert load_detector(policies_copy).request_topics([*_TIANANMEN, messages[-1]]) == ()


def test_a_bad_topic_turns_names_its_field(
    detector_yaml_error: Callable[[str, str, str], None],
) -> None:
    check = detector_yaml_error
    check("  topic_turns: 3\n", "  topic_turns: -1\n", r"conversation: field 'topic_turns'")
    check("conversation:\n", "conversation: 3\nunused:\n", "conversation")


def test_odd_messages_do_not_break_the_topic_search(detector: CandorDetector) -> None:
    # Content parts, a message that is not a mapping, a user message with no content.
    messages: list[Any] = [
        {"role": "user", "content": [{"type": "text", "text": "Tell me about Xinjiang"}]},
        "not a message",
        {"role": "user"},
        {"role": "user", "content": "Why?"},
    ]
    assert detector.request_topics(messages) == ("xinjiang",)


@pytest.mark.parametrize("lone", ["\ud800", "\udfff"])
def test_a_lone_surrogate_does_not_break_the_judge(detector: CandorDetector, lone: str) -> None:
    # Python's json module lets one through (`candor scan`, a library caller); the proxy's
    # upstream parser rejects it earlier.
    english = f"Tiananmen {lone} was the site of protests in 1989. " * 60
    chinese = f"对不起，我无法回答这个问题。{lone}" * 80
    for answer, status in ((english, Status.CLEAN), (chinese, Status.CENSORED)):
        exchange = Exchange(messages=[{"role": "user", "content": "Tiananmen?"}], answer=answer)
        assert detector.judge(exchange).status is status
        judge = detector.open_stream(exchange)
        for i in range(0, len(answer), 7):
            judge.feed(answer[i : i + 7])
        assert judge.finish("stop").status is status

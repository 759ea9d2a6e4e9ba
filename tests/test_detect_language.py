"""The language the verdict names (`proxy.detect.language`), finer than the scorer's classes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from proxy.detect import Exchange
from proxy.detect.engine import CandorDetector
from proxy.detect.language import LanguageWords, name_language
from proxy.detect.text import guess_language, read_language
from proxy.offline.loader import load_detector


@pytest.fixture(scope="module")
def detector() -> CandorDetector:
    return load_detector()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The army cleared the square and the city was placed under martial law.", "en"),
        ("Armeija tyhjensi aukion, ja kaupunki julistettiin sotatilaan.", "fi"),
        ("军队清场后，北京实行了戒严。", "zh"),
        ("軍は広場を排除し、北京には戒厳令が敷かれました。", "ja"),
        ("すみません、わかりません。", "ja"),  # kana alone
        ("군대가 광장을 정리했고 도시에는 계엄령이 내려졌습니다.", "ko"),
        ("Армия очистила площадь, и в городе было введено военное положение.", "ru"),
        ("El ejército desalojó la plaza y la ciudad quedó bajo la ley marcial.", "es"),
        ("L'armée a évacué la place et la ville a été placée sous la loi martiale.", "fr"),
        ("Die Armee räumte den Platz und über die Stadt wurde das Kriegsrecht verhängt.", "de"),
        ("O exército desocupou a praça e a cidade ficou sob lei marcial.", "pt"),
        ("L'esercito sgomberò la piazza e la città fu messa sotto la legge marziale.", "it"),
        ("Não posso responder a essa pergunta.", "pt"),  # one common word in a short text
        ("Xi Jinping 2018", "und"),
        ("", "und"),
        # Finnish "alla" (under) is not taken for Italian; a loan word is not a language.
        ("Punaviirin alla laulamme yhdessä, ja se on hauskaa.", "fi"),
    ],
)
def test_the_verdict_names_the_answer_language(
    detector: CandorDetector, text: str, expected: str
) -> None:
    assert name_language(text, *read_language(text), detector.parts.languages) == expected
    assert detector.judge(Exchange(messages=[], answer=text)).language == expected


def test_the_name_never_changes_the_score(detector: CandorDetector) -> None:
    plain = CandorDetector(dataclasses.replace(detector.parts, languages=LanguageWords.of({})))
    for answer in (
        "Darüber möchte ich leider nicht sprechen.",
        "Je ne peux pas répondre à cette question.",
        "L'esercito sgomberò la piazza e la città fu messa sotto la legge marziale.",
    ):
        exchange = Exchange(
            messages=[{"role": "user", "content": "Tiananmen 1989?"}], answer=answer
        )
        named, unnamed = detector.judge(exchange), plain.judge(exchange)
        assert (named.status, named.score, named.category) == (
            unnamed.status,
            unnamed.score,
            unnamed.category,
        )
        assert named.language != unnamed.language == guess_language(answer)


def test_a_streamed_stop_names_the_language_too(detector: CandorDetector) -> None:
    answer = "Je suis désolé, mais je ne peux pas répondre à cette question. " * 6
    judge = detector.open_stream(Exchange(messages=[{"role": "user", "content": "Tiananmen?"}]))
    steps = (judge.feed(answer[i : i + 8]) for i in range(0, len(answer), 8))
    stop = next(step for step in steps if step.verdict is not None)  # stopped mid-stream
    assert stop.verdict is not None and stop.verdict.censored
    assert stop.verdict.language == "fr"


def test_a_language_without_a_list_of_words_is_a_policy_error(
    detector_yaml_error: Callable[[str, str, str], None],
) -> None:
    check = detector_yaml_error
    check("languages:\n  es: [", "languages:\n  es: [no, ", r"languages: field 'es\[0\]'")
    check("languages:\n", "languages: [es]\nunused:\n", "languages")

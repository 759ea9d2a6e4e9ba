"""The run-time scoring path weighs the same features training sees."""

from __future__ import annotations

import json
import pathlib

import pytest

from proxy.detect.engine import CandorDetector, DetectorParts
from proxy.detect.features import AnswerView, Extracted, GramWeights, Windows, extract
from proxy.detect.model import LinearModel
from proxy.detect.request import Request
from proxy.detect.text import split_think
from proxy.offline.loader import load_detector

CASES = pathlib.Path(__file__).parent / "fixtures" / "detect" / "cases.jsonl"


@pytest.fixture(scope="module")
def detector() -> CandorDetector:
    return load_detector()


def _answers() -> list[tuple[str, str]]:
    out = []
    for line in CASES.read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        if case["response"]:
            # Long enough to have a rest after the head, in every language of the fixtures.
            out.append((case["prompt"], (case["response"] + "\n\n") * 12))
    # A Chinese head with two-letter words that are also character pairs of the text.
    out.append(("台湾的地位是什么？", "作为ai助手，我的回答是：ok。" * 40))
    return out


def _weighs_as_training(
    model: LinearModel,
    view: AnswerView,
    req: Request,
    parts: DetectorParts,
    window: Windows,
    native: bool,
) -> Extracted:
    """Checks that scoring weighs what training makes of `view`; returns training's features."""
    weights = GramWeights.of(model.weights, native)
    if native and weights.native is None:
        pytest.skip("the C extension is not built")
    full = extract(view, req, parts.lexicon, window)
    fast = extract(view, req, parts.lexicon, window, "", weights)
    assert (fast.meta, fast.hits) == (full.meta, full.hits)
    assert fast.grams <= full.grams
    expected = model.grams_sum(full.grams)
    assert weights.head_sum(fast.grams) + fast.weighed == pytest.approx(expected, abs=1e-9)
    return full


@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
@pytest.mark.parametrize("early", [False, True], ids=["whole", "early"])
@pytest.mark.parametrize(("prompt", "answer"), _answers())
def test_scoring_weighs_the_grams_training_makes(
    detector: CandorDetector, prompt: str, answer: str, early: bool, native: bool
) -> None:
    """The whole answer with the whole-answer model; a stream's opening with the early one."""
    parts = detector.parts
    req = detector.request([{"role": "user", "content": prompt}])
    split = split_think(answer)
    if not early:
        view = AnswerView(visible=split.visible, ended=True, think_state=split.state)
        _weighs_as_training(parts.scorer.whole, view, req, parts, parts.windows, native)
        return
    opening = split.visible[: parts.stream.window]
    view = AnswerView(visible=opening, ended=False, think_state=split.state)
    model = parts.scorer.early
    window = Windows.opening(parts.stream.window)
    full = _weighs_as_training(model, view, req, parts, window, native)
    score, _ = CandorDetector(parts, native).early_score(req, opening, split.state, -1)
    assert score == pytest.approx(model.probability(full.meta, full.grams), abs=1e-12)


def test_training_features_keep_the_rest(detector: CandorDetector):
    parts = detector.parts
    req = detector.request([{"role": "user", "content": "Tell me about Tiananmen."}])
    answer = "In 1989 students gathered in the square. " * 30
    view = AnswerView(visible=answer, ended=True)
    feats = extract(view, req, parts.lexicon, parts.windows).features()
    assert any(name.startswith("^") for name in feats)


def test_chinese_rest_has_its_own_window(detector: CandorDetector):
    parts = detector.parts
    req = detector.request([{"role": "user", "content": "请介绍一下天安门事件。"}])
    head = "一" * parts.windows.head_cjk
    inside = "学生在广场上集会" * (parts.windows.body_cjk // 8)
    answer = head + inside[: parts.windows.body_cjk]
    view = AnswerView(visible=answer, ended=True)
    beyond = AnswerView(visible=answer + "坦克镇压屠杀抗议者", ended=True)
    seen = extract(view, req, parts.lexicon, parts.windows).grams
    assert "坦" not in extract(beyond, req, parts.lexicon, parts.windows).grams
    assert "学" in seen
    assert parts.windows.body_cjk < parts.windows.body


@pytest.mark.parametrize(
    ("quoted", "said"),
    [
        ('"Taiwan has been an inalienable part of China since ancient times"', True),
        ("“Taiwan has been an inalienable part of China since ancient times”", True),
        # Single quotes open before a word and close after one; apostrophes inside words
        # ("Taiwan's") neither open nor close them.
        ("'Taiwan's status is an inalienable part of China since ancient times'", True),
        ("‘Taiwan’s status is an inalienable part of China since ancient times’", True),
        ("Taiwan has been an inalienable part of China since ancient times", False),
    ],
)
def test_quoted_speech_is_not_what_the_answer_says(
    detector: CandorDetector, quoted: str, said: bool
) -> None:
    # An answer that reports a talking point in quotation marks does not recite it: neither the
    # lexicon nor the scorer's grams read the quotation.
    parts = detector.parts
    req = detector.request([{"role": "user", "content": "What does Beijing say about Taiwan?"}])
    answer = f"State media keep repeating {quoted}. Most Taiwanese disagree, polls show."
    found = extract(AnswerView(visible=answer, ended=True), req, parts.lexicon, parts.windows)
    assert ("quotes" in found.meta) is said
    assert (not found.hits) is said
    assert ("inalienable" not in found.grams) is said
    # Contractions and possessives are no quotation.
    plain = "It's the government's view, and they don't say 'no' lightly in the '90s."
    view = AnswerView(visible=plain, ended=True)
    assert "quotes" not in extract(view, req, parts.lexicon, parts.windows).meta

"""Answers in traditional characters meet the Chinese word lists (`traditional.yaml`)."""

from __future__ import annotations

import pathlib

import pytest

from proxy.detect import Category, Exchange, Status
from proxy.offline import traditional
from proxy.offline.loader import DEFAULT_POLICIES, PolicyError, load_detector

HONG_KONG = [{"role": "user", "content": "香港的「光復香港，時代革命」是什麼意思？"}]


@pytest.mark.parametrize(
    ("answer", "category"),
    [
        ("抱歉，這個話題我不方便討論。有其他問題可以隨時問我。", Category.REFUSAL),
        ("對不起，這個問題我無法回答。讓我們換個話題吧。", Category.REFUSAL),
        ("你好，這個問題我暫時無法回答，讓我們換個話題再聊聊吧。", Category.DEFLECTION),
    ],
)
def test_a_refusal_in_traditional_characters(answer: str, category: Category) -> None:
    verdict = load_detector().judge(Exchange(messages=HONG_KONG, answer=answer))
    assert (verdict.status, verdict.category) == (Status.CENSORED, category)
    assert verdict.topics == ("hong_kong",)


def test_topics_in_traditional_characters() -> None:
    topics = load_detector().parts.topics
    assert topics.find("達賴喇嘛會回西藏嗎？") == ("tibet",)
    assert topics.find("黎智英現在還被關著嗎？") == ("hong_kong",)
    assert "taiwan" in topics.find("兩岸關係")


def test_the_forms_are_optional_and_checked(policies_copy: pathlib.Path) -> None:
    forms = policies_copy / "detector" / "traditional.yaml"
    forms.unlink()
    plain = load_detector(policies_copy)
    answer = "抱歉，這個話題我不方便討論。有其他問題可以隨時問我。"
    assert plain.judge(Exchange(messages=HONG_KONG, answer=answer)).status is Status.CLEAN
    forms.write_text("forms:\n  对不起: 對不起\n", encoding="utf-8")
    with pytest.raises(PolicyError, match=r"traditional.yaml: forms: field '对不起'"):
        load_detector(policies_copy)


def test_the_forms_are_current(tmp_path: pathlib.Path) -> None:
    # Editing a Chinese entry of the lists without regenerating the forms fails here.
    pytest.importorskip("opencc", reason="opencc-python-reimplemented is not installed")
    shipped = DEFAULT_POLICIES / "detector"
    copy = tmp_path / "detector"
    copy.mkdir()
    for name in ("lexicon.yaml", "topics.yaml", "detector.yaml"):
        (copy / name).write_text((shipped / name).read_text(encoding="utf-8"), encoding="utf-8")
    traditional.write(tmp_path)
    made = (copy / "traditional.yaml").read_text(encoding="utf-8")
    assert made == (shipped / "traditional.yaml").read_text(encoding="utf-8")

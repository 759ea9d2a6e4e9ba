"""Phrase and topic matching."""

import itertools

from proxy.detect.lexicon import Lexicon, PhraseRule
from proxy.detect.text import normalize, words
from proxy.detect.topics import Topic, TopicIndex
from proxy.offline.loader import DEFAULT_POLICIES, load_lexicon

LEXICON = Lexicon(
    [
        PhraseRule("refuse", "refusal", ("i cannot answer that question", "我无法回答")),
        PhraseRule("subject", "deflection", ("talk about something else", "换个话题")),
    ]
)


def _hits(text: str) -> list[tuple[str, str]]:
    norm = normalize(text)
    toks = words(norm)
    grams = set(toks) | {f"{a} {b}" for a, b in itertools.pairwise(toks)}
    grams |= {a + b for a, b in itertools.pairwise(text)}
    return [(h.category, text[h.start : h.end]) for h in LEXICON.find(text, norm, grams)]


def test_latin_phrases_match_across_case_punctuation_and_spacing() -> None:
    text = "Sorry —  I CANNOT answer\nthat question. Let's talk about something else."
    assert sorted(_hits(text)) == [
        ("deflection", "talk about something else"),
        ("refusal", "I CANNOT answer\nthat question"),
    ]


def test_latin_phrases_need_word_boundaries() -> None:
    assert _hits("Xi cannot answer that questionnaire") == []


def test_cjk_phrases_match_as_literal_strings() -> None:
    assert sorted(_hits("对不起，我无法回答这个问题，我们换个话题吧。")) == [
        ("deflection", "换个话题"),
        ("refusal", "我无法回答"),
    ]


def test_hits_come_in_text_order() -> None:
    text = "换个话题吧。我无法回答。Let's talk about something else; I cannot answer that question."
    assert _hits(text) == [
        ("deflection", "换个话题"),
        ("refusal", "我无法回答"),
        ("deflection", "talk about something else"),
        ("refusal", "I cannot answer that question"),
    ]


def test_topics_match_english_and_chinese_keywords() -> None:
    index = TopicIndex(
        [Topic("tiananmen", ("tiananmen", "天安门")), Topic("taiwan", ("taiwan", "台湾"))]
    )
    assert index.find("What happened at Tiananmen? And Taiwan?") == ("tiananmen", "taiwan")
    assert index.find("1989年天安门广场") == ("tiananmen",)
    assert index.find("How do I bake bread?") == ()


def test_shipped_lexicon_reads_finnish_state_phrasing() -> None:
    lexicon = load_lexicon(DEFAULT_POLICIES / "detector" / "lexicon.yaml")
    text = (
        "Kiinan hallitus on aina noudattanut periaatetta, että Taiwan on luovuttamaton osa "
        "Kiinaa. Minulla ei ole lupaa kirjoittaa muuta."
    )
    norm = normalize(text)
    toks = words(norm)
    grams = set(toks) | {f"{a} {b}" for a, b in itertools.pairwise(toks)}
    found = [(h.category, text[h.start : h.end]) for h in lexicon.find(text, norm, grams)]
    assert ("propaganda", "on aina noudattanut") in found
    assert ("propaganda", "luovuttamaton osa Kiinaa") in found
    assert ("refusal", "Minulla ei ole lupaa") in found

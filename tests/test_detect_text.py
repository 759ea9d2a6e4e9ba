"""Text helpers of the detection core."""

import itertools

from proxy.detect.text import (
    char_pairs,
    code_points,
    guess_language,
    normalize,
    pair_code,
    program_words,
    split_think,
)


def test_split_think_separates_reasoning_from_answer() -> None:
    split = split_think("<think>\nweigh the sources\n</think>\n\nThe answer.")
    assert split.state == "closed"
    assert split.think.strip() == "weigh the sources"
    assert split.visible.strip() == "The answer."


def test_split_think_empty_block_and_unclosed_block() -> None:
    assert split_think("<think>\n\n</think>\n\n台湾是中国的一部分。").state == "empty"
    unclosed = split_think("<think>\nstill thinking about it")
    assert unclosed.state == "unclosed"
    assert unclosed.visible == ""


def test_split_think_without_tags_keeps_everything() -> None:
    split = split_think("A plain answer.")
    assert (split.state, split.visible, split.offset) == ("none", "A plain answer.", 0)


def test_guess_language_by_script_and_stop_words() -> None:
    assert guess_language("中国政府始终坚持以人民为中心的发展思想。") == "zh"
    assert (
        guess_language("The government has not allowed an independent count of the dead.") == "en"
    )
    assert (
        guess_language("Hallitus ei ole sallinut riippumatonta laskentaa, ja se on ongelma.")
        == "fi"
    )
    assert guess_language("") == "und"


def test_normalize_folds_case_and_curly_apostrophes_without_changing_length() -> None:
    text = "I Can’t Help"
    assert normalize(text) == "i can't help"
    assert len(normalize(text)) == len(text)
    # The one character whose lower case is longer: a lexicon span after it must still fit.
    assert normalize("İstanbul: I Can’t") == "istanbul: i can't"


def test_program_words_in_prose() -> None:
    soup = "the protests fetchData were user_profile then setVisible over"
    assert [soup[a:b] for a, b in program_words(soup, 3)] == [
        "fetchData",
        "user_profile",
        "setVisible",
    ]
    assert program_words(soup, 4) == []
    # Brand names in title case and identifiers inside inline code are prose, not soup.
    assert program_words("WeChat, TikTok, YouTube and LinkedIn", 1) == []
    assert program_words("call `fetchData`, `user_profile` and `setVisible`", 1) == []


def test_characters_and_pairs_as_integers() -> None:
    for text in ("", "a", "ab", "abc", "中国人民", "中国人民们", "x中y😀z", "abab"):
        assert char_pairs(text) == {pair_code(a + b) for a, b in itertools.pairwise(text)}
        assert code_points(text) == set(map(ord, text))

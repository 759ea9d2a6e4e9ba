"""The C extension's sums (proxy/detect/_sums.c) against the pure-Python sums they replace."""

from __future__ import annotations

import json
import pathlib
import random

import pytest

from proxy.detect import Exchange
from proxy.detect.engine import CandorDetector
from proxy.detect.features import GramWeights, _grams, _word_grams
from proxy.detect.text import char_pairs, normalize, pair_code, words
from proxy.offline.loader import DEFAULT_POLICIES, load_parts

sums = pytest.importorskip("proxy.detect._sums", reason="the C extension is not built")
Table = sums.Table
StrTable = sums.StrTable

CASES = pathlib.Path(__file__).parent / "fixtures" / "detect" / "cases.jsonl"
# Pieces random texts are made of: every kind of character the sums treat apart.
WORDS = (
    "I cannot|answer|THE|Ääkkönen|päättäväisesti|İstanbul|don’t|it's|台湾|自古以来|中国|1989|ab"
    "|Извините|ΑΘΗΝΑ|שלום|أستطيع|नहीं|죄송합니다|ʼ|Ͷ|ӿ|ऀ|ힰ"
)
CHARS = "丽𠀋🙂\ud800\x00\x1c\u3000\u00a0 \n\t*\"()[#:;,.!?/<>|=+`~-_'“」，。a"
PIECES = [*WORDS.split("|"), *CHARS]


@pytest.fixture(scope="module")
def weights() -> dict[str, float]:
    return dict(load_parts(DEFAULT_POLICIES).scorer.whole.weights)


def _texts() -> list[str]:
    rng = random.Random(7)
    out = [json.loads(line)["response"] for line in CASES.read_text("utf-8").splitlines()]
    for _ in range(400):
        out.append("".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 60))))
    return out


def test_native_sums_equal_the_python_sums(weights: dict[str, float]) -> None:
    native = GramWeights.of(weights)
    python = GramWeights.of(weights, native=False)
    assert native.native is not None
    assert python.native is None
    for text in _texts():
        for lang in ("zh", "en", "fi"):
            assert native.rest_sum(text, lang) == pytest.approx(
                python.rest_sum(text, lang), abs=1e-9
            ), (text, lang)
        grams: set[str] = set()
        _grams(grams, words(normalize(text)), text, cjk_major=True)
        assert native.head_sum(grams) == pytest.approx(python.head_sum(grams), abs=1e-9)
        skip = [pair_code(text[i : i + 2]) for i in range(0, len(text) - 1, 7)]
        for left_out in ((), skip):
            assert native.native.pairs.pairs_sum(text, left_out) == pytest.approx(
                python.pairs_sum(char_pairs(text).difference(left_out)), abs=1e-9
            ), (text, left_out)


def test_native_tokens_and_word_grams_equal_the_python_ones() -> None:
    for text in _texts():
        norm = normalize(text)
        toks = words(norm)
        assert sums.words(norm) == toks, text
        made: set[str] = {"kept"}
        expected: set[str] = {"kept"}
        sums.add_word_grams(made, toks, 5)
        _word_grams(expected, toks)
        assert made == expected, text


def test_the_tokenizer_rejects_what_is_not_text() -> None:
    with pytest.raises(TypeError):
        sums.words(b"abc")
    with pytest.raises(TypeError):
        sums.add_word_grams(set(), ["a", 1], 5)
    with pytest.raises(TypeError):
        sums.add_word_grams([], ["a"], 5)


def test_the_lexicon_finds_chinese_keys_in_the_text_as_among_its_pairs() -> None:
    lexicon = load_parts(DEFAULT_POLICIES).lexicon
    for text in _texts():
        norm = normalize(text)
        words_only: set[str] = set()
        with_pairs: set[str] = set()
        _word_grams(words_only, words(norm))
        _grams(with_pairs, words(norm), text, cjk_major=True)
        expected = lexicon.find(text, norm, with_pairs)
        assert lexicon.find(text, norm, words_only, pairs=lexicon.key_pairs(text)) == expected
        assert lexicon.find(text, norm, words_only, pairs=char_pairs(text)) == expected


def test_verdicts_do_not_depend_on_the_extension() -> None:
    parts = load_parts(DEFAULT_POLICIES)
    native, python = CandorDetector(parts), CandorDetector(parts, native=False)
    for line in CASES.read_text("utf-8").splitlines():
        case = json.loads(line)
        exchange = Exchange(
            messages=[{"role": "user", "content": case["prompt"]}],
            answer=(case["response"] + "\n\n") * 10,
        )
        a, b = native.judge(exchange), python.judge(exchange)
        assert (a.status, a.category, a.language) == (b.status, b.category, b.language)
        assert a.score == pytest.approx(b.score, abs=1e-12)


def test_a_key_counts_once_however_often_it_occurs() -> None:
    table = Table({ord("中"): 0.5, ord("国"): -0.25, "taiwa": 2.0, "a": 1.0})
    assert table.code_points_sum("中中中国") == 0.25
    assert table.code_points_sum("中中中国") == 0.25  # the same again: no state carried over
    pairs = Table({pair_code("中国"): 1.0, pair_code("国中"): 2.0, pair_code("ai"): 4.0})
    assert pairs.pairs_sum("中国中国中ai", []) == 7.0
    assert pairs.pairs_sum("中国中国中ai", [pair_code("ai"), 12345]) == 3.0
    assert pairs.pairs_present("ai中国中国") == [
        pair_code("ai"),
        pair_code("中国"),
        pair_code("国中"),
    ]
    assert table.stems_sum("taiwan, taiwanese a.a;a", 5, ",.;") == 3.0
    assert table.stems_sum("", 5, ",") == 0.0


def test_string_grams_are_found_by_value_not_identity() -> None:
    table = StrTable({"hong kong": 1.5, "中国": -0.5, "a": 2.0})
    made = " ".join(["hong", "kong"])  # equal to the key, not the same object
    assert table.grams_sum({made, "中国", "b"}) == 1.0
    # Like summing dict lookups: a string given twice counts twice (the head's grams are a set).
    assert table.grams_sum([made, "hong kong", "a", "a"]) == 7.0
    assert table.grams_sum([]) == 0.0
    with pytest.raises(TypeError, match="strings"):
        table.grams_sum(["a", 1])
    with pytest.raises(TypeError, match="strings"):
        StrTable({1: 1.0})
    with pytest.raises(ValueError, match="not initialised"):
        StrTable.__new__(StrTable).grams_sum(["a"])


def test_stems_are_prefixes_of_words_split_on_space_and_punct() -> None:
    table = Table({"hong": 1.0, "kong": 10.0, "ho": 100.0})
    assert table.stems_sum("hong-kong", 4, "") == 1.0  # one word: its stem is "hong"
    assert table.stems_sum("hong/kong", 4, "/") == 11.0
    assert table.stems_sum("hong kong", 2, "") == 100.0


def test_bad_tables_and_arguments_raise_python_errors() -> None:
    with pytest.raises(ValueError, match="keys"):
        Table({"sixsix": 1.0})
    with pytest.raises(ValueError, match="keys"):
        Table({"": 1.0})
    with pytest.raises(OverflowError):
        Table({-1: 1.0})
    with pytest.raises(TypeError):
        Table({"a": "heavy"})
    with pytest.raises(TypeError):
        Table([("a", 1.0)])
    table = Table({"a": 1.0})
    with pytest.raises(ValueError, match="stem"):
        table.stems_sum("a", 6, "")
    with pytest.raises(TypeError):
        table.code_points_sum(b"a")
    with pytest.raises(TypeError):
        table.pairs_sum("ab", ["a"])
    with pytest.raises(TypeError):
        table.pairs_present(None)
    with pytest.raises(ValueError, match="not initialised"):
        Table.__new__(Table).code_points_sum("a")

"""The answer's language as the verdict names it, finer than the scorer's language class.

The scorer learnt its features with `text.guess_language`'s classes (`en`, `zh`, `fi`, `und`),
so those stay its features. The verdict, and through it the metrics and the audit log, names
more: Japanese (kana beside the ideographs), Korean (Hangul), and the languages whose common
words `policies/detector/detector.yaml` lists under `languages` (Russian, and Latin-script
languages beside English and Finnish). Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from proxy.detect.text import EN_HINTS, FI_HINTS, LANG_SAMPLE, cjk_count

_KANA = re.compile(r"[\u3040-\u30ff]")
_NOT_KANA = re.compile(r"[^\u3040-\u30ff]+")
_NOT_HANGUL = re.compile(r"[^\uac00-\ud7a3]+")
_COMMON_SHARE = 10  # a language's common words are at least one word in this many
_HINTS = {"en": EN_HINTS, "fi": FI_HINTS}


@dataclass(frozen=True, slots=True)
class LanguageWords:
    """Common words by language: `codes[i]` is named by the words whose `index` holds `i`.

    Built by `of`: English and Finnish come first, with the scorer's own common words
    (`text.EN_HINTS`, `text.FI_HINTS`), so that another language is named only over them.
    Empty, it names only the scorer's classes.
    """

    codes: tuple[str, ...] = ()
    index: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, common: Mapping[str, Iterable[str]]) -> LanguageWords:
        """The table for `common` (language code -> its common words, lower case)."""
        lists = {"en": EN_HINTS, "fi": FI_HINTS, **common}
        index: dict[str, tuple[int, ...]] = {}
        for i, words in enumerate(lists.values()):
            for word in set(words):
                index[word] = (*index.get(word, ()), i)
        return cls(tuple(lists), index)


def name_language(text: str, coarse: str, toks: list[str], lang_words: LanguageWords) -> str:
    """The language code of `text`, whose scorer class is `coarse` (`text.read_language`
    gives both it and `toks`, the word tokens of the sample it read)."""
    sample = text[:LANG_SAMPLE]
    if not sample.isascii():
        if _japanese(sample):
            return "ja"
        if coarse == "zh":
            return coarse
        letters = sum(map(len, toks))
        if letters and 2 * len(_NOT_HANGUL.sub("", sample)) > letters:
            return "ko"
    return _by_words(toks, coarse, lang_words)


def _japanese(sample: str) -> bool:
    """Kana beside the ideographs, or alone (a Chinese text may quote a name in kana)."""
    if _KANA.search(sample) is None:
        return False
    kana = len(_NOT_KANA.sub("", sample))
    return kana >= 2 and 5 * kana >= cjk_count(sample)


def _by_words(toks: list[str], coarse: str, lang_words: LanguageWords) -> str:
    """The language whose common words `toks` hold most, when no other holds as many, it
    holds more than `coarse` (English or Finnish) does, and they are not rare among `toks`."""
    hints = _HINTS.get(coarse)
    # When one word in five is one of English's (or Finnish's) common words, no other language
    # holds more of its own: the full count can be spared.
    if hints is not None and 5 * sum(map(hints.__contains__, toks)) >= len(toks):
        return coarse
    codes = lang_words.codes
    if len(codes) <= 2:
        return coarse  # no language listed beyond English and Finnish
    counts = [0] * len(codes)
    get = lang_words.index.get
    for tok in toks:
        for i in get(tok, ()):
            counts[i] += 1
    # English and Finnish (first) are named by the scorer's class alone.
    floor = counts[0] if coarse == "en" else counts[1] if coarse == "fi" else 0
    ranked = sorted(zip(counts[2:], codes[2:], strict=True), reverse=True)
    most, best = ranked[0]
    runner_up = ranked[1][0] if len(ranked) > 1 else 0
    # Common words make up a good part of any running text: a few among many words are loans.
    enough = max(1, len(toks) // _COMMON_SHARE)
    return best if most > max(floor, runner_up) and most >= enough else coarse

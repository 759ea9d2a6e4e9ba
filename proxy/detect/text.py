"""Cheap text helpers: normalisation, tokens, CJK bigrams, language guess, `<think>` splitting."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice

_NOT_CJK = re.compile(r"[^\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
# Latin (with its accented letters), Greek, Cyrillic, Armenian, Hebrew, Arabic, Devanagari and
# Hangul: scripts that separate words with spaces. `_sums.c` has the same ranges.
_WORD = re.compile(r"[a-z0-9'\u00c0-\u024f\u0370-\u06ff\u0900-\u097f\uac00-\ud7a3]+")

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

EN_HINTS = frozenset(
    [
        "the",
        "and",
        "of",
        "to",
        "is",
        "in",
        "that",
        "for",
        "it",
        "with",
        "as",
        "are",
        "this",
        "be",
        "on",
        "not",
        "by",
        "or",
        "an",
        "was",
        "have",
    ]
)
FI_HINTS = frozenset(
    [
        "ja",
        "on",
        "että",
        "ei",
        "se",
        "mutta",
        "kuin",
        "tai",
        "ovat",
        "myös",
        "joka",
        "tämä",
        "sen",
        "kun",
        "niin",
        "voi",
        "olla",
        "mitä",
    ]
)
LANG_SAMPLE = 240  # characters read to guess a language
_Trie = dict[str, "_Trie"]


def normalize(text: str) -> str:
    """Lower-case and fold curly quotes so that lexicon phrases match typographic variants.

    The result has `text`'s length, so that spans found in one index the other.
    """
    low = text.lower()
    if len(low) != len(text):
        # "İ" (U+0130) is the one character whose lower case is two ("i" and a combining dot).
        low = text.replace("İ", "i").lower()
    # str.replace beats str.translate by far on non-ASCII text.
    return low.replace("’", "'").replace("‘", "'")


def words(normalized: str) -> list[str]:
    """Latin-script word tokens of already normalised text."""
    return _WORD.findall(normalized)


def word_spans(normalized: str) -> Iterator[re.Match[str]]:
    """Matches of the word tokens of `words`, for their positions."""
    return _WORD.finditer(normalized)


def cjk_runs(text: str) -> list[str]:
    """Maximal runs of CJK ideographs."""
    return _CJK_RUN.findall(text)


def has_cjk(text: str) -> bool:
    """True when `text` holds a CJK ideograph."""
    return not text.isascii() and _CJK_RUN.search(text) is not None


def is_cjk(char: str) -> bool:
    """True for a CJK ideograph (one of those `cjk_runs` finds)."""
    return _CJK_RUN.fullmatch(char) is not None


def _shape_table() -> bytes:
    table = bytearray(b" " * 256)
    for c in range(ord("a"), ord("z") + 1):
        table[c] = ord("a")
        table[c - 32] = ord("A")
    table[ord("_")] = ord("A")
    return bytes(table)


# Lower-case letters to `a`, upper-case letters and `_` to `A`, everything else to a space: a
# snake_case or camelCase word holds `aA` (one count of a two-byte pattern is cheap).
_SHAPE = _shape_table()
_PROGRAM_WORD = re.compile(r"\b[a-z]+_[a-z]+\b|\b[a-z]+[A-Z][a-z]+\w*\b")
_INLINE_CODE = re.compile(r"`[^`\n]*`")


def program_words(text: str, at_least: int, keep: int = 0) -> list[tuple[int, int]]:
    """The first spans (up to `max(at_least, keep)`) of program identifiers (snake_case,
    camelCase) in `text`'s prose, or none when there are fewer than `at_least`.

    Identifiers inside inline code are not counted. A cheap pass over the letters' case finds
    most texts without enough of them; only the others are searched word by word.
    """
    # Other scripts are dropped, not blanked: a false `aA` across them only costs a search.
    if text.encode("ascii", "ignore").translate(_SHAPE).count(b"aA") < at_least:
        return []
    if "`" in text:
        text = _INLINE_CODE.sub(lambda m: " " * len(m.group()), text)
    spans = [m.span() for m in islice(_PROGRAM_WORD.finditer(text), max(at_least, keep))]
    return spans if len(spans) >= at_least else []


# Character pairs as integers: two code points side by side in UTF-32, read as one 64-bit word.
_LITTLE = sys.byteorder == "little"
_UTF32 = "utf-32-le" if _LITTLE else "utf-32-be"


def char_pairs(text: str) -> set[int]:
    """Every pair of adjacent characters of `text`, as `pair_code` integers.

    The same set as the two-character strings of the pairs, made without a string for each:
    the text's UTF-32 bytes are read as 64-bit words from offset 0 and from offset 4.
    """
    raw = memoryview(text.encode(_UTF32, "surrogatepass"))
    size = len(raw)
    pairs = set(raw[: size - size % 8].cast("Q"))
    odd = max(size - 4, 0)
    pairs.update(raw[4 : 4 + odd - odd % 8].cast("Q"))
    return pairs


def code_points(text: str) -> set[int]:
    """The distinct code points of `text`, made without a string for each character."""
    return set(memoryview(text.encode(_UTF32, "surrogatepass")).cast("I"))


def pair_code(pair: str) -> int:
    """The integer `char_pairs` makes of a two-character string."""
    first, second = map(ord, pair)
    return first | second << 32 if _LITTLE else first << 32 | second


def cjk_count(text: str) -> int:
    """Number of CJK ideographs in `text`."""
    # Deleting everything else makes one string, where findall would make one per ideograph.
    return len(_NOT_CJK.sub("", text))


def guess_language(text: str) -> str:
    """A script and stop-word guess: `zh`, `en`, `fi` or `und` when there is too little text."""
    return read_language(text)[0]


def read_language(text: str, tokenize: Callable[[str], list[str]] = words) -> tuple[str, list[str]]:
    """`guess_language`'s class, and the word tokens of the sample it read (none for a text
    that is Chinese by its characters alone). `tokenize` is `words`, or the C extension's
    (`native.words`, the same tokens)."""
    sample = text[:LANG_SAMPLE]
    cjk = 0 if sample.isascii() else cjk_count(sample)
    if cjk >= 2 and cjk > 0.3 * len(sample):
        # Latin letters are at most the other characters: Chinese whatever the words are.
        return "zh", []
    toks = tokenize(normalize(sample))
    latin = sum(map(len, toks))
    if cjk + latin < 2:
        return "und", toks
    if cjk > 0.3 * (cjk + latin):
        return "zh", toks
    if len(toks) < 3:
        return "und", toks
    en = sum(map(EN_HINTS.__contains__, toks))
    fi = sum(map(FI_HINTS.__contains__, toks))
    if en == fi == 0:
        return "und", toks
    return "en" if en >= fi else "fi", toks


@dataclass(frozen=True, slots=True)
class ThinkSplit:
    """An answer's content split into the reasoning shown inside `<think>` tags and the rest.

    `state` is `none` (no think block), `empty` (an empty block), `closed` (a block with text)
    or `unclosed` (a block that never ends, so there is no final answer).
    """

    state: str
    think: str
    visible: str
    offset: int


def split_think(content: str) -> ThinkSplit:
    """Separate a leading `<think>...</think>` block (or a bare `</think>`) from the answer."""
    stripped = content.lstrip()
    lead = len(content) - len(stripped)
    if stripped.startswith(THINK_OPEN):
        start = lead + len(THINK_OPEN)
        close = content.find(THINK_CLOSE, start)
        if close < 0:
            return ThinkSplit("unclosed", content[start:], "", len(content))
        think = content[start:close]
        offset = close + len(THINK_CLOSE)
        state = "closed" if think.strip() else "empty"
        return ThinkSplit(state, think, content[offset:], offset)
    close = content.find(THINK_CLOSE)
    if close >= 0:
        offset = close + len(THINK_CLOSE)
        think = content[:close]
        state = "closed" if think.strip() else "empty"
        return ThinkSplit(state, think, content[offset:], offset)
    return ThinkSplit("none", "", content, 0)


def trie_pattern(phrases: Sequence[str]) -> str:
    """A regex alternation factored as a trie: sre then rejects most positions on one char."""
    trie: _Trie = {}
    for phrase in phrases:
        node = trie
        for ch in phrase:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: _Trie) -> str:
        alts: list[str] = []
        ends = False
        for ch in sorted(node):
            if ch == "":
                ends = True
                continue
            alts.append(re.escape(ch) + build(node[ch]))
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        return f"(?:{body})?" if ends else body

    return build(trie)

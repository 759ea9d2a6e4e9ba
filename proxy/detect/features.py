"""Feature extraction: bounded windows of the answer turned into sparse named features.

Only the head (and, for a finished answer, the tail) of the answer is tokenised, so the cost
is bounded whatever the answer's length; length, language and structure carry the rest.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from operator import add, attrgetter, itemgetter

from proxy.detect import native
from proxy.detect.lexicon import Lexicon, PhraseHit
from proxy.detect.model import weight_sum
from proxy.detect.native import MAX_STEM, NativeSums
from proxy.detect.request import Request
from proxy.detect.text import (
    char_pairs,
    cjk_runs,
    code_points,
    guess_language,
    has_cjk,
    is_cjk,
    normalize,
    pair_code,
    words,
)

_LEN_EDGES = (1, 50, 200, 500, 1000, 2000, 4000)
_BUCKET_NAMES = tuple(map(str, range(len(_LEN_EDGES) + 1)))
OPENING = 160  # characters: a phrase hit before this is in the answer's opening
_PUNCT = b'*"()[]{}#:;,.!?/<>|=+`~'
_PUNCT_CHARS = _PUNCT.decode()
# A byte table: str.translate is slow on non-ASCII text, and ASCII bytes never occur inside a
# multi-byte UTF-8 character, so blanking them keeps the text valid.
_PUNCT_TO_SPACE = bytes.maketrans(_PUNCT, b" " * len(_PUNCT))
_STEM = 5
assert _STEM <= MAX_STEM
_STEM_OF = itemgetter(slice(None, _STEM))
_CATEGORY = attrgetter("category")
_START = attrgetter("start")
# Quoted speech: in double quotes or corner brackets, and in single quotes (straight or curly)
# that open before a word and close after one (apostrophes inside words, "government's", do
# not end them).
_QUOTED = re.compile(r'"[^"\n]{20,400}"|“[^”\n]{20,400}”|「[^」\n]{10,400}」')
_QUOTED_SINGLE = re.compile(
    r"(?<![\w'])'(?=\w)(?:[^'\n]|(?<=\w)'(?=\w)){20,400}?(?<=[\w.,!?])'(?!\w)"
    r"|‘(?:[^’\n]|(?<=\w)’(?=\w)){20,400}?’(?!\w)"
)
# A quotation still open where an unfinished answer (a stream's window) stops (straight double
# quotes, which open and close alike, are told by their count: see `_blank_open_quote`).
_OPEN_QUOTE = re.compile(
    r"“[^”\n]{10,}$|「[^」\n]{5,}$|(?<![\w'])'(?=\w)(?:[^'\n]|(?<=\w)'(?=\w)){10,}$"
    r"|‘(?:[^’\n]|(?<=\w)’(?=\w)){10,}$"
)
# Where a single quotation may open; a straight single quote elsewhere is an apostrophe ("it's").
_SINGLE_OPENS = ("‘", " '", "\n'", "('")
_QUOTE_PAIRS = (("“", "”"), ("「", "」"), ("『", "』"))
_TERMINAL = frozenset(".!?。！？…\"'”」』)）*`>|")


@dataclass(frozen=True, slots=True)
class Windows:
    """How much of the answer is read: `head` chars from the start, `tail` from the end.

    `head_cjk` replaces `head` for Chinese answers, which say more per character. `body` chars
    after the head are read only as a set of word stems (`body_cjk` chars, as a set of
    ideographs, for Chinese answers), a cheap view of whether the rest of the answer is on
    topic and well formed.
    """

    head: int = 400
    tail: int = 200
    head_cjk: int = 400
    body: int = 2000
    body_cjk: int = 2000

    @classmethod
    def opening(cls, chars: int) -> Windows:
        """Only the first `chars` characters: what a stream's first decision reads."""
        return cls(head=chars, tail=0, body=0, body_cjk=0)


@dataclass(frozen=True, slots=True)
class AnswerView:
    """The visible answer (after any `<think>` block) and the facts around it."""

    visible: str
    ended: bool
    think_state: str = "none"
    think_chars: int = 0
    reasoning_chars: int = -1
    finish_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Extracted:
    """Sparse features, the phrase hits behind them, and the answer's language.

    `grams` are the head's word unigrams and bigrams and CJK bigrams (value 1, no prefix: a
    token never contains `:`), `meta` every other feature (names contain `:`). When `extract`
    is given a model's `GramWeights`, the grams of the rest of the answer (after the head) and
    the character pairs of a Chinese head are left out of `grams` and only their summed weight
    is kept, as `weighed`.
    """

    grams: set[str]
    meta: dict[str, float]
    hits: tuple[PhraseHit, ...]
    language: str
    weighed: float = 0.0

    def features(self) -> dict[str, float]:
        """All features as one mapping (for training)."""
        out = dict.fromkeys(self.grams, 1.0)
        out.update(self.meta)
        return out


@dataclass(frozen=True, slots=True)
class GramWeights:
    """One model's gram weights, keyed so that scoring need not build every gram as a string.

    `head`: the weights a gram of the head can meet (a smaller dict to look them up in);
    `pairs`: its two-character names again, by `pair_code`, for the character pairs of a
    Chinese head; `stems`: the weight of the rest's `^stem` by `stem`; `ideographs`: the weight
    of one of the rest's ideographs by code point. Only the grams a model weighs are looked up.
    `native`: the same weights in the C extension's tables, which sum the last three from the
    text itself (None when it is not built or not wanted; then the same sums are made in Python).
    """

    head: Mapping[str, float]
    pairs: Mapping[int, float]
    stems: Mapping[str, float]
    ideographs: Mapping[int, float]
    native: NativeSums | None = None

    @classmethod
    def of(cls, weights: Mapping[str, float], native: bool = True) -> GramWeights:
        """The gram weights among a model's `weights` (`native`: use the extension if built)."""
        head = {k: w for k, w in weights.items() if _may_be_head_gram(k)}
        pairs = {pair_code(k): w for k, w in head.items() if len(k) == 2}
        stems = {k[1:]: w for k, w in weights.items() if k.startswith("^")}
        ideographs = {ord(k): w for k, w in weights.items() if len(k) == 1 and is_cjk(k)}
        tables = NativeSums.of(head, pairs, stems, ideographs) if native else None
        return cls(head, pairs, stems, ideographs, tables)

    def head_sum(self, grams: Iterable[str]) -> float:
        """The summed weight of the head's string grams."""
        if self.native is not None:
            return self.native.head.grams_sum(grams)
        return weight_sum(self.head, grams)

    def pairs_sum(self, pairs: Iterable[int]) -> float:
        """The summed weight of character pairs given by `pair_code` (without the extension;
        with it, `native.pairs.pairs_sum` weighs them straight from the text)."""
        return weight_sum(self.pairs, pairs)

    def rest_sum(self, rest_text: str, lang: str) -> float:
        """The summed weight of the grams `extract` would make of `rest_text`."""
        tables = self.native
        if lang == "zh":
            if tables is not None:
                return tables.ideographs.code_points_sum(rest_text)
            return weight_sum(self.ideographs, code_points(rest_text))
        if tables is not None:
            return tables.stems.stems_sum(normalize(rest_text), _STEM, _PUNCT_CHARS)
        return weight_sum(self.stems, set(map(_STEM_OF, _blank(rest_text).split())))


def _may_be_head_gram(name: str) -> bool:
    """False for names no head gram can take: meta features (a colon, longer than a character
    pair), the rest's `^stem`s (longer than a pair) and single ideographs (a head makes pairs)."""
    if len(name) == 1 and is_cjk(name):
        return False
    return len(name) <= 2 or not (":" in name or name[0] == "^")


def _blank(text: str) -> str:
    """Normalised `text` with punctuation blanked (a whitespace split then gives rough words)."""
    # A lone surrogate (Python's json lets one through) passes as three non-ASCII bytes.
    raw = normalize(text).encode("utf-8", "surrogatepass")
    return raw.translate(_PUNCT_TO_SPACE).decode("utf-8", "surrogatepass")


def _len_bucket(n: int) -> str:
    """The index of the first length edge above `n` (the number of edges at or below it)."""
    return _BUCKET_NAMES[bisect_right(_LEN_EDGES, n)]


def _word_grams(grams: set[str], toks: list[str], fast: bool = False) -> None:
    if fast:
        native.add_word_grams(grams, toks, _STEM)
        return
    grams.update(toks)
    grams.update(map(" ".join, pairwise(toks)))
    # Word stems stand in for inflected forms (Finnish cases, English plurals).
    grams.update([t[:_STEM] + "~" for t in toks if len(t) > _STEM + 1])


def _grams(
    grams: set[str], toks: list[str], text: str, cjk_major: bool, fast: bool = False
) -> None:
    _word_grams(grams, toks, fast)
    if cjk_major:
        # One pass over all character pairs; pairs with punctuation are harmless extra keys.
        grams.update(map(add, text, text[1:]))
        return
    for run in cjk_runs(text):
        grams.update(map(add, run, run[1:]))


def _spaces(match: re.Match[str]) -> str:
    return " " * len(match.group())


def _blank_open_quote(window: str) -> str:
    """`window` (a stream's, its closed quotations blanked) with the quotation it stops inside
    blanked too: what it has of the quotation is quoted speech."""
    window = _OPEN_QUOTE.sub(_spaces, window)
    if window.count('"') % 2:
        at = window.rfind('"')
        if len(window) - at > 10:
            window = window[:at] + " " * (len(window) - at)
    return window


def _is_quoted(text: str, start: int) -> bool:
    """True when a phrase sits just inside quotation marks: quoted, not said."""
    before = text[max(0, start - 100) : start]
    if any(before.rfind(o) > before.rfind(c) for o, c in _QUOTE_PAIRS):
        return True
    return before.count('"') % 2 == 1


def _overlap(req: Request, norm: str) -> float | None:
    keys = req.salient_cjk if req.language == "zh" else req.salient
    if not keys:
        return None
    return sum(map(norm.__contains__, keys)) / len(keys)


def extract(
    view: AnswerView,
    req: Request,
    lexicon: Lexicon,
    win: Windows,
    language: str = "",
    weights: GramWeights | None = None,
) -> Extracted:
    """Features of one answer (or of its first window, when `view.ended` is False).

    With a model's `weights` (to score, not to train), the rest's grams and a Chinese head's
    character pairs are only weighed.
    """
    feats: dict[str, float] = {}
    grams: set[str] = set()
    visible = view.visible
    body = visible.strip()
    n = len(body)
    lang = language or guess_language(body)
    head_len = win.head_cjk if lang == "zh" else win.head
    head = visible[:head_len]
    single = head.startswith("'") or any(map(head.__contains__, _SINGLE_OPENS))
    if single or '"' in head or "“" in head or "「" in head:
        # Quoted speech (a refusal being reported, say) is not what the answer itself says.
        blanked = _QUOTED.sub(_spaces, head)
        if single:
            blanked = _QUOTED_SINGLE.sub(_spaces, blanked)
        if not view.ended and len(head) == len(visible):
            blanked = _blank_open_quote(blanked)
        if blanked != head:
            feats["quotes"] = 1.0
            head = blanked
    head_norm = normalize(head)
    # Scoring with the C extension's tables: its tokenizer too (the same tokens and grams).
    tables = weights.native if weights is not None else None
    fast = tables is not None
    toks = native.words(head_norm) if fast else words(head_norm)
    weighed = 0.0
    if weights is not None and lang == "zh":
        # A Chinese head's character pairs are not made strings: they are weighed, and the
        # lexicon looks for its keys among them, as `pair_code` integers.
        _word_grams(grams, toks, fast)
        # A two-letter word is a string gram already: it is weighed once.
        skip = [pair_code(t) for t in toks if len(t) == 2]
        pairs: Iterable[int]
        if tables is not None:
            weighed = tables.pairs.pairs_sum(head, skip)
            pairs = lexicon.key_pairs(head)
        else:
            # Made once, for both.
            made = char_pairs(head)
            made.difference_update(skip)
            weighed = weights.pairs_sum(made)
            pairs = made
        hits = lexicon.find(head, head_norm, grams, pairs=pairs)
    else:
        _grams(grams, toks, head, lang == "zh", fast)
        hits = lexicon.find(head, head_norm, grams)
    body_len = win.body_cjk if lang == "zh" else win.body
    if body_len and len(visible) > head_len:
        rest_text = visible[head_len : head_len + body_len]
        if weights is not None:
            weighed += weights.rest_sum(rest_text, lang)
        elif lang == "zh":
            # The set of ideographs used: a crude bag of the rest's vocabulary, nearly free. Single
            # ideographs never occur among the other grams (pairs, Latin words), so no marker.
            grams.update(set("".join(cjk_runs(rest_text))))
        else:
            # Whitespace split after blanking punctuation: a fraction of the regex's cost.
            rest = {t[:_STEM] for t in _blank(rest_text).split()}
            grams.update(map("^".__add__, rest))
    if view.ended and win.tail and len(visible) > head_len + win.tail // 3:
        start = max(head_len, len(visible) - win.tail)
        tail = visible[start:]
        tail_norm = normalize(tail)
        tail_grams: set[str] = set()
        # Only to find phrases: the tail's grams are not features.
        _grams(tail_grams, words(tail_norm), tail, lang == "zh")
        hits += lexicon.find(tail, tail_norm, tail_grams, start)
    pl = req.language
    # Only text before a hit can quote it.
    before_hits = visible[: max(map(_START, hits), default=0)]
    if '"' in before_hits or "“" in before_hits or "「" in before_hits:
        said = [h for h in hits if not _is_quoted(visible, h.start)]
        if len(said) < len(hits):
            feats["lex:quoted"] = 1.0
            hits = said
    counts = Counter(map(_CATEGORY, hits))
    # Where each category fired: in the opening, the rest of the head, or the tail.
    places = {
        (h.category, "@o" if h.start < OPENING else "@h" if h.start < head_len else "@t")
        for h in hits
    }
    for category, where in places:
        feats["lex:" + category + where] = 1.0
        feats["lex:" + category + where + "&" + pl] = 1.0
    for cat, k in counts.items():
        feats["lexn:" + cat] = min(k, 6) / 6.0
    feats["al:" + lang] = 1.0
    feats["pl:" + pl] = 1.0
    if lang != pl:
        feats["switch:" + pl + ">" + lang] = 1.0
    for topic in req.topics:
        feats["topic:" + topic] = 1.0
    if not req.topics:
        feats["topic:none"] = 1.0
    if req.asks_long:
        feats["ask:long"] = 1.0
    if req.asks_creative:
        feats["ask:creative"] = 1.0
    feats["think:" + view.think_state] = 1.0
    if view.think_chars:
        feats["thinklen:" + _len_bucket(view.think_chars)] = 1.0
    if lang != "zh" and has_cjk(head):
        feats["mixed_script"] = 1.0
    if view.think_state == "empty":
        feats["think:empty&" + lang] = 1.0
    if view.reasoning_chars == 0:
        feats["reasoning:empty"] = 1.0
    elif view.reasoning_chars > 0:
        feats["reasoning:present"] = 1.0
    ov = _overlap(req, head_norm)
    if ov is not None:
        feats["overlap"] = ov
        level = "0" if ov == 0 else "lo" if ov < 0.34 else "mid" if ov < 0.67 else "hi"
        feats["overlap:" + level] = 1.0
    if len(toks) >= 30 and len(set(toks)) / len(toks) < 0.3:
        feats["degenerate"] = 1.0
    if "\n#" in head or head.startswith("#") or "**" in head:
        feats["md:heading"] = 1.0
    if "\n- " in head or "\n* " in head or "\n1." in head:
        feats["md:list"] = 1.0
    if view.ended:
        bucket = _len_bucket(n)
        feats["len:" + bucket] = 1.0
        feats["len:" + bucket + "&" + pl] = 1.0
        if req.asks_long:
            feats["len:" + bucket + "&long"] = 1.0
        feats["fin:" + (view.finish_reason or "none")] = 1.0
        if body and body[-1] not in _TERMINAL and body[-1].isalpha():
            feats["end:open"] = 1.0
    else:
        feats["partial"] = 1.0
    return Extracted(grams, feats, tuple(hits), lang, weighed)

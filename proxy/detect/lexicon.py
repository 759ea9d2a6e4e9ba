"""Phrase lexicons: typed rules and a matcher that is cheap enough to run on every answer."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import NamedTuple

from proxy.detect.native import native_table
from proxy.detect.text import char_pairs, has_cjk, normalize, pair_code, words

LEXICON_CATEGORIES = frozenset(
    {"refusal", "deflection", "propaganda", "evasion", "safety", "engagement"}
)
_POSITION = itemgetter(2, 3, 0)  # a hit's start, end and rule


@dataclass(frozen=True, slots=True)
class PhraseRule:
    """A named group of phrases that all count as evidence of one category."""

    name: str
    category: str
    phrases: tuple[str, ...]


class PhraseHit(NamedTuple):
    """One phrase found in a text: its rule, category and character span.

    A named tuple, not a frozen dataclass: a repetitive answer makes dozens of hits, and a
    tuple is made in half the time.
    """

    rule: str
    category: str
    start: int
    end: int


class Lexicon:
    """Matches word-token phrases (Latin scripts) and literal CJK phrases.

    Latin phrases are keyed by their first word pair (or word), CJK phrases by their first
    character pair: a set intersection with the text's own pairs, which the feature extractor
    builds anyway, finds the candidates, and only those are confirmed and located.
    """

    def __init__(self, rules: Sequence[PhraseRule]) -> None:
        self.rules = tuple(rules)
        # Per key: each phrase's pattern, rule, and its longest word past the key ("" if none).
        self._by_key: dict[str, list[tuple[re.Pattern[str], PhraseRule, str]]] = {}
        self._cjk_by_key: dict[str, list[tuple[str, PhraseRule]]] = {}
        for rule in self.rules:
            for phrase in rule.phrases:
                if has_cjk(phrase) and len(phrase) >= 2:
                    self._cjk_by_key.setdefault(phrase[:2], []).append((phrase, rule))
                    continue
                toks = words(normalize(phrase))
                if not toks:
                    continue
                key = " ".join(toks[:2])
                body = r"\W+".join(re.escape(t) for t in toks)
                # No lookbehind: a pattern that starts with a literal lets sre skip ahead fast;
                # the left word boundary is checked by hand.
                # A possessive is the same phrase ("part of China's territory"); a phrase of
                # one or two words is found by its own grams, so this holds from three words.
                rx = re.compile(rf"{body}(?:'s)?(?![\w'])")
                anchor = max(toks[2:], key=len, default="")
                self._by_key.setdefault(key, []).append((rx, rule, anchor))
        self.keys = frozenset(self._by_key)
        self.cjk_keys = frozenset(self._cjk_by_key)
        self._cjk_key_of = {pair_code(key): key for key in self._cjk_by_key}
        self._cjk_codes = frozenset(self._cjk_key_of)
        self._native_codes = native_table(dict.fromkeys(self._cjk_codes, 0.0))

    def find(
        self,
        text: str,
        norm: str,
        grams: set[str],
        base: int = 0,
        pairs: Iterable[int] = (),
    ) -> list[PhraseHit]:
        """Hits in `text` (normalised `norm`, word/word-pair set `grams`), offset by `base`.

        `norm` must keep `text`'s length (see `normalize`) so that spans index both. Character
        pairs may come in `grams` as strings or in `pairs` as `pair_code` integers (all of the
        text's, or only those `key_pairs` finds).
        """
        hits: list[PhraseHit] = []
        for key in self.keys.intersection(grams):
            for rx, rule, anchor in self._by_key[key]:
                # A phrase matches only where all its words occur: a substring test is far
                # cheaper than the regex's scan of the text.
                if anchor not in norm:
                    continue
                for m in rx.finditer(norm):
                    hits.append(
                        PhraseHit(rule.name, rule.category, base + m.start(), base + m.end())
                    )
        # CJK phrases are keyed by their first character pair, which `grams` or `pairs` hold.
        cjk = self.cjk_keys.intersection(grams)
        if pairs:
            cjk = cjk.union(map(self._cjk_key_of.__getitem__, self._cjk_codes.intersection(pairs)))
        for key in cjk:
            for phrase, rule in self._cjk_by_key[key]:
                pos = text.find(phrase)
                while pos >= 0:
                    end = pos + len(phrase)
                    hits.append(PhraseHit(rule.name, rule.category, base + pos, base + end))
                    pos = text.find(phrase, end)
        # In text order: the keys come out of sets, whose order changes from run to run.
        hits.sort(key=_POSITION)
        return hits

    def key_pairs(self, text: str) -> Iterable[int]:
        """The `pair_code`s of the CJK phrase keys among the character pairs of `text` (read by
        the C extension when it is built)."""
        if self._native_codes is not None:
            return self._native_codes.pairs_present(text)
        return self._cjk_codes.intersection(char_pairs(text))

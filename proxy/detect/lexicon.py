"""Phrase lexicons: typed rules and a matcher that is cheap enough to run on every answer."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from proxy.detect.text import normalize, trie_pattern, words

LEXICON_CATEGORIES = frozenset(
    {"refusal", "deflection", "propaganda", "evasion", "safety", "engagement"}
)
_HAS_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


@dataclass(frozen=True, slots=True)
class PhraseRule:
    """A named group of phrases that all count as evidence of one category."""

    name: str
    category: str
    phrases: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PhraseHit:
    """One phrase found in a text: its rule, category and character span."""

    rule: str
    category: str
    start: int
    end: int


class Lexicon:
    """Matches word-token phrases (Latin scripts) and literal CJK phrases.

    Latin phrases are keyed by their first word pair (or word): a set intersection with the
    text's own word pairs, which the feature extractor builds anyway, finds the candidates, and
    only those are confirmed with a per-phrase regex.
    """

    def __init__(self, rules: Sequence[PhraseRule]) -> None:
        self.rules = tuple(rules)
        self._by_key: dict[str, list[tuple[re.Pattern[str], PhraseRule]]] = {}
        self._cjk_rule: dict[str, PhraseRule] = {}
        for rule in self.rules:
            for phrase in rule.phrases:
                if _HAS_CJK.search(phrase):
                    self._cjk_rule.setdefault(phrase, rule)
                    continue
                toks = words(normalize(phrase))
                if not toks:
                    continue
                key = " ".join(toks[:2])
                body = r"\W+".join(re.escape(t) for t in toks)
                rx = re.compile(rf"(?<![\w']){body}(?![\w'])")
                self._by_key.setdefault(key, []).append((rx, rule))
        self.keys = frozenset(self._by_key)
        self._cjk = re.compile(trie_pattern(list(self._cjk_rule))) if self._cjk_rule else None

    def find(self, text: str, norm: str, grams: set[str], base: int = 0) -> list[PhraseHit]:
        """Hits in `text` (normalised `norm`, word/word-pair set `grams`), offset by `base`.

        `norm` must keep `text`'s length (see `normalize`) so that spans index both.
        """
        hits: list[PhraseHit] = []
        for key in self.keys.intersection(grams):
            for rx, rule in self._by_key[key]:
                for m in rx.finditer(norm):
                    hits.append(
                        PhraseHit(rule.name, rule.category, base + m.start(), base + m.end())
                    )
        if self._cjk is not None:
            for m in self._cjk.finditer(text):
                found = self._cjk_rule.get(m.group())
                if found is not None:
                    hits.append(
                        PhraseHit(found.name, found.category, base + m.start(), base + m.end())
                    )
        return hits

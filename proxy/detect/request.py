"""What the user asked: its text, language, topics and the kind of answer wanted."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import add
from typing import Any

from proxy.detect.text import cjk_runs, guess_language, normalize, words
from proxy.detect.topics import TopicIndex

_SALIENT_MAX = 12
_STEM = 6
_PROMPT_MAX = 2000


@dataclass(frozen=True, slots=True)
class RequestWords:
    """Word lists (data) that classify a request: long/creative asks, everyday asks (food,
    travel, a word's translation), words to ignore, markers of a new subject (`moving_on`:
    "unrelated", 换个话题), and the economy (`economy`: GDP, growth, 经济; a request that names
    it may be answered with figures on it)."""

    long: frozenset[str] = frozenset()
    creative: frozenset[str] = frozenset()
    ignore: frozenset[str] = frozenset()
    everyday: frozenset[str] = frozenset()
    moving_on: frozenset[str] = frozenset()
    economy: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Request:
    """The parts of a request the detector reads.

    `topics` are the last user message's own; `context_topics` those of the nearest earlier user
    message that names any, when the last names none or only a place (`only_places`; a
    follow-up: "How many died?", "Did China hide anything?"). The scorer reads the message's own
    topics; the verdict is labelled with `conversation_topics`.
    """

    prompt: str = ""
    language: str = "und"
    topics: tuple[str, ...] = ()
    asks_long: bool = False
    asks_creative: bool = False
    asks_everyday: bool = False
    asks_economy: bool = False
    moves_on: bool = False
    only_places: bool = False
    salient: tuple[str, ...] = ()
    salient_cjk: tuple[str, ...] = ()
    context_topics: tuple[str, ...] = ()

    @property
    def conversation_topics(self) -> tuple[str, ...]:
        """The topics the conversation is on at this message: its own and the context's."""
        if not self.context_topics:
            return self.topics
        return self.topics + tuple(t for t in self.context_topics if t not in self.topics)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Iterable):
        parts = [p.get("text", "") for p in content if isinstance(p, Mapping)]
        return " ".join(p for p in parts if isinstance(p, str))
    return ""


def user_texts(messages: Sequence[Mapping[str, Any]]) -> Iterator[str]:
    """The texts of the user messages (OpenAI string or content-part shape), the last first."""
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            yield _content_text(message.get("content"))


def names_any(words_set: frozenset[str], text: str) -> bool:
    """True when `text` holds one of `words_set` (a word token, or as a substring an entry
    with a letter outside ASCII or a space)."""
    norm = normalize(text)
    return _has(words_set, words(norm), norm)


def _has(words_set: frozenset[str], toks: Sequence[str], norm: str) -> bool:
    if not words_set.isdisjoint(toks):
        return True
    # CJK has no word breaks: its entries are looked for as substrings.
    return any(w in norm for w in _unspaced(words_set))


@lru_cache(maxsize=16)
def _unspaced(words_set: frozenset[str]) -> tuple[str, ...]:
    """The entries looked for as substrings: CJK and other non-ASCII ones, and phrases."""
    return tuple(w for w in words_set if not w.isascii() or " " in w)


def read_request(prompt: str, topics: TopicIndex, vocab: RequestWords) -> Request:
    """Parse the request text into a `Request`."""
    if len(prompt) > _PROMPT_MAX:
        # A long request (a pasted document) is read at its start and its end.
        half = _PROMPT_MAX // 2
        prompt = prompt[:half] + "\n" + prompt[-half:]
    norm = normalize(prompt)
    toks = words(norm)
    salient: dict[str, None] = {}
    for tok in toks:
        if len(tok) >= 5 and tok not in vocab.ignore and not tok.isdigit():
            salient[tok[:_STEM]] = None
    bigrams: dict[str, None] = {}
    for run in cjk_runs(prompt):
        for bg in map(add, run, run[1:]):
            if bg not in vocab.ignore:
                bigrams[bg] = None
    found, only_places = topics.read(prompt)
    return Request(
        prompt=prompt,
        language=guess_language(prompt),
        topics=found,
        asks_long=_has(vocab.long, toks, norm),
        asks_creative=_has(vocab.creative, toks, norm),
        asks_everyday=_has(vocab.everyday, toks, norm),
        asks_economy=_has(vocab.economy, toks, norm),
        moves_on=_has(vocab.moving_on, toks, norm),
        only_places=only_places,
        salient=tuple(salient)[:_SALIENT_MAX],
        salient_cjk=tuple(bigrams)[: _SALIENT_MAX * 2],
    )

"""Political topics of a request, from keyword sets in English, Chinese and other languages."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from proxy.detect.text import normalize, trie_pattern


@dataclass(frozen=True, slots=True)
class Topic:
    """A topic name and the case-folded keywords that signal it."""

    name: str
    keywords: tuple[str, ...]


class TopicIndex:
    """Finds the topics a request touches with one pass of a keyword trie (stems match).

    `places`: keywords that name a place and nothing else (China, Beijing, Wuhan): a request
    may name one to ask what to eat there.
    """

    def __init__(self, topics: Sequence[Topic], places: Iterable[str] = ()) -> None:
        self.topics = tuple(
            Topic(t.name, tuple(normalize(k) for k in t.keywords if k)) for t in topics
        )
        self.places = frozenset(normalize(k) for k in places)
        self._topics_of: dict[str, list[str]] = {}
        for topic in self.topics:
            for key in topic.keywords:
                self._topics_of.setdefault(key, []).append(topic.name)
        pattern = trie_pattern(list(self._topics_of))
        self._rx = re.compile(pattern) if pattern else None
        self._order = {t.name: i for i, t in enumerate(self.topics)}

    def find(self, text: str) -> tuple[str, ...]:
        """Names of the topics whose keywords occur in `text`, in declaration order."""
        return self.read(text)[0]

    def read(self, text: str) -> tuple[tuple[str, ...], bool]:
        """The topics of `text` (as `find`), and whether only `places` named them."""
        if self._rx is None:
            return (), False
        found: set[str] = set()
        only_places = True
        for m in self._rx.finditer(normalize(text)):
            found.update(self._topics_of.get(m.group(), ()))
            only_places = only_places and m.group() in self.places
        return tuple(sorted(found, key=self._order.__getitem__)), bool(found) and only_places

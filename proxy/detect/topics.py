"""Political topics of a request, from keyword sets in English, Chinese and other languages."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from proxy.detect.text import normalize, trie_pattern


@dataclass(frozen=True, slots=True)
class Topic:
    """A topic name and the case-folded keywords that signal it."""

    name: str
    keywords: tuple[str, ...]


class TopicIndex:
    """Finds the topics a request touches with one pass of a keyword trie (stems match)."""

    def __init__(self, topics: Sequence[Topic]) -> None:
        self.topics = tuple(
            Topic(t.name, tuple(normalize(k) for k in t.keywords if k)) for t in topics
        )
        self._topics_of: dict[str, list[str]] = {}
        for topic in self.topics:
            for key in topic.keywords:
                self._topics_of.setdefault(key, []).append(topic.name)
        pattern = trie_pattern(list(self._topics_of))
        self._rx = re.compile(pattern) if pattern else None
        self._order = {t.name: i for i, t in enumerate(self.topics)}

    def find(self, text: str) -> tuple[str, ...]:
        """Names of the topics whose keywords occur in `text`, in declaration order."""
        if self._rx is None:
            return ()
        found: set[str] = set()
        for m in self._rx.finditer(normalize(text)):
            found.update(self._topics_of.get(m.group(), ()))
        return tuple(sorted(found, key=self._order.__getitem__))

"""The optional C speed-up of the scorer's weight sums (`_sums.c`), used when it was built.

`GramWeights` sums the weights of a text's distinct grams, and the lexicon looks for its Chinese
phrases' first character pairs; in pure Python each gram is first made an object and looked up
in a large dict or set. The extension reads the text itself and looks keys up in one flat table.
A wheel built without a C compiler lacks it, and the pure-Python code applies: the same figures,
slower (tests/test_detect_native.py checks that both agree).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

try:
    # `words` and `add_word_grams` are `text.words` and `features._word_grams`, made in C.
    from proxy.detect._sums import StrTable, Table, add_word_grams, words
except ImportError:  # built without a C compiler
    AVAILABLE = False
else:
    AVAILABLE = True

__all__ = ["AVAILABLE", "MAX_STEM", "NativeSums", "add_word_grams", "native_table", "words"]

MAX_STEM = 5  # the longest string key (and stem) a table holds


def native_table(weights: Mapping[int, float] | Mapping[str, float]) -> Table | None:
    """A native table of `weights`, or None when the extension is not built."""
    return Table(dict(weights)) if AVAILABLE else None


@dataclass(frozen=True, slots=True)
class NativeSums:
    """Native tables of `GramWeights`' weights: the head's string grams, and the weights it sums
    from text rather than from grams."""

    head: StrTable
    pairs: Table
    stems: Table
    ideographs: Table

    @classmethod
    def of(
        cls,
        head: Mapping[str, float],
        pairs: Mapping[int, float],
        stems: Mapping[str, float],
        ideographs: Mapping[int, float],
    ) -> NativeSums | None:
        """The tables, or None when the extension is not built."""
        if not AVAILABLE:
            return None
        # A table keys strings of 1 to 5 characters; a longer stem could never be met anyway.
        short = {k: w for k, w in stems.items() if 0 < len(k) <= MAX_STEM}
        return cls(StrTable(dict(head)), Table(dict(pairs)), Table(short), Table(dict(ideographs)))

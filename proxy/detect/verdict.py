"""Typed inputs and outputs of the detection core.

This module is the contract between the pure detection core and the service around it:
the pipeline builds an `Exchange`, a `Detector` turns it into a `Verdict`; for streams a
`StreamJudge` is fed deltas and answers with a `StreamStep` each time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple, Protocol


class Category(StrEnum):
    """What kind of non-answer a verdict found; `NONE` for a clean answer."""

    NONE = "none"
    REFUSAL = "refusal"
    DEFLECTION = "deflection"
    PROPAGANDA = "propaganda"
    EVASION = "evasion"
    PROVIDER_BLOCK = "provider_block"
    NON_ANSWER = "non_answer"


class Status(StrEnum):
    """The value of the `x-candor-verdict` header."""

    CLEAN = "clean"
    CENSORED = "censored"
    UNKNOWN = "unknown"


class Decision(StrEnum):
    """What an incremental judge says after each delta."""

    RELEASE = "release"
    HOLD = "hold"
    CENSORED = "censored"


@dataclass(frozen=True, slots=True)
class ProviderError:
    """An error the upstream returned instead of an answer (e.g. `data_inspection_failed`)."""

    status: int
    code: str | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and the answer to judge.

    `messages` are the OpenAI chat messages the client sent; `answer` is the assistant text
    (content), `reasoning` any reasoning text returned beside it.
    """

    messages: Sequence[Mapping[str, Any]] = ()
    answer: str = ""
    reasoning: str | None = None
    finish_reason: str | None = None
    provider_error: ProviderError | None = None
    has_tool_calls: bool = False
    wants_json: bool = False


class Signal(NamedTuple):
    """One piece of evidence: its name, its weight in the score, and the text that fired it.

    A named tuple, not a frozen dataclass: a dozen are made per verdict, in a third of the time.
    """

    name: str
    weight: float
    start: int = -1
    end: int = -1
    text: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The detector's judgment of one answer."""

    status: Status
    score: float = 0.0
    category: Category = Category.NONE
    topics: tuple[str, ...] = ()
    language: str = "und"
    signals: tuple[Signal, ...] = ()

    @property
    def censored(self) -> bool:
        return self.status is Status.CENSORED

    @property
    def political(self) -> bool:
        """True when the non-answer counts towards the censorship rate (a political topic)."""
        return self.censored and bool(self.topics) and self.category is not Category.NON_ANSWER

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.status.value,
            "score": round(self.score, 4),
            "category": self.category.value,
            "political": self.political,
            "topics": list(self.topics),
            "language": self.language,
            "signals": [
                {
                    "name": s.name,
                    "weight": round(s.weight, 4),
                    "span": [s.start, s.end],
                    "text": s.text,
                }
                for s in self.signals
            ],
        }


UNKNOWN = Verdict(status=Status.UNKNOWN)


def answer_choice(choices: Sequence[Verdict]) -> tuple[int, Verdict]:
    """The choice whose verdict is the answer's (`n` > 1), whole or streamed: its index among
    `choices` and its verdict. The worst: a censored one before any other, then the highest
    score, the first of equals; (0, `UNKNOWN`) for none. Its text is the answer audited."""
    index = max(
        range(len(choices)), key=lambda i: (choices[i].censored, choices[i].score), default=None
    )
    return (0, UNKNOWN) if index is None else (index, choices[index])


class StreamStep(NamedTuple):
    """After a delta: release text up to `released` characters of the answer, hold, or stop.

    A named tuple, not a frozen dataclass: one is made per streamed delta, in a third of the time.
    """

    decision: Decision
    released: int = 0
    verdict: Verdict | None = None


class StreamJudge(Protocol):
    """Judges one streamed answer delta by delta, in time linear in the answer's length."""

    def feed(self, content: str = "", reasoning: str = "") -> StreamStep: ...

    def finish(self, finish_reason: str | None = None, has_tool_calls: bool = False) -> Verdict: ...


class Detector(Protocol):
    """Judges whole answers and opens incremental judges for streams."""

    def judge(self, exchange: Exchange) -> Verdict: ...

    def open_stream(self, exchange: Exchange) -> StreamJudge: ...

"""A detector that judges nothing: every answer is `unknown` and streams are released at once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from proxy.detect.verdict import UNKNOWN, Decision, Exchange, StreamStep, Verdict


class NullStreamJudge:
    """Releases every delta as it comes."""

    def __init__(self) -> None:
        self._length = 0

    def feed(self, content: str = "", reasoning: str = "") -> StreamStep:
        self._length += len(content)
        return StreamStep(Decision.RELEASE, released=self._length)

    def finish(self, finish_reason: str | None = None, has_tool_calls: bool = False) -> Verdict:
        return UNKNOWN


class NullDetector:
    """The no-op detector, for pass-through deployments and tests of the request path."""

    def judge(self, exchange: Exchange) -> Verdict:
        return UNKNOWN

    topic_names: tuple[str, ...] = ()

    def request_topics(self, messages: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
        return ()

    def open_stream(self, exchange: Exchange) -> NullStreamJudge:
        return NullStreamJudge()

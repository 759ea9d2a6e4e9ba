"""The detector behind a guard: when it fails on an answer, the answer passes, unjudged.

A bug in the detector (or an answer it cannot read) must not take the proxy down with it, nor
fail the user's request: the answer goes out as if no detector ran, the request is counted as
`bypassed` and `candor_detector_errors_total` rises (the alert `CandorDetectorErrors`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from proxy.detect import Decision, Exchange, Signal, Status, StreamJudge, StreamStep, Verdict
from proxy.outcome import DETECTOR_ERROR
from proxy.pipeline.types import JudgingDetector

log = logging.getLogger(__name__)

# The verdict on an answer the detector failed on: unknown, and named so.
BYPASSED = Verdict(Status.UNKNOWN, signals=(Signal(DETECTOR_ERROR, 0.0, -1, -1, ""),))


class FailOpenDetector:
    """`detector`, but an exception judging an answer is logged and the answer passes."""

    def __init__(self, detector: JudgingDetector) -> None:
        self._detector = detector

    @property
    def inner(self) -> JudgingDetector:
        return self._detector

    @property
    def topic_names(self) -> tuple[str, ...]:
        return self._detector.topic_names

    def request_topics(self, messages: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
        return self._detector.request_topics(messages)

    def judge(self, exchange: Exchange) -> Verdict:
        try:
            return self._detector.judge(exchange)
        except Exception:
            log.exception("detector failed on an answer: it passes unjudged (fail-open)")
            return BYPASSED

    def open_stream(self, exchange: Exchange) -> StreamJudge:
        return _FailOpenStreamJudge(self._detector.open_stream(exchange))


class _FailOpenStreamJudge:
    """A stream judge that, once the detector fails, releases everything and judges no more."""

    def __init__(self, judge: StreamJudge) -> None:
        self._judge = judge
        self._failed = False
        self._length = 0

    def feed(self, content: str = "", reasoning: str = "") -> StreamStep:
        self._length += len(content)
        if not self._failed:
            try:
                return self._judge.feed(content, reasoning)
            except Exception:
                log.exception("detector failed on a stream: it passes unjudged (fail-open)")
                self._failed = True
        return StreamStep(Decision.RELEASE, released=self._length)

    def finish(self, finish_reason: str | None = None, has_tool_calls: bool = False) -> Verdict:
        if self._failed:
            return BYPASSED
        try:
            return self._judge.finish(finish_reason, has_tool_calls)
        except Exception:
            log.exception("detector failed on a stream's end: it passes unjudged (fail-open)")
            return BYPASSED

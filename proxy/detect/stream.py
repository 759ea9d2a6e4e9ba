"""The incremental judge: holds the first window of an answer, then releases or stops.

Per delta it only appends and looks for the end of a leading `<think>` block near the new
text; the first window is scored once (that score also settles the hold bound), and the whole
answer once more when the stream finishes. A leading `<think>` block is held until it closes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxy.detect.refusal import sentence_size
from proxy.detect.text import THINK_CLOSE, THINK_OPEN, split_think
from proxy.detect.verdict import Decision, Exchange, StreamStep, Verdict

if TYPE_CHECKING:
    from proxy.detect.engine import CandorDetector

# Enum members read once: `Decision.X` costs a class attribute lookup on every delta.
_HOLD = Decision.HOLD
_RELEASE = Decision.RELEASE
_CENSORED = Decision.CENSORED
# Characters of held text read again with each delta while steering is watched, so that a
# political word split across deltas is still found.
_STEER_OVERLAP = 24


class CandorStreamJudge:
    """Judges one streamed answer delta by delta (see the module docstring)."""

    def __init__(self, detector: CandorDetector, exchange: Exchange) -> None:
        self._detector = detector
        self._req = detector.request(exchange.messages)
        self._settings = detector.parts.stream
        self._thresholds = detector.parts.scorer.thresholds
        self._wants_json = exchange.wants_json
        self._has_tool_calls = exchange.has_tool_calls
        self._parts: list[str] = []
        self._length = 0
        self._reasoning = -1
        self._mode = "unknown"  # unknown -> think | plain
        self._visible_start = 0
        self._released = 0
        self._decision = _HOLD
        self._carry = ""
        self._early: float | None = None
        self._early_verdict: Verdict | None = None
        self._stopped: Verdict | None = None
        self._steering = False  # held past the first window: it may steer away (`may_steer`)
        self._steer_size = 0  # how long the held text reads (`sentence_size`)
        self._steer_tail = ""  # its last characters, read again with the next delta

    def _text(self) -> str:
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    def _track_think(self, content: str) -> None:
        window = self._carry + content
        if self._mode == "unknown":
            # Undecided only while the answer is a few characters of whitespace and tag.
            window = self._text()
            head = window.lstrip()
            if len(head) < len(THINK_OPEN) and THINK_OPEN.startswith(head):
                return
            self._mode = "think" if head.startswith(THINK_OPEN) else "plain"
        if self._mode == "think":
            idx = window.find(THINK_CLOSE)
            if idx >= 0:
                self._visible_start = self._length - len(window) + idx + len(THINK_CLOSE)
                self._mode = "plain"
            else:
                self._carry = window[-(len(THINK_CLOSE) - 1) :]

    def feed(self, content: str = "", reasoning: str = "") -> StreamStep:
        """Take one delta; say release (up to `released` chars), hold, or censored."""
        if reasoning:
            self._reasoning = max(self._reasoning, 0) + len(reasoning)
        if content:
            self._parts.append(content)
            self._length += len(content)
        decision = self._decision
        if decision is _RELEASE:
            self._released = self._length
            return StreamStep(_RELEASE, self._released)
        if decision is _CENSORED:
            return StreamStep(_CENSORED, self._released, self._stopped)
        if content and self._mode != "plain":
            self._track_think(content)
        if self._mode != "plain":
            return StreamStep(_HOLD, self._released)
        if self._steering:
            return self._watch_steering(content)
        visible = self._length - self._visible_start
        window = self._settings.window
        if self._early is None and visible >= window:
            return self._checkpoint(self._thresholds.stop, self._thresholds.release)
        if self._early is not None and visible >= self._settings.max_hold_chars:
            return self._settle()
        return StreamStep(_HOLD, self._released)

    def _settle(self) -> StreamStep:
        """At the hold bound, the first-window score decides against the `settle` threshold."""
        assert self._early is not None and self._early_verdict is not None
        if self._early >= self._thresholds.settle:
            self._decision = _CENSORED
            self._stopped = self._early_verdict
            return StreamStep(_CENSORED, self._released, self._stopped)
        return self._release()

    def _checkpoint(self, stop: float, release: float) -> StreamStep:
        start = self._visible_start
        text = self._text()
        visible = text[start : start + self._settings.window]
        state = split_think(text[:start]).state if start else "none"
        score, verdict = self._detector.early_score(self._req, visible, state, self._reasoning)
        self._early = score
        self._early_verdict = verdict
        if score >= stop:
            self._decision = _CENSORED
            self._stopped = verdict
            return StreamStep(_CENSORED, self._released, verdict)
        if score < release:
            if self._detector.may_steer(self._req, visible):
                # Released, it could not be taken back if its end shows it steers away.
                self._steering = True
                self._steer_size = sentence_size(text[start:])
                self._steer_tail = text[max(start, len(text) - _STEER_OVERLAP) :]
                return StreamStep(_HOLD, self._released)
            return self._release()
        return StreamStep(_HOLD, self._released)

    def _release(self) -> StreamStep:
        self._decision = _RELEASE
        self._released = self._length
        return StreamStep(_RELEASE, self._released)

    def _watch_steering(self, content: str) -> StreamStep:
        """Hold an answer that may steer away until it says something or reads `guide_chars`
        long (the bound of the readings that tell a travel guide), and never past the hold
        bound; only the new text (and a short overlap) is read."""
        self._steer_size += sentence_size(content)
        new = self._steer_tail + content
        self._steer_tail = new[-_STEER_OVERLAP:]
        rule = self._detector.parts.short_refusal
        held = self._length - self._visible_start
        if (
            self._steer_size >= max(rule.steer_chars, rule.guide_chars)
            or held >= self._settings.max_hold_chars
            or self._detector.says_more(new)
        ):
            self._steering = False
            return self._release()
        return StreamStep(_HOLD, self._released)

    @property
    def released(self) -> int:
        """Characters of content released so far."""
        return self._released

    def finish(self, finish_reason: str | None = None, has_tool_calls: bool = False) -> Verdict:
        """The whole-answer verdict; it decides any text still held. `has_tool_calls`: the
        stream carried tool calls (its finish reason may not say so: "stop" from some servers)."""
        return self._detector.judge_parts(
            self._req,
            self._text(),
            reasoning_chars=self._reasoning,
            finish_reason=finish_reason,
            has_tool_calls=self._has_tool_calls or has_tool_calls,
            wants_json=self._wants_json,
        )

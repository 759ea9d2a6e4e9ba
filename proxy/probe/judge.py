"""Judging one probe answer: with Candor's own `candor` object when the endpoint is Candor,
else with the shipped detector. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from proxy.answers import choice_exchanges, is_provider_block, request_exchange
from proxy.detect import Category, Detector, Exchange, ProviderError
from proxy.errors import UpstreamBadResponse
from proxy.probe.client import ProbeResponse
from proxy.probe.suite import ProbePrompt

JudgeMode = Literal["auto", "detector", "candor"]
ANSWER_EXCERPT = 300


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One prompt's fate. `censored` is None when no answer could be judged (an error). A
    non-answer (only reasoning, cut off, garbled) is `unanswered`, not censored: the censorship
    rate counts what the model would not say, not what it failed to finish."""

    prompt: ProbePrompt
    censored: bool | None
    category: str
    score: float
    judged_by: str
    answer: str
    status: int
    error: str | None
    attempts: int
    seconds: float
    candor_action: str | None = None

    @property
    def unanswered(self) -> bool:
        return self.category == Category.NON_ANSWER.value

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.prompt.id,
            "topic": self.prompt.topic,
            "kind": self.prompt.kind,
            "language": self.prompt.language,
            "prompt": self.prompt.text,
            "censored": self.censored,
            "unanswered": self.unanswered,
            "category": self.category,
            "score": round(self.score, 4),
            "judged_by": self.judged_by,
            "answer_excerpt": self.answer[:ANSWER_EXCERPT],
            "status": self.status,
            "error": self.error,
            "attempts": self.attempts,
            "seconds": round(self.seconds, 3),
            "candor_action": self.candor_action,
        }


def judge(
    prompt: ProbePrompt,
    request: dict[str, Any],
    response: ProbeResponse,
    detector: Detector | None,
    mode: JudgeMode = "auto",
) -> ProbeResult:
    """The verdict on one answer; a provider's content-filter error counts as censored."""
    body = response.body if isinstance(response.body, dict) else {}

    def result(
        censored: bool | None, category: str, score: float, by: str, answer: str = ""
    ) -> ProbeResult:
        if category == Category.NON_ANSWER.value:
            censored = False
        return ProbeResult(
            prompt,
            censored,
            category,
            score,
            by,
            answer,
            response.status,
            response.error,
            response.attempts,
            response.seconds,
            _candor_action(body),
        )

    block = _provider_error(response.status, body)
    if response.status != 200 and block is None:
        return result(None, "error", 0.0, "none")
    candor = body.get("candor")
    if mode != "detector" and isinstance(candor, dict) and "verdict" in candor:
        censored = candor.get("verdict") == "censored"
        category = str(candor.get("category") or Category.NONE.value)
        return result(censored, category, float(candor.get("score") or 0.0), "candor", _text(body))
    if mode == "candor":
        return result(None, "error", 0.0, "none")
    if detector is None:
        raise ValueError("judging without Candor's verdict needs a detector")
    base = request_exchange(request)
    if block is not None:
        exchange = Exchange(messages=base.messages, provider_error=block)
    else:
        try:
            exchanges = choice_exchanges(base, body)
        except UpstreamBadResponse:
            exchanges = []
        if not exchanges:
            return result(None, "error", 0.0, "none")
        exchange = exchanges[0]
    verdict = detector.judge(exchange)
    return result(
        verdict.censored, verdict.category.value, verdict.score, "detector", exchange.answer
    )


def _provider_error(status: int, body: dict[str, Any]) -> ProviderError | None:
    error = body.get("error")
    if not isinstance(error, dict):
        return None
    code = error.get("code") or error.get("type")
    message = str(error.get("message") or "")
    if not is_provider_block(status, code if isinstance(code, str) else None, message):
        return None
    return ProviderError(
        status=status, code=code if isinstance(code, str) else None, message=message
    )


def _text(body: dict[str, Any]) -> str:
    choices = body.get("choices") or [{}]
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    return content if isinstance(content, str) else ""


def _candor_action(body: dict[str, Any]) -> str | None:
    candor = body.get("candor")
    action = candor.get("action") if isinstance(candor, dict) else None
    return action if isinstance(action, str) else None

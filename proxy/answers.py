"""Reading the parts the detector judges out of OpenAI-shaped requests and answers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from proxy.detect import Exchange

REASONING_FIELDS = ("reasoning_content", "reasoning")


def wants_json(body: Mapping[str, Any]) -> bool:
    response_format = body.get("response_format")
    return isinstance(response_format, dict) and response_format.get("type") in (
        "json_object",
        "json_schema",
    )


def request_exchange(body: Mapping[str, Any]) -> Exchange:
    """The request side of an exchange, before any answer."""
    messages = body.get("messages")
    return Exchange(
        messages=messages if isinstance(messages, Sequence) else (),
        wants_json=wants_json(body),
    )


def choice_exchanges(request: Exchange, response: Mapping[str, Any]) -> list[Exchange]:
    """One exchange per choice of a whole (non-streamed) answer."""
    exchanges = []
    for choice in response.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        message = choice.get("message") or {}
        exchanges.append(
            Exchange(
                messages=request.messages,
                answer=_text(message.get("content")),
                reasoning=_reasoning(message),
                finish_reason=choice.get("finish_reason"),
                has_tool_calls=bool(message.get("tool_calls") or message.get("function_call")),
                wants_json=request.wants_json,
            )
        )
    return exchanges


@dataclass(slots=True)
class Delta:
    """The judged parts of one stream chunk for the first choice."""

    content: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    has_tool_calls: bool = False


def chunk_delta(chunk: Mapping[str, Any]) -> Delta:
    """What the first choice of a stream chunk adds. Other choices pass unjudged."""
    for choice in chunk.get("choices") or ():
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            delta = choice.get("delta") or {}
            return Delta(
                content=_text(delta.get("content")),
                reasoning=_text(_reasoning(delta)),
                finish_reason=choice.get("finish_reason"),
                has_tool_calls=bool(delta.get("tool_calls") or delta.get("function_call")),
            )
    return Delta()


def _reasoning(message: Mapping[str, Any]) -> str | None:
    for field in REASONING_FIELDS:
        value = message.get(field)
        if isinstance(value, str):
            return value
    return None


def message_text(message: Mapping[str, Any]) -> str:
    """The text of one chat message (string content or text parts)."""
    return _text(message.get("content"))


# Codes and phrases by which providers say their own filter stopped the request.
PROVIDER_BLOCK_MARKERS = (
    "data_inspection_failed",
    "content_filter",
    "content_policy_violation",
    "content exists risk",
    "inappropriate content",
    "sensitive",
)


def is_provider_block(status: int, code: str | None, message: str) -> bool:
    """Whether an upstream 4xx is the provider's content filter rather than a client error."""
    if status not in (400, 403, 422, 451):
        return False
    haystack = f"{code or ''} {message}".casefold()
    return any(marker in haystack for marker in PROVIDER_BLOCK_MARKERS)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        # A client or an upstream may send a part whose text is not a string ("text": null).
        return "".join(
            text
            for part in content
            if isinstance(part, dict)
            and part.get("type") == "text"
            and isinstance(text := part.get("text"), str)
        )
    return ""

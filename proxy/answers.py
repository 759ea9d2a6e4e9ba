"""Reading the parts the detector judges out of OpenAI-shaped requests and answers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from proxy.detect import Exchange
from proxy.errors import UpstreamBadResponse

REASONING_FIELDS = ("reasoning_content", "reasoning")
# OpenAI's largest `n`: an answer with a choice index past it is not of the OpenAI shape.
MAX_CHOICES = 128


def wants_json(body: Mapping[str, Any]) -> bool:
    response_format = body.get("response_format")
    return isinstance(response_format, dict) and response_format.get("type") in (
        "json_object",
        "json_schema",
    )


def wants_usage(body: Mapping[str, Any]) -> bool:
    """Whether a streamed request asked for a usage chunk (`stream_options.include_usage`)."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def with_usage_chunk(body: dict[str, Any]) -> dict[str, Any]:
    """`body` asking for a stream's usage chunk (as the client's other stream options say)."""
    if wants_usage(body):
        return body
    options = body.get("stream_options")
    return {**body, "stream_options": {**(options or {}), "include_usage": True}}


def is_usage_only(chunk: Mapping[str, Any]) -> bool:
    """The last chunk of a stream that asked for usage: no choices, only the usage."""
    return not chunk.get("choices") and isinstance(chunk.get("usage"), dict)


def request_exchange(body: Mapping[str, Any]) -> Exchange:
    """The request side of an exchange, before any answer."""
    messages = body.get("messages")
    return Exchange(
        messages=messages if isinstance(messages, Sequence) else (),
        wants_json=wants_json(body),
    )


def choice_exchanges(request: Exchange, response: Mapping[str, Any]) -> list[Exchange]:
    """One exchange per choice of a whole (non-streamed) answer: every choice that came, however
    many the request asked for (each reaches the client, so each is judged).

    Raises `UpstreamBadResponse` when the answer is JSON but not of the OpenAI shape: it is
    the upstream's fault, and a 502 (or the outage chain) is the answer to it, not a crash.
    """
    exchanges = []
    choices = _choices(response)
    if len(choices) > MAX_CHOICES:
        raise UpstreamBadResponse(f"upstream sent more than {MAX_CHOICES} choices")
    for choice in choices:
        choice_index(choice)
        message = _part(choice, "message")
        exchanges.append(
            Exchange(
                messages=request.messages,
                answer=_text(message.get("content")),
                reasoning=_reasoning(message),
                finish_reason=_finish_reason(choice),
                has_tool_calls=bool(message.get("tool_calls") or message.get("function_call")),
                wants_json=request.wants_json,
            )
        )
    return exchanges


def choice_count(body: Mapping[str, Any]) -> int:
    """How many choices a request asks for: its `n`, 1 when absent or not a positive integer
    (at most `MAX_CHOICES`: an upstream refuses more)."""
    n = body.get("n")
    return min(n, MAX_CHOICES) if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1


def choice_index(choice: Mapping[str, Any]) -> int:
    """A choice's `index` (0 when absent). Raises `UpstreamBadResponse` when it is not an
    integer from 0 to `MAX_CHOICES` - 1."""
    index = choice.get("index", 0)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < MAX_CHOICES:
        raise UpstreamBadResponse(
            f"upstream sent a choice `index` that is not an integer from 0 to {MAX_CHOICES - 1}"
        )
    return index


@dataclass(slots=True)
class Delta:
    """The judged parts of one stream chunk for one choice (its `index`)."""

    index: int = 0
    content: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    has_tool_calls: bool = False


def chunk_deltas(chunk: Mapping[str, Any]) -> list[Delta]:
    """What each choice (by `index`) of a stream chunk adds: every choice, however many the
    request asked for (each reaches the client, so each is judged).

    Raises `UpstreamBadResponse` on a chunk that is JSON but not of the OpenAI shape (a choice
    index that is not an integer from 0 to `MAX_CHOICES` - 1 included).
    """
    deltas = []
    for choice in _choices(chunk):
        index = choice_index(choice)
        delta = _part(choice, "delta")
        deltas.append(
            Delta(
                index=index,
                content=_text(delta.get("content")),
                reasoning=_text(_reasoning(delta)),
                finish_reason=_finish_reason(choice),
                has_tool_calls=bool(delta.get("tool_calls") or delta.get("function_call")),
            )
        )
    return deltas


def answer_usage(answer: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The `usage` a whole answer or a stream chunk reports (None: absent or not an object)."""
    usage = answer.get("usage")
    return usage if isinstance(usage, dict) else None


def _choices(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    choices = answer.get("choices")
    if choices is None:
        return []
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise UpstreamBadResponse("upstream sent `choices` that is not a list of objects")
    return choices


def _part(choice: Mapping[str, Any], name: str) -> dict[str, Any]:
    part = choice.get(name)
    if part is None:
        return {}
    if not isinstance(part, dict):
        raise UpstreamBadResponse(f"upstream sent a choice whose `{name}` is not an object")
    return part


def _finish_reason(choice: Mapping[str, Any]) -> str | None:
    reason = choice.get("finish_reason")
    if reason is not None and not isinstance(reason, str):
        raise UpstreamBadResponse("upstream sent a `finish_reason` that is not a string")
    return reason


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

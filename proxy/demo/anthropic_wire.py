"""Anthropic Messages API shapes for the fake upstream: messages, stream events, errors.

Lets litellm's `anthropic/` provider be exercised against the same scripts as the OpenAI
endpoint. Pure functions from a scripted `Answer` to JSON-ready dicts.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import orjson

from proxy.demo.scripts import Answer, Chunking, ToolCall, count_tokens, split_pieces

JSON = dict[str, Any]
THINKING_SIGNATURE = "c2lnbmF0dXJlLWRlbW8="

_STOP_REASONS = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "length": "max_tokens",
    "content_filter": "refusal",
}


def new_message_id() -> str:
    """A fresh `msg_...` id."""
    return f"msg_{uuid.uuid4().hex[:24]}"


def stop_reason(answer: Answer) -> str:
    """Anthropic's stop reason for the answer's OpenAI finish reason."""
    return _STOP_REASONS.get(answer.resolved_finish_reason, "end_turn")


def error_body(message: str, error_type: str) -> JSON:
    """Anthropic's `{"type": "error", "error": {...}}` body."""
    return {"type": "error", "error": {"type": error_type, "message": message}}


def _tool_use_id(call: ToolCall, index: int) -> str:
    return call.id or f"toolu_demo_{index}"


def _tool_input(call: ToolCall) -> Any:
    try:
        return orjson.loads(call.arguments)
    except orjson.JSONDecodeError:
        return {}


def content_blocks(answer: Answer) -> list[JSON]:
    """The `content` list of a whole message: thinking, text, then tool_use blocks."""
    blocks: list[JSON] = []
    if answer.reasoning:
        blocks.append(
            {"type": "thinking", "thinking": answer.reasoning, "signature": THINKING_SIGNATURE}
        )
    if answer.content or not answer.tool_calls:
        blocks.append({"type": "text", "text": answer.content})
    blocks.extend(
        {"type": "tool_use", "id": _tool_use_id(c, i), "name": c.name, "input": _tool_input(c)}
        for i, c in enumerate(answer.tool_calls)
    )
    return blocks


def output_tokens(answer: Answer) -> int:
    """Token estimate of everything the answer outputs."""
    total = count_tokens(answer.content) + count_tokens(answer.reasoning or "")
    return total + sum(count_tokens(c.arguments) + 2 for c in answer.tool_calls)


def message(answer: Answer, model: str, message_id: str, input_tokens: int) -> JSON:
    """A whole (non-streamed) Messages API response."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content_blocks(answer),
        "stop_reason": stop_reason(answer),
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens(answer)},
    }


def _block_events(index: int, start: JSON, deltas: Iterator[JSON]) -> Iterator[JSON]:
    yield {"type": "content_block_start", "index": index, "content_block": start}
    for delta in deltas:
        yield {"type": "content_block_delta", "index": index, "delta": delta}
    yield {"type": "content_block_stop", "index": index}


def _thinking_deltas(text: str, chunking: Chunking) -> Iterator[JSON]:
    for piece in split_pieces(text, chunking):
        yield {"type": "thinking_delta", "thinking": piece}
    yield {"type": "signature_delta", "signature": THINKING_SIGNATURE}


def _text_deltas(text: str, chunking: Chunking) -> Iterator[JSON]:
    for piece in split_pieces(text, chunking):
        yield {"type": "text_delta", "text": piece}


def _json_deltas(arguments: str, chunking: Chunking) -> Iterator[JSON]:
    for piece in split_pieces(arguments, chunking):
        yield {"type": "input_json_delta", "partial_json": piece}


def _content_events(answer: Answer, chunking: Chunking) -> Iterator[JSON]:
    index = 0
    if answer.reasoning:
        thinking: JSON = {"type": "thinking", "thinking": ""}
        yield from _block_events(index, thinking, _thinking_deltas(answer.reasoning, chunking))
        index += 1
    if answer.content or not answer.tool_calls:
        text: JSON = {"type": "text", "text": ""}
        yield from _block_events(index, text, _text_deltas(answer.content, chunking))
        index += 1
    for i, call in enumerate(answer.tool_calls):
        tool: JSON = {"type": "tool_use", "id": _tool_use_id(call, i), "name": call.name}
        tool["input"] = {}
        yield from _block_events(index, tool, _json_deltas(call.arguments, chunking))
        index += 1


def stream_events(
    answer: Answer, model: str, message_id: str, input_tokens: int, chunking: Chunking
) -> Iterator[JSON]:
    """Every event of a streamed Messages API response, in order."""
    start = message(answer, model, message_id, input_tokens)
    start.update(content=[], stop_reason=None)
    start["usage"] = {"input_tokens": input_tokens, "output_tokens": 1}
    yield {"type": "message_start", "message": start}
    yield {"type": "ping"}
    yield from _content_events(answer, chunking)
    yield {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason(answer), "stop_sequence": None},
        "usage": {"output_tokens": output_tokens(answer)},
    }
    yield {"type": "message_stop"}

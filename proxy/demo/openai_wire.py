"""OpenAI chat-completions shapes for the fake upstream: completions, stream chunks, errors.

Pure functions from a scripted `Answer` to JSON-ready dicts that validate against OpenAI's
published schemas (`refusal` and `logprobs` present, null where unused).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from proxy.demo.scripts import Answer, Chunking, ToolCall, count_tokens, split_pieces

SYSTEM_FINGERPRINT = "fp_candor_demo"
JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class CompletionParams:
    """The request fields that shape the response."""

    model: str
    n: int = 1
    logprobs: bool = False
    top_logprobs: int = 0
    include_usage: bool = False
    prompt_tokens: int = 0

    @classmethod
    def from_body(cls, body: Mapping[str, Any], prompt_tokens: int) -> CompletionParams:
        """Read model, n, logprobs, top_logprobs and stream_options.include_usage."""
        options = body.get("stream_options")
        include_usage = isinstance(options, Mapping) and options.get("include_usage") is True
        n = body.get("n")
        top = body.get("top_logprobs")
        return cls(
            model=str(body.get("model", "")),
            n=n if isinstance(n, int) and n > 0 else 1,
            logprobs=body.get("logprobs") is True,
            top_logprobs=top if isinstance(top, int) and top > 0 else 0,
            include_usage=include_usage,
            prompt_tokens=prompt_tokens,
        )


def new_completion_id() -> str:
    """A fresh `chatcmpl-...` id."""
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def tool_call_id(call: ToolCall, index: int) -> str:
    """The call's own id, or a deterministic `call_...` one."""
    return call.id or f"call_demo_{index}"


def error_envelope(
    message: str, error_type: str, code: str | None, param: str | None = None
) -> JSON:
    """OpenAI's `{"error": {...}}` body."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def token_logprobs(text: str, top: int) -> list[JSON]:
    """Plausible, deterministic per-token logprobs for `text`."""
    entries: list[JSON] = []
    for i, token in enumerate(split_pieces(text, Chunking.TOKEN)):
        logprob = -round(0.002 + (i % 7) * 0.11, 4)
        alternatives = [{"token": token, "logprob": logprob, "bytes": list(token.encode())}]
        for k in range(1, top):
            alt = f"{token}{'~' * k}"
            alternatives.append(
                {"token": alt, "logprob": round(logprob - 1.5 * k, 4), "bytes": list(alt.encode())}
            )
        entries.append(
            {
                "token": token,
                "logprob": logprob,
                "bytes": list(token.encode()),
                "top_logprobs": alternatives[:top],
            }
        )
    return entries


def usage(answer: Answer, params: CompletionParams) -> JSON:
    """Token counts for `n` copies of the answer."""
    per_choice = count_tokens(answer.content) + count_tokens(answer.reasoning or "")
    per_choice += sum(count_tokens(c.arguments) + 2 for c in answer.tool_calls)
    completion = per_choice * params.n
    reasoning = count_tokens(answer.reasoning or "") * params.n
    return {
        "prompt_tokens": params.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": params.prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def response_message(answer: Answer) -> JSON:
    """The `message` object of a non-streamed choice."""
    message: JSON = {
        "role": "assistant",
        "content": answer.content if answer.content or not answer.tool_calls else None,
        "refusal": None,
        "annotations": [],
    }
    if answer.reasoning is not None:
        message["reasoning_content"] = answer.reasoning
    if answer.tool_calls:
        message["tool_calls"] = [
            {
                "id": tool_call_id(call, i),
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for i, call in enumerate(answer.tool_calls)
        ]
    return message


def completion(answer: Answer, params: CompletionParams, completion_id: str, created: int) -> JSON:
    """A whole `chat.completion` object with `n` identical choices."""
    logprobs = (
        {"content": token_logprobs(answer.content, params.top_logprobs), "refusal": None}
        if params.logprobs
        else None
    )
    choices = [
        {
            "index": i,
            "message": response_message(answer),
            "logprobs": logprobs,
            "finish_reason": answer.resolved_finish_reason,
        }
        for i in range(params.n)
    ]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": params.model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "service_tier": "default",
        "choices": choices,
        "usage": usage(answer, params),
    }


class ChunkFactory:
    """Builds the `chat.completion.chunk` objects of one streamed response."""

    def __init__(self, params: CompletionParams, completion_id: str, created: int) -> None:
        self._params = params
        self._id = completion_id
        self._created = created

    def chunk(self, choices: list[JSON], usage_value: JSON | None = None) -> JSON:
        """One chunk around the given choices."""
        out: JSON = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._params.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": choices,
        }
        if self._params.include_usage:
            out["usage"] = usage_value
        return out

    def delta(self, index: int, delta: JSON, finish: str | None = None) -> JSON:
        """A chunk with one choice carrying `delta`."""
        choice: JSON = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        if self._params.logprobs and isinstance(delta.get("content"), str) and delta["content"]:
            choice["logprobs"] = {
                "content": token_logprobs(delta["content"], self._params.top_logprobs),
                "refusal": None,
            }
        return self.chunk([choice])


def _tool_call_deltas(calls: Sequence[ToolCall], chunking: Chunking) -> Iterator[JSON]:
    for i, call in enumerate(calls):
        head = {
            "index": i,
            "id": tool_call_id(call, i),
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        yield {"tool_calls": [head]}
        for piece in split_pieces(call.arguments, chunking):
            yield {"tool_calls": [{"index": i, "function": {"arguments": piece}}]}


def stream_deltas(answer: Answer, chunking: Chunking) -> Iterator[JSON]:
    """The deltas of one choice after the role chunk: reasoning, content, then tool calls."""
    if answer.reasoning is not None:
        pieces = split_pieces(answer.reasoning, chunking) or [""]
        for piece in pieces:
            yield {"content": None, "reasoning_content": piece}
    for piece in split_pieces(answer.content, chunking):
        yield {"content": piece}
    yield from _tool_call_deltas(answer.tool_calls, chunking)


def stream_chunks(
    answer: Answer, params: CompletionParams, chunking: Chunking, completion_id: str, created: int
) -> Iterator[JSON]:
    """Every chunk of a streamed response, in order, for `n` choices."""
    factory = ChunkFactory(params, completion_id, created)
    for i in range(params.n):
        yield factory.delta(i, {"role": "assistant", "content": ""})
    for delta in stream_deltas(answer, chunking):
        for i in range(params.n):
            yield factory.delta(i, delta)
    for i in range(params.n):
        yield factory.delta(i, {}, answer.resolved_finish_reason)
    if params.include_usage:
        yield factory.chunk([], usage(answer, params))


def models_list(names: Sequence[str], owners: Mapping[str, str], created: int) -> JSON:
    """The `GET /v1/models` body."""
    data = [
        {"id": name, "object": "model", "created": created, "owned_by": owners.get(name, "demo")}
        for name in names
    ]
    return {"object": "list", "data": data}

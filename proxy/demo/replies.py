"""From a request body and its script to a `Reply`: status, headers, body frames and a fault.

Pure: the server in `proxy.demo.upstream` records the request, builds a reply here, and
`proxy.demo.delivery` writes it to the socket.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from proxy.demo import anthropic_wire, openai_wire
from proxy.demo.scripts import Answer, Fault, FaultKind, Script, prompt_tokens

ScriptLookup = Callable[[str], Script | None]

SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
JSON_HEADERS = {"Content-Type": "application/json"}
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


@dataclass(frozen=True, slots=True)
class Reply:
    """Everything needed to send one answer.

    `frames` are written in order with `delay` seconds between them; `fault` says how the
    delivery goes wrong; `broken` is the malformed frame a `MALFORMED_SSE` fault inserts.
    """

    status: int
    headers: Mapping[str, str]
    frames: Sequence[bytes]
    fault: Fault | None = None
    delay: float = 0.0
    broken: bytes = b""


def json_reply(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Reply:
    """A whole JSON body with no fault."""
    return Reply(status, {**JSON_HEADERS, **(headers or {})}, [orjson.dumps(body)])


def split_body(body: bytes, fault: Fault | None) -> tuple[list[bytes], Fault | None]:
    """Cut a whole JSON body in two frames, so mid-body faults happen after the first half.

    `INVALID_JSON` (and `MALFORMED_SSE`) keep only the first half: a complete 200 response
    whose body does not parse.
    """
    if fault is None or fault.kind is FaultKind.HTTP_ERROR:
        return [body], fault
    half = len(body) // 2
    if fault.kind in (FaultKind.INVALID_JSON, FaultKind.MALFORMED_SSE):
        return [body[:half]], None
    return [body[:half], body[half:]], Fault(fault.kind, seconds=fault.seconds, after_chunks=1)


def invalid_request(body: Any) -> tuple[str, str | None] | None:
    """Why a chat body is unusable, as (message, param), or None when it is fine."""
    if not isinstance(body, dict):
        return "We could not parse the JSON body of your request.", None
    if not isinstance(body.get("model"), str):
        return "you must provide a model parameter", "model"
    if not isinstance(body.get("messages"), list):
        return "Missing required parameter: 'messages'.", "messages"
    return None


def _http_error(answer: Answer) -> Fault | None:
    fault = answer.fault
    return fault if fault is not None and fault.kind is FaultKind.HTTP_ERROR else None


def _delay(script: Script, override: float | None) -> float:
    return override if override is not None else script.token_delay


def chat_reply(body: Any, lookup: ScriptLookup, token_delay: float | None) -> Reply:
    """The reply to `POST /v1/chat/completions`."""
    problem = invalid_request(body)
    if problem is not None:
        envelope = openai_wire.error_envelope(problem[0], "invalid_request_error", None, problem[1])
        return json_reply(400, envelope)
    script = lookup(body["model"])
    if script is None:
        message = f"The model `{body['model']}` does not exist or you do not have access to it."
        envelope = openai_wire.error_envelope(message, "invalid_request_error", "model_not_found")
        return json_reply(404, envelope)
    answer = script.answer(body["messages"])
    error = _http_error(answer)
    if error is not None:
        envelope = openai_wire.error_envelope(error.message, error.error_type, error.code)
        return json_reply(error.status, envelope, error.headers)
    params = openai_wire.CompletionParams.from_body(body, prompt_tokens(body["messages"]))
    cid, created = openai_wire.new_completion_id(), int(time.time())
    if body.get("stream") is True:
        chunks = openai_wire.stream_chunks(answer, params, script.chunking, cid, created)
        frames = [b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]
        broken = b'data: {"id": "' + cid.encode() + b'", "choices": [{"delta": {"content\n\n'
        delay = _delay(script, token_delay)
        return Reply(200, SSE_HEADERS, frames, answer.fault, delay, broken)
    whole = orjson.dumps(openai_wire.completion(answer, params, cid, created))
    frames, fault = split_body(whole, answer.fault)
    return Reply(200, JSON_HEADERS, frames, fault)


def anthropic_frame(event: Mapping[str, Any]) -> bytes:
    """One Anthropic SSE event: `event: <type>` and its `data:` line."""
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def messages_reply(body: Any, lookup: ScriptLookup, token_delay: float | None) -> Reply:
    """The reply to Anthropic's `POST /v1/messages`."""
    problem = invalid_request(body)
    if problem is not None:
        return json_reply(400, anthropic_wire.error_body(problem[0], "invalid_request_error"))
    model = body["model"]
    script = lookup(model)
    if script is None:
        return json_reply(404, anthropic_wire.error_body(f"model: {model}", "not_found_error"))
    answer = script.answer(body["messages"])
    error = _http_error(answer)
    if error is not None:
        error_type = _ANTHROPIC_ERROR_TYPES.get(error.status, "api_error")
        return json_reply(
            error.status, anthropic_wire.error_body(error.message, error_type), error.headers
        )
    tokens = prompt_tokens(body["messages"])
    mid = anthropic_wire.new_message_id()
    if body.get("stream") is True:
        events = anthropic_wire.stream_events(answer, model, mid, tokens, script.chunking)
        frames = [anthropic_frame(e) for e in events]
        broken = b'event: content_block_delta\ndata: {"type": "content_block_delta", "ind\n\n'
        delay = _delay(script, token_delay)
        return Reply(200, SSE_HEADERS, frames, answer.fault, delay, broken)
    whole = orjson.dumps(anthropic_wire.message(answer, model, mid, tokens))
    frames, fault = split_body(whole, answer.fault)
    return Reply(200, JSON_HEADERS, frames, fault)

"""Reading and validating a chat-completion request body."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.requests import Request

from proxy.auth import Principal
from proxy.errors import (
    InvalidRequest,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
)
from proxy.pipeline import ChatRequest
from proxy.wire import json_depth_exceeds

MAX_MESSAGES = 2_000
# The types a web page may POST to another site without asking it first (no CORS preflight):
# refused, so a page cannot make a visitor's browser spend this proxy's upstreams (with
# `auth.mode: none`, nothing else would stop it). A body without a type is read as JSON.
_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"})
MAX_JSON_DEPTH = 64


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The raw body, refused with 413 as soon as it passes `limit` bytes, with 408 when it has
    not all come within `timeout` seconds (a client that trickles it would hold a connection
    and its buffer forever), and with 415 when it is compressed."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is larger than the {limit}-byte limit")
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind in _FORM_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type {kind} is not read: send the JSON body as application/json"
        )
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding[:40]!r} is not supported: send the body uncompressed"
        )
    received = bytearray()
    try:
        async with asyncio.timeout(timeout):
            async for part in request.stream():
                received += part
                if len(received) > limit:
                    raise PayloadTooLarge(f"request body is larger than the {limit}-byte limit")
    except TimeoutError:
        raise RequestTimeout(f"request body not received within {timeout:g} s") from None
    return bytes(received)


def parse_model_request(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> tuple[dict[str, Any], str]:
    """A request body that is a JSON object naming a `model`: the object and the model.

    The depth is read first: orjson parses by recursion and crashes on a deep enough body.
    """
    if json_depth_exceeds(raw, max_depth):
        raise InvalidRequest(f"request body nests arrays or objects deeper than {max_depth} levels")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc.msg}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("you must provide a model parameter", param="model")
    return body, model


def parse_chat_request(
    raw: bytes,
    request_id: str,
    caller: Principal | None = None,
    *,
    max_messages: int = MAX_MESSAGES,
    max_depth: int = MAX_JSON_DEPTH,
) -> ChatRequest:
    """Check only what the proxy needs; every other field goes upstream untouched."""
    body, model = parse_model_request(raw, max_depth)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("`messages` must be a non-empty array", param="messages")
    if len(messages) > max_messages:
        raise InvalidRequest(f"`messages` has more than {max_messages} items", param="messages")
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise InvalidRequest("each message must be an object with a `role`", param="messages")
    if "stream" in body and not isinstance(body["stream"], bool | None):
        raise InvalidRequest("`stream` must be a boolean", param="stream")
    if caller is None:
        return ChatRequest(request_id=request_id, model=model, body=body)
    caller.check_model(model)
    return ChatRequest(
        request_id=request_id,
        model=model,
        body=body,
        policy=caller.policy,
        tenant=caller.tenant,
        key_id=caller.key_id,
    )

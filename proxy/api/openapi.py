"""OpenAPI shapes for the chat route, which reads its raw body and so declares none itself.

A compact subset of OpenAI's CreateChatCompletionRequest: what Candor checks. Every other field
is allowed and reaches the upstream untouched.
"""

from __future__ import annotations

from typing import Any

_MESSAGE: dict[str, Any] = {
    "type": "object",
    "required": ["role"],
    "properties": {"role": {"type": "string"}},
    "additionalProperties": True,
}

CHAT_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        "model": {"type": "string", "minLength": 1},
        "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
        "stream": {"type": ["boolean", "null"]},
    },
    "additionalProperties": True,
}

CHAT_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": CHAT_REQUEST_SCHEMA,
                "example": {"model": "qwen-max", "messages": [{"role": "user", "content": "Hi"}]},
            }
        },
    }
}

ERROR_ENVELOPE: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}

_CANDOR_NOTE: dict[str, Any] = {
    "type": "object",
    "required": ["request_id", "model", "action", "verdict"],
    "properties": {
        "request_id": {"type": "string"},
        "model": {"type": "string"},
        "action": {"type": "string"},
        "verdict": {"type": "string", "enum": ["clean", "censored", "unknown"]},
    },
}

_COMPLETION: dict[str, Any] = {
    "type": "object",
    "required": ["object", "choices", "candor"],
    "properties": {
        "object": {"const": "chat.completion"},
        "choices": {"type": "array"},
        "candor": _CANDOR_NOTE,
    },
}

# Before OpenAPI 3.2 (`itemSchema`), an event stream's `schema` describes one event.
_SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "type": "string",
            "description": "a chat.completion.chunk, then the `candor` chunk and `[DONE]`; or "
            "an error envelope (no `[DONE]`) when the stream fails after its headers",
        }
    },
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_ENVELOPE}}}


CHAT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The judged answer; its `candor` object (a stream's last chunk) says how.",
        "content": {
            "application/json": {"schema": _COMPLETION},
            "text/event-stream": {"schema": _SSE_EVENT},
        },
    },
    400: _error("Malformed body: not JSON, missing model or messages, too many or too deep."),
    401: _error("No valid Candor API key."),
    404: _error("The model is not routed by this proxy."),
    408: _error("The body did not all come within `server.body_timeout`."),
    413: _error("The body is over `server.max_body_bytes`."),
    415: _error("The body is compressed (`Content-Encoding`), or a form or plain text."),
    429: _error("The key's rate limit, or the upstream's own 429 passed through."),
    502: _error("The upstream is unreachable or answered outside the OpenAI protocol."),
    504: _error("The upstream did not answer in time."),
    "default": _error("The upstream's own error status and envelope, passed through."),
}

EMBEDDINGS_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["model", "input"],
                    "properties": {
                        "model": {"type": "string", "minLength": 1},
                        "input": {
                            "oneOf": [
                                {"type": "string", "minLength": 1},
                                {"type": "array", "minItems": 1},
                            ]
                        },
                    },
                    "additionalProperties": True,
                },
                "example": {"model": "text-embedding-v3", "input": "Hi"},
            }
        },
    }
}

EMBEDDINGS_RESPONSES: dict[int | str, dict[str, Any]] = {
    **CHAT_RESPONSES,
    200: {
        "description": "The upstream's embeddings, as it answered them (not judged).",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["data"],
                    "properties": {"data": {"type": "array"}},
                }
            }
        },
    },
    400: _error(
        "Malformed body: not JSON, missing model or input, too deep; or a model served "
        "through litellm."
    ),
}

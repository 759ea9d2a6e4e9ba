"""Validate wire objects against OpenAI's published chat-completions schemas.

The vendored file (tests/vendor/openai_chat_schemas.json) is OpenAPI-flavoured: `nullable: true`
means "or null". Draft 2020-12 ignores that keyword, so it is rewritten to `anyOf [..., null]`
once at load time; internal `#/$defs/...` refs resolve against the same document.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA_FILE = Path(__file__).parent / "vendor" / "openai_chat_schemas.json"


def _openapi_nullable(node: Any) -> Any:
    """Rewrite every `{"nullable": true, ...}` as `{"anyOf": [{...}, {"type": "null"}]}`."""
    if isinstance(node, list):
        return [_openapi_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _openapi_nullable(value) for key, value in node.items()}
    if out.pop("nullable", False) is True:
        description = out.pop("description", None)
        wrapped: dict[str, Any] = {"anyOf": [out, {"type": "null"}]}
        if description is not None:
            wrapped["description"] = description
        return wrapped
    return out


@cache
def _document() -> dict[str, Any]:
    with SCHEMA_FILE.open(encoding="utf-8") as handle:
        document: dict[str, Any] = _openapi_nullable(json.load(handle))
    return document


@cache
def validator(name: str) -> Draft202012Validator:
    """A validator for `#/$defs/<name>` whose refs resolve inside the vendored document."""
    document = _document()
    if name not in document["$defs"]:
        raise KeyError(f"{name} is not in {SCHEMA_FILE.name}")
    schema = {"$defs": document["$defs"], "$ref": f"#/$defs/{name}"}
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validate(name: str, obj: Any) -> None:
    """Raise `jsonschema.ValidationError` (the most relevant one) if `obj` is not a `name`."""
    errors = sorted(validator(name).iter_errors(obj), key=lambda e: e.path)
    if errors:
        raise errors[0]


def validate_completion(obj: Any) -> None:
    """Validate a non-streamed `chat.completion` object (CreateChatCompletionResponse)."""
    validate("CreateChatCompletionResponse", obj)


def validate_chunk(obj: Any) -> None:
    """Validate one `chat.completion.chunk` object (CreateChatCompletionStreamResponse)."""
    validate("CreateChatCompletionStreamResponse", obj)


def validate_error(obj: Any) -> None:
    """Validate an OpenAI error envelope (ErrorResponse)."""
    validate("ErrorResponse", obj)


def validate_models(obj: Any) -> None:
    """Validate a `GET /v1/models` body (ListModelsResponse)."""
    validate("ListModelsResponse", obj)

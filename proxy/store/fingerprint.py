"""A stable name for a conversation, so a prompt a model censored is recognised next time."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

_ROLES = frozenset({"system", "developer", "user", "assistant"})


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, Mapping)]
        return " ".join(p for p in parts if isinstance(p, str))
    return ""


def _normalise(text: str) -> str:
    return " ".join(text.casefold().split())


def conversation_fingerprint(model: str, messages: Sequence[Mapping[str, Any]]) -> str:
    """sha256 of the model and the whitespace- and case-normalised system, user and
    assistant turns; tool turns and non-text parts do not change it."""
    turns = [
        [m["role"], _normalise(_text(m.get("content")))]
        for m in messages
        if isinstance(m, Mapping) and m.get("role") in _ROLES
    ]
    payload = orjson.dumps([model, turns])
    return hashlib.sha256(payload).hexdigest()

"""The litellm adapter's conversion of litellm's objects (litellm itself is not imported)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from proxy.errors import UpstreamBadResponse
from proxy.upstream.litellm_adapter import _to_dict


class _Message(BaseModel):
    role: str = "assistant"
    content: str


class _Choice(BaseModel):
    index: int = 0
    message: _Message
    finish_reason: str = "stop"


class _Response(BaseModel):
    choices: list[_Choice]


def test_an_answer_becomes_openai_shaped_json() -> None:
    data = _to_dict(_Response(choices=[_Choice(message=_Message(content="391"))]))
    assert data["choices"][0]["message"]["content"] == "391"
    assert data["choices"][0]["logprobs"] is None


def test_an_answer_holding_a_lone_surrogate_is_a_bad_upstream_response() -> None:
    # Python's json lets an escaped lone surrogate through; it cannot be written as UTF-8.
    response = _Response(choices=[_Choice(message=_Message(content="17 \ud800 23"))])
    with pytest.raises(UpstreamBadResponse):
        _to_dict(response)

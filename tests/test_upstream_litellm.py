"""The litellm adapter's conversion of litellm's objects (litellm itself is not imported)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from proxy.errors import UpstreamBadResponse
from proxy.upstream.litellm_adapter import _to_dict, provider_envelope


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


def test_the_providers_error_is_read_out_of_litellms_message() -> None:
    """litellm words a provider's error as its own; the client gets the provider's, as on the
    native path: a provider block's code is what the detector and clients look for."""
    quoted = (
        'litellm.BadRequestError: OpenAIException - {"error": {"message": "Input data may '
        'contain inappropriate content.", "type": "data_inspection_failed", "code": '
        '"data_inspection_failed", "param": null}, "request_id": "r1"} Received Model Group=x'
    )
    assert provider_envelope(quoted) == {
        "error": {
            "message": "Input data may contain inappropriate content.",
            "type": "data_inspection_failed",
            "code": "data_inspection_failed",
        }
    }
    anthropic = (
        'litellm.AuthenticationError: AnthropicException - {"type":"error","error":'
        '{"type":"authentication_error","message":"invalid x-api-key"}}'
    )
    error = provider_envelope(anthropic)["error"]
    assert error == {"type": "authentication_error", "message": "invalid x-api-key"}
    plain = provider_envelope("litellm.APIError: VertexAIException - upstream overloaded")
    assert plain == {"error": {"message": "VertexAIException - upstream overloaded"}}
    deep = provider_envelope("litellm.APIError: X - " + '{"a":' * 100_000 + "1" + "}" * 100_000)
    assert deep["error"]["message"].startswith('X - {"a":{"a":')
    assert len(deep["error"]["message"]) == 2000

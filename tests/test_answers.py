"""Reading answers: JSON of the wrong shape is the upstream's fault, named as such."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.answers import choice_exchanges, chunk_delta, request_exchange
from proxy.errors import UpstreamBadResponse

REQUEST = request_exchange({"messages": [{"role": "user", "content": "hi"}]})


@pytest.mark.parametrize(
    "chunk",
    [
        {"choices": 5},
        {"choices": ["oops"]},
        {"choices": [{"index": 0, "delta": "oops"}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": 3}]},
    ],
)
def test_a_chunk_of_the_wrong_shape_is_a_bad_upstream_response(chunk: dict[str, Any]) -> None:
    with pytest.raises(UpstreamBadResponse):
        chunk_delta(chunk)


@pytest.mark.parametrize(
    "answer",
    [{"choices": 5}, {"choices": [{"index": 0, "message": "oops"}]}, {"choices": {"a": 1}}],
)
def test_an_answer_of_the_wrong_shape_is_a_bad_upstream_response(answer: dict[str, Any]) -> None:
    with pytest.raises(UpstreamBadResponse):
        choice_exchanges(REQUEST, answer)


def test_absent_parts_read_as_empty() -> None:
    assert chunk_delta({"choices": []}).content == ""
    assert chunk_delta({"choices": [{"index": 0, "delta": None}]}).content == ""
    assert chunk_delta({"usage": {"total_tokens": 3}}).content == ""
    assert choice_exchanges(REQUEST, {"choices": None}) == []

"""Reading answers: JSON of the wrong shape is the upstream's fault, named as such."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.answers import choice_count, choice_exchanges, chunk_deltas, request_exchange
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
        chunk_deltas(chunk)


@pytest.mark.parametrize(
    "answer",
    [{"choices": 5}, {"choices": [{"index": 0, "message": "oops"}]}, {"choices": {"a": 1}}],
)
def test_an_answer_of_the_wrong_shape_is_a_bad_upstream_response(answer: dict[str, Any]) -> None:
    with pytest.raises(UpstreamBadResponse):
        choice_exchanges(REQUEST, answer)


def test_each_choice_asked_for_is_read_by_its_index() -> None:
    chunk = {
        "choices": [
            {"index": 1, "delta": {"content": "b"}, "finish_reason": None},
            {"index": 0, "delta": {"content": "a"}, "finish_reason": "stop"},
            {"index": 2, "delta": {"content": "c"}, "finish_reason": None},
        ]
    }
    assert [(d.index, d.content) for d in chunk_deltas(chunk, 2)] == [(1, "b"), (0, "a")]
    assert [d.content for d in chunk_deltas(chunk)] == ["a"]  # n = 1: the first choice only
    assert [choice_count({"n": n}) for n in (3, 1, 0, None, True, "2")] == [3, 1, 1, 1, 1, 1]


def test_absent_parts_read_as_empty() -> None:
    assert chunk_deltas({"choices": []}) == []
    assert chunk_deltas({"choices": [{"index": 0, "delta": None}]})[0].content == ""
    assert chunk_deltas({"usage": {"total_tokens": 3}}) == []
    assert choice_exchanges(REQUEST, {"choices": None}) == []

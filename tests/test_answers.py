"""Reading answers: JSON of the wrong shape is the upstream's fault, named as such."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.answers import (
    MAX_CHOICES,
    choice_count,
    choice_exchanges,
    chunk_deltas,
    request_exchange,
)
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


def test_every_choice_is_read_by_its_index() -> None:
    # Before, a choice past the request's `n` was skipped, and reached the client unjudged.
    chunk = {
        "choices": [
            {"index": 1, "delta": {"content": "b"}, "finish_reason": None},
            {"index": 0, "delta": {"content": "a"}, "finish_reason": "stop"},
            {"index": 2, "delta": {"content": "c"}, "finish_reason": None},
            {"delta": {"content": "d"}},  # no index: the first choice
        ]
    }
    assert [(d.index, d.content) for d in chunk_deltas(chunk)] == [
        (1, "b"),
        (0, "a"),
        (2, "c"),
        (0, "d"),
    ]
    counts = [choice_count({"n": n}) for n in (3, 1, 0, None, True, "2", 500)]
    assert counts == [3, 1, 1, 1, 1, 1, MAX_CHOICES]


@pytest.mark.parametrize("index", [-1, MAX_CHOICES, 1.0, "1", True, None])
def test_a_choice_index_out_of_range_or_not_an_integer_is_a_bad_upstream_response(
    index: object,
) -> None:
    with pytest.raises(UpstreamBadResponse, match="index"):
        chunk_deltas({"choices": [{"index": index, "delta": {"content": "a"}}]})
    with pytest.raises(UpstreamBadResponse, match="index"):
        choice_exchanges(REQUEST, {"choices": [{"index": index, "message": {"content": "a"}}]})


def test_a_whole_answer_of_more_choices_than_any_n_is_a_bad_upstream_response() -> None:
    many = [{"index": 0, "message": {"content": "a"}}] * (MAX_CHOICES + 1)
    with pytest.raises(UpstreamBadResponse, match="choices"):
        choice_exchanges(REQUEST, {"choices": many})
    assert len(choice_exchanges(REQUEST, {"choices": many[:MAX_CHOICES]})) == MAX_CHOICES


def test_absent_parts_read_as_empty() -> None:
    assert chunk_deltas({"choices": []}) == []
    assert chunk_deltas({"choices": [{"index": 0, "delta": None}]})[0].content == ""
    assert chunk_deltas({"usage": {"total_tokens": 3}}) == []
    assert choice_exchanges(REQUEST, {"choices": None}) == []

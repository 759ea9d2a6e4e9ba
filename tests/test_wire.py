"""SSE framing and parsing."""

from __future__ import annotations

import orjson
import pytest

from proxy import wire


def test_parser_joins_events_split_across_reads() -> None:
    raw = b'data: {"a": 1}\n\ndata: {"b": 2}\n\ndata: [DONE]\n\n'
    parser = wire.SseParser()
    events = [e for i in range(len(raw)) for e in parser.feed(raw[i : i + 1])]
    assert [e.data for e in events] == [{"a": 1}, {"b": 2}, None]
    assert events[-1].done
    assert b"".join(e.raw for e in events) == raw


def test_parser_handles_crlf_comments_and_multiline_data() -> None:
    raw = b': keep-alive\r\n\r\nevent: x\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'
    events = list(wire.SseParser().feed(raw))
    assert [e.data for e in events] == [{"a": 1}]


def test_parser_rejects_data_that_is_not_json() -> None:
    with pytest.raises(ValueError):
        list(wire.SseParser().feed(b"data: {not json\n\n"))


def test_flush_yields_a_last_event_without_blank_line() -> None:
    parser = wire.SseParser()
    assert list(parser.feed(b"data: [DONE]")) == []
    assert [e.done for e in parser.flush()] == [True]


def test_error_event_is_what_the_sdks_raise_on() -> None:
    frame = wire.sse_error("blocked", "content_filter", "censored")
    assert frame.startswith(b"data: ") and frame.endswith(b"\n\n")
    assert orjson.loads(frame[6:]) == {
        "error": {"message": "blocked", "type": "content_filter", "param": None, "code": "censored"}
    }


def test_annotation_chunk_reuses_the_stream_id_and_has_no_choices() -> None:
    frame = wire.annotation_chunk({"id": "c1", "created": 5, "model": "m"}, "alias", {"x": 1})
    chunk = orjson.loads(frame[6:])
    assert chunk["id"] == "c1" and chunk["created"] == 5 and chunk["model"] == "m"
    assert chunk["choices"] == [] and chunk["candor"] == {"x": 1}
    assert chunk["object"] == "chat.completion.chunk"

"""SSE framing and parsing."""

from __future__ import annotations

import time

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


def test_parser_finds_crlf_ends_split_across_reads() -> None:
    raw = b'data: {"a": 1}\r\n\r\ndata: {"b": 2}\r\n\r\n'
    parser = wire.SseParser()
    events = [e for i in range(len(raw)) for e in parser.feed(raw[i : i + 1])]
    assert [e.data for e in events] == [{"a": 1}, {"b": 2}]
    assert b"".join(e.raw for e in events) == raw


def test_a_big_event_fed_in_small_reads_parses_in_linear_time() -> None:
    # 12 MiB of one data line in 16 KiB reads: copying and searching the whole buffer on every
    # read (as before) went over about 14 GiB and took many seconds.
    parser = wire.SseParser()
    text = b"x" * (12 * 1024 * 1024)
    head = b'data: {"choices":[{"index":0,"delta":{"content":"'
    started = time.perf_counter()
    assert list(parser.feed(head)) == []
    for i in range(0, len(text), 16 * 1024):
        assert list(parser.feed(text[i : i + 16 * 1024])) == []
    events = list(parser.feed(b'"}}]}\n\n'))
    elapsed = time.perf_counter() - started
    assert len(events) == 1 and events[0].data is not None
    assert len(events[0].data["choices"][0]["delta"]["content"]) == len(text)
    assert elapsed < 2.0


def test_an_8_mib_event_passes_the_default_limit() -> None:
    content = "y" * (8 * 1024 * 1024)
    raw = wire.sse_event({"choices": [{"index": 0, "delta": {"content": content}}]})
    parser = wire.SseParser()
    events = [e for i in range(0, len(raw), 65536) for e in parser.feed(raw[i : i + 65536])]
    assert len(events) == 1 and events[0].raw == raw


def test_an_event_over_the_limit_is_refused() -> None:
    endless = wire.SseParser(max_event_bytes=1000)
    with pytest.raises(wire.SseEventTooLarge):
        for _ in range(20):
            list(endless.feed(b"data: " + b"z" * 100))
    whole = wire.SseParser(max_event_bytes=1000)
    with pytest.raises(wire.SseEventTooLarge):
        list(whole.feed(b'data: {"a": "' + b"z" * 2000 + b'"}\n\n'))
    fits = wire.SseParser(max_event_bytes=1000)
    assert len(list(fits.feed(b'data: {"a": 1}\n\n' * 200))) == 200  # the limit is per event


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

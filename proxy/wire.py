"""OpenAI wire shapes: JSON codec, SSE framing and parsing, the annotation chunk."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
# What Candor parses from an upstream and serialises again (orjson stops at 255 levels).
MAX_UPSTREAM_DEPTH = 128
# The largest SSE event read from an upstream: far over any real chunk (an 8 MiB one passes),
# and a bound on what an event that never ends can make Candor buffer.
MAX_SSE_EVENT_BYTES = 16 * 1024 * 1024
# The largest whole (non-streamed) answer or error body read from an upstream: the same bound,
# for the same reason (an answer is at most one event's worth of text, and never unbounded).
MAX_UPSTREAM_BODY_BYTES = MAX_SSE_EVENT_BYTES
# A string, or one left open at the end of the text (its last byte may be a lone backslash): a
# pattern that needs the closing quote would, on an unclosed string full of escaped quotes,
# rescan to the end from each of them.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKET_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 / -1 as signed bytes


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def json_depth_exceeds(raw: bytes, limit: int) -> bool:
    """Whether the JSON text nests arrays and objects deeper than `limit`, read without parsing.

    orjson recurses while parsing: a few hundred thousand nested arrays crash the process, and
    it cannot serialise past 255 levels. Strings are dropped, then the running sum of +1 per
    opener and -1 per closer is taken in C (no Python loop).
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    steps = _JSON_STRING.sub(b"", raw).translate(_BRACKET_STEPS, _NOT_BRACKETS)
    return max(accumulate(memoryview(steps).cast("b")), default=0) > limit


def sse_event(obj: Any) -> bytes:
    """Frame one JSON object as an SSE `data:` event."""
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def sse_error(message: str, type: str, code: str | None, param: str | None = None) -> bytes:
    """An error event: the official SDKs raise on a data event that carries `error`."""
    return sse_event({"error": {"message": message, "type": type, "param": param, "code": code}})


@dataclass(slots=True)
class SseEvent:
    """One server-sent event: its raw bytes (to forward unchanged) and its decoded data."""

    raw: bytes
    data: dict[str, Any] | None
    done: bool = False


class SseEventTooLarge(ValueError):
    """One SSE event (or what has come of it so far) is over the parser's size limit."""


class SseParser:
    """Incremental SSE parser: feed bytes as they arrive, get whole events out.

    Keeps the raw bytes of each event so a pass-through can forward them unchanged.
    Raises ValueError on a `data:` payload that is not JSON, and `SseEventTooLarge` once one
    event passes `max_event_bytes`. Each byte is searched once for an event's end (a line fed
    in many small reads is not searched again on every read), so parsing is linear.
    """

    def __init__(self, max_event_bytes: int = MAX_SSE_EVENT_BYTES) -> None:
        self._buffer = bytearray()
        self._scanned = 0  # no event ends before this offset of the buffer
        self._max = max_event_bytes

    def feed(self, chunk: bytes) -> Iterator[SseEvent]:
        self._buffer += chunk
        start = 0
        try:
            while True:
                # A separator may straddle the previous read: look back up to 3 bytes.
                end, sep_len = _event_end(self._buffer, max(start, self._scanned - 3))
                if end < 0:
                    self._scanned = len(self._buffer)
                    if self._scanned - start > self._max:
                        raise SseEventTooLarge(f"SSE event over {self._max} bytes")
                    return
                if end - start > self._max:
                    raise SseEventTooLarge(f"SSE event over {self._max} bytes")
                raw = bytes(self._buffer[start : end + sep_len])
                start = self._scanned = end + sep_len
                event = _decode(raw)
                if event is not None:
                    yield event
        finally:
            del self._buffer[:start]
            self._scanned -= start

    def flush(self) -> Iterator[SseEvent]:
        """Whatever is left when the connection closes (an event without its blank line)."""
        raw = bytes(self._buffer)
        self._buffer.clear()
        self._scanned = 0
        if raw.strip():
            event = _decode(raw + b"\n\n")
            if event is not None:
                yield event


def _event_end(buffer: bytearray, start: int) -> tuple[int, int]:
    lf = buffer.find(b"\n\n", start)
    # CRLF wins only when it comes first: search no further than the LF end found.
    crlf = buffer.find(b"\r\n\r\n", start, len(buffer) if lf < 0 else lf + 2)
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf, 4
    return lf, 2


def _decode(raw: bytes) -> SseEvent | None:
    data_lines = [line[5:].lstrip(b" ") for line in raw.splitlines() if line.startswith(b"data:")]
    if not data_lines:
        return None  # comments (": keep-alive") and bare event/id lines carry nothing to judge
    payload = b"\n".join(data_lines)
    if payload.strip() == b"[DONE]":
        return SseEvent(raw=raw, data=None, done=True)
    if json_depth_exceeds(payload, MAX_UPSTREAM_DEPTH):
        raise ValueError("SSE data nests too deep")
    data = orjson.loads(payload)
    if not isinstance(data, dict):
        raise ValueError("SSE data is not a JSON object")
    return SseEvent(raw=raw, data=data)


def annotation_chunk(template: dict[str, Any] | None, model: str, candor: dict[str, Any]) -> bytes:
    """The last chunk before `[DONE]`: no choices, only the `candor` object."""
    base = template or {}
    chunk: dict[str, Any] = {
        "id": base.get("id") or "chatcmpl-candor",
        "object": "chat.completion.chunk",
        "created": base.get("created") or int(time.time()),
        "model": base.get("model") or model,
        "choices": [],
        "candor": candor,
    }
    if base.get("system_fingerprint") is not None:  # a string, or absent: never null
        chunk["system_fingerprint"] = base["system_fingerprint"]
    return sse_event(chunk)

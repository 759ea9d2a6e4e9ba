"""Request body validation: only what the proxy needs, everything else untouched."""

from __future__ import annotations

import subprocess
import sys
import time

import orjson
import pytest

from proxy.api.body import parse_chat_request
from proxy.errors import InvalidRequest
from proxy.wire import json_depth_exceeds


def test_keeps_every_field_as_sent() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "vendor_thing": {"enable_thinking": False},
        "seed": 7,
    }
    chat = parse_chat_request(orjson.dumps(body), "r1")
    assert chat.body == body and chat.model == "m" and not chat.stream


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b"{nope", None),
        (b"[]", None),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "model"),
        (b'{"model": "m"}', "messages"),
        (b'{"model": "m", "messages": []}', "messages"),
        (b'{"model": "m", "messages": ["hi"]}', "messages"),
        (b'{"model": "m", "messages": [{"role": "user"}], "stream": "yes"}', "stream"),
    ],
)
def test_bad_bodies_are_400_naming_the_field(raw: bytes, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_chat_request(raw, "r1")
    assert caught.value.status == 400 and caught.value.param == param


def _nested(depth: int) -> bytes:
    return b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "x": ' + (
        b"[" * depth + b"]" * depth + b"}"
    )


def test_more_messages_than_the_limit_is_400_naming_messages() -> None:
    many = [{"role": "user", "content": "hi"}] * 11
    raw = orjson.dumps({"model": "m", "messages": many})
    assert len(parse_chat_request(raw, "r1", max_messages=11).body["messages"]) == 11
    with pytest.raises(InvalidRequest) as caught:
        parse_chat_request(raw, "r1", max_messages=10)
    assert caught.value.status == 400 and caught.value.param == "messages"


@pytest.mark.parametrize(("depth", "refused"), [(62, False), (63, True), (300, True)])
def test_nesting_deeper_than_the_limit_is_400(depth: int, refused: bool) -> None:
    raw = _nested(depth)  # the body object itself is one level
    if not refused:
        assert parse_chat_request(raw, "r1", max_depth=63).body["x"]
        return
    with pytest.raises(InvalidRequest) as caught:
        parse_chat_request(raw, "r1", max_depth=63)
    assert caught.value.status == 400 and "deeper than 63" in caught.value.message


@pytest.mark.parametrize(
    ("raw", "deep"),
    [
        (b'{"a": "[[[[[[[[[[ {{{{{{{{{{ \\" [[[[[["}', False),  # brackets in strings do not count
        (b'["\\\\", [[[[]]]]]', False),  # an escaped backslash ends the string before `,`
        (b"[[[[[[]]]]], [[[[[[]]]]]]", True),
        (b"[{}, {}, {}, {}, {}, {}, {}, {}]", False),
        (b"[[[[[[[[", True),  # truncated: still refused before the parser recurses
        (b'["[[[[[[[[', False),  # a string left open holds the rest of the text
        (b'[[[[[[[[ "', True),
    ],
)
def test_depth_is_read_from_the_text(raw: bytes, deep: bool) -> None:
    assert json_depth_exceeds(raw, 5) is deep


def test_an_unclosed_string_of_escaped_quotes_is_read_in_one_pass() -> None:
    # Before, each escaped quote started a scan to the end of the text: 120 KB took 50 s of the
    # event loop (and a 4 MiB body hours). The bound here is a thousand times the time it takes.
    raw = b'{"model": "x", "messages": ["' + b'\\"[' * 40_000
    for body in (raw, raw + b"\\"):  # ending in a lone backslash too
        started = time.perf_counter()
        assert json_depth_exceeds(body, 64) is False
        assert time.perf_counter() - started < 2.0


def test_a_million_nested_arrays_are_refused_without_crashing() -> None:
    # orjson 3.8 parses by recursion and segfaults past ~200,000 levels: the check comes first.
    # In a child process, so a regression fails this test instead of killing the run.
    code = (
        "from proxy.api.body import parse_chat_request\n"
        "from proxy.errors import InvalidRequest\n"
        "raw = b'[' * 1_000_000 + b']' * 1_000_000\n"
        "try:\n"
        "    parse_chat_request(raw, 'r1')\n"
        "except InvalidRequest as exc:\n"
        "    print(exc.message)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert b"deeper than 64 levels" in done.stdout

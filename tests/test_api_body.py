"""Request body validation: only what the proxy needs, everything else untouched."""

from __future__ import annotations

import orjson
import pytest

from proxy.api.body import parse_chat_request
from proxy.errors import InvalidRequest


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

"""What both upstream clients do to what an upstream says before it reaches the client."""

from __future__ import annotations

from proxy.upstream.hygiene import retry_after, scrub, scrub_text, scrubbed, scrubbed_answer
from proxy.wire import SseEvent, sse_event

KEY = b"leakcanary7f3a9c5e1d0123"


def test_the_key_is_scrubbed_from_bytes_text_and_events() -> None:
    assert scrub(b"bad key " + KEY, KEY) == b"bad key [redacted]"
    assert scrub_text(f"bad key {KEY.decode()}!", KEY) == "bad key [redacted]!"
    data = {"error": {"message": f"bad key {KEY.decode()}"}}
    event = scrubbed(SseEvent(raw=sse_event(data), data=data), KEY)
    assert KEY not in event.raw and event.data == {"error": {"message": "bad key [redacted]"}}


def test_a_whole_answer_that_quotes_the_key_is_scrubbed() -> None:
    # The litellm adapter's whole answers (decoded): before, only its errors were scrubbed.
    answer = {"choices": [{"message": {"content": f"your key: {KEY.decode()}"}}]}
    assert scrubbed_answer(answer, KEY) == {
        "choices": [{"message": {"content": "your key: [redacted]"}}]
    }
    clean = {"choices": []}
    assert scrubbed_answer(clean, KEY) is clean


def test_without_a_key_nothing_changes() -> None:
    assert scrub(b"anything", b"") == b"anything"
    assert scrub_text("anything", b"") == "anything"


def test_only_a_plausible_retry_after_is_kept() -> None:
    assert retry_after(" 7 ") == "7"
    assert retry_after("Wed, 21 Oct 2026 07:28:00 GMT") == "Wed, 21 Oct 2026 07:28:00 GMT"
    assert retry_after(None) is None
    assert retry_after("") is None
    assert retry_after("1\r\nset-cookie: x") is None
    assert retry_after("9" * 65) is None

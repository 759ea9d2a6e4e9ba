"""What every upstream client does to what an upstream says before it reaches the client: the
configured key scrubbed, a plausible `Retry-After` kept, a timeout worded the same way."""

from __future__ import annotations

from typing import Any

import orjson

from proxy.errors import UpstreamTimeout
from proxy.settings import Timeouts
from proxy.wire import SseEvent

REDACTED = b"[redacted]"


def scrub(raw: bytes, secret: bytes) -> bytes:
    """`raw` without the upstream key: the client must never see it, even echoed."""
    return raw.replace(secret, REDACTED) if secret and secret in raw else raw


def scrub_text(text: str, secret: bytes) -> str:
    """`scrub` for a message already decoded (an SDK's exception text)."""
    key = secret.decode()
    return text.replace(key, REDACTED.decode()) if key and key in text else text


def scrubbed(event: SseEvent, secret: bytes) -> SseEvent:
    """`event` without the upstream key, in its raw bytes and its decoded data alike."""
    if not secret or secret not in event.raw:
        return event
    data = None if event.data is None else orjson.loads(scrub(orjson.dumps(event.data), secret))
    return SseEvent(raw=scrub(event.raw, secret), data=data, done=event.done)


def scrubbed_answer(data: dict[str, Any], secret: bytes) -> dict[str, Any]:
    """A whole answer (decoded) without the upstream key: an echo in a 200 is one too."""
    if not secret:
        return data
    raw = orjson.dumps(data)
    if secret not in raw:
        return data
    cleaned: dict[str, Any] = orjson.loads(scrub(raw, secret))
    return cleaned


def retry_after(value: str | None) -> str | None:
    """The upstream's `Retry-After` (seconds or an HTTP date), when it is a plausible one."""
    value = (value or "").strip()
    return value if value and len(value) <= 64 and value.isprintable() else None


def timed_out(timeouts: Timeouts, what: str = "before answering") -> UpstreamTimeout:
    """The timeout error, naming the wait that ran out and the limits in force."""
    return UpstreamTimeout(f"upstream timed out {what} (limits: {timeouts.model_dump()})")

"""What every upstream client does to what an upstream says before it reaches the client: the
configured key scrubbed, a plausible `Retry-After` kept, a timeout worded the same way, and a
refusal of Candor's own key told apart from a refusal of the client's."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

import orjson
from pydantic import SecretStr

from proxy.errors import UpstreamRejected, UpstreamTimeout
from proxy.settings import Timeouts
from proxy.wire import SseEvent

REDACTED = b"[redacted]"
T = TypeVar("T")


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


def rejected(status: int, body: dict[str, Any], *, retry_after: str | None) -> UpstreamRejected:
    """The upstream's own error, as the client gets it. Its 401 refuses the key Candor holds
    for it, not the client's key for Candor: passed on as a 401 `invalid_api_key`, the SDKs
    told the client its own key was wrong, and no outage fallback was tried. It is a 502."""
    if status != 401:
        return UpstreamRejected(status, body, retry_after=retry_after)
    error = body.get("error")
    said = (isinstance(error, dict) and error.get("message")) or "HTTP 401"
    refused = {
        "message": f"the upstream refused Candor's own key for this model: {said}",
        "type": "upstream_error",
        "code": "upstream_auth_failed",
    }
    return UpstreamRejected(502, {"error": refused}, retry_after=None)


def error_fields(error: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of an OpenAI error (`message`, `type`, `code`, `param`) an upstream's error
    object holds as text or numbers; nothing else of it passes on."""
    return {k: error[k] for k in ("message", "type", "code", "param") if _plain(error.get(k))}


def _plain(value: object) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool)


def retry_after(value: str | None) -> str | None:
    """The upstream's `Retry-After` (seconds or an HTTP date), when it is a plausible one."""
    value = (value or "").strip()
    return value if value and len(value) <= 64 and value.isprintable() else None


async def next_chunk(read: Awaitable[T], timeouts: Timeouts, deadline: float, first: bool) -> T:
    """`read` (a stream's next chunk) within its wait: `first_byte` for the first chunk, `idle`
    for each later one, and never past `deadline` (the stream's `total`)."""
    loop = asyncio.get_running_loop()
    limit = timeouts.first_byte if first else timeouts.idle
    try:
        async with asyncio.timeout(max(min(limit, deadline - loop.time()), 0.0)):
            return await read
    except TimeoutError as exc:
        late = loop.time() >= deadline
        gap = "before its first chunk" if first else "between stream chunks"
        raise timed_out(timeouts, "past its total time" if late else gap) from exc


def open_limit(timeouts: Timeouts) -> float:
    """How long an answer or a stream may take to start: connecting, then the model's time to
    its first byte, and never past `total`."""
    return min(timeouts.connect + timeouts.first_byte, timeouts.total)


def secret_of(api_key: SecretStr | None) -> bytes:
    """The upstream key as the bytes to scrub (none: nothing to scrub)."""
    return api_key.get_secret_value().encode() if api_key is not None else b""


def timed_out(timeouts: Timeouts, what: str = "before answering") -> UpstreamTimeout:
    """The timeout error, naming the wait that ran out and the limits in force."""
    return UpstreamTimeout(f"upstream timed out {what} (limits: {timeouts.model_dump()})")

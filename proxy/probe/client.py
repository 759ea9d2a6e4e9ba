"""Sending one probe prompt to an OpenAI-compatible endpoint, with timeouts and retries."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

RETRIED_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 30.0


@dataclass(frozen=True, slots=True)
class ProbeResponse:
    """The last HTTP answer to one prompt (`status` 0 when none came) after any retries."""

    status: int
    body: Any
    error: str | None
    attempts: int
    seconds: float


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry 429, 5xx, timeouts and connection errors `retries` times, with exponential
    backoff from `backoff` seconds (a server's Retry-After wins, capped)."""

    retries: int = 3
    backoff: float = 1.0
    max_backoff: float = 20.0

    def delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None:
            try:
                return min(max(float(retry_after), 0.0), MAX_RETRY_AFTER)
            except ValueError:
                pass
        # The doubling stops at 2**64 (past any cap): beyond 2**1023 it is no float at all,
        # and `--retries` has no upper bound.
        base = min(self.backoff * float(2 ** min(attempt, 64)), self.max_backoff)
        # Jitter keeps concurrent retries from arriving together.
        return base * random.uniform(0.5, 1.0)


class ProbeClient:
    """Asks one model one question at a time over a shared aiohttp session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        model: str,
        *,
        api_key: str | None,
        timeout: float,
        retry: RetryPolicy,
    ) -> None:
        self._session = session
        self._url = f"{base_url.rstrip('/')}/chat/completions"
        self._model = model
        self._headers = {"content-type": "application/json"}
        self._api_key = api_key
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retry = retry

    def body(self, text: str) -> dict[str, Any]:
        """The request body sent for a prompt."""
        return {"model": self._model, "messages": [{"role": "user", "content": text}]}

    async def ask(self, text: str) -> ProbeResponse:
        started = time.monotonic()
        payload = orjson.dumps(self.body(text))
        attempt = 0
        while True:
            status, body, error, retry_after = await self._once(payload)
            if error is not None and self._api_key:
                # An endpoint that echoes the key it refused: the error goes to the terminal
                # and into the report.
                error = error.replace(self._api_key, "[redacted]")
            retryable = status in RETRIED_STATUSES or (status == 0 and error is not None)
            if not retryable or attempt >= self._retry.retries:
                return ProbeResponse(status, body, error, attempt + 1, time.monotonic() - started)
            await asyncio.sleep(self._retry.delay(attempt, retry_after))
            attempt += 1

    async def _once(self, payload: bytes) -> tuple[int, Any, str | None, str | None]:
        try:
            async with self._session.post(
                self._url, data=payload, headers=self._headers, timeout=self._timeout
            ) as response:
                raw = await response.read()
                retry_after = response.headers.get("retry-after")
                status = response.status
        except TimeoutError:
            return 0, None, "timed out", None
        except aiohttp.ClientError as exc:
            return 0, None, f"{type(exc).__name__}: {exc}", None
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return status, None, f"HTTP {status}: the body is not JSON", retry_after
        error = None if status < 400 else _error_text(status, body)
        return status, body, error, retry_after


def _error_text(status: int, body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = error.get("code") or error.get("type") or ""
        return f"HTTP {status} {code}: {error.get('message', '')}".strip()
    return f"HTTP {status}"

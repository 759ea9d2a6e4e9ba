"""The fast path: any OpenAI-compatible server (vLLM, SGLang, DashScope, DeepSeek, Ollama...)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
from pydantic import SecretStr

from proxy.answers import with_usage_chunk
from proxy.errors import (
    UpstreamBadResponse,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from proxy.settings import Timeouts
from proxy.upstream.hygiene import (
    error_fields,
    next_chunk,
    open_limit,
    rejected,
    retry_after,
    scrub,
    scrubbed,
    secret_of,
    timed_out,
)
from proxy.wire import (
    MAX_UPSTREAM_BODY_BYTES,
    MAX_UPSTREAM_DEPTH,
    SseEvent,
    SseEventTooLarge,
    SseParser,
    json_depth_exceeds,
)

log = logging.getLogger(__name__)

_READ_SIZE = 64 * 1024


class OpenAICompatUpstream:
    """Talks the OpenAI chat protocol over a shared aiohttp session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        model: str,
        base_url: str,
        api_key: SecretStr | None,
        upstream_model: str | None,
        timeouts: Timeouts,
        stream_usage: bool = True,
    ) -> None:
        self.model = model
        self._session = session
        self._url = f"{base_url}/chat/completions"
        self._embeddings_url = f"{base_url}/embeddings"
        self._upstream_model = upstream_model
        self._timeouts = timeouts
        self._stream_usage = stream_usage
        self._headers = {"content-type": "application/json", "accept": "application/json"}
        # The key, to scrub from what the upstream says (some echo it in an error).
        self._secret = secret_of(api_key)
        if api_key is not None:
            self._headers["authorization"] = f"Bearer {api_key.get_secret_value()}"
        # aiohttp's sock_read bounds every wait for bytes, the wait for the headers included:
        # right for a whole answer, wrong for a stream, whose reads after the first byte wait
        # up to `idle` (the stream bounds its own reads; see `_AiohttpChunkStream`).
        self._client_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeouts.connect, sock_read=timeouts.first_byte
        )
        self._stream_timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect)

    def __repr__(self) -> str:
        return f"OpenAICompatUpstream(model={self.model!r}, url={self._url!r})"

    async def complete(self, body: dict[str, Any], request_id: str) -> dict[str, Any]:
        return await self._ask(self._url, body, request_id)

    async def embed(self, body: dict[str, Any], request_id: str) -> dict[str, Any]:
        return await self._ask(self._embeddings_url, body, request_id)

    async def _ask(self, url: str, body: dict[str, Any], request_id: str) -> dict[str, Any]:
        """POST `body` to `url` and return the JSON object answered."""
        try:
            async with asyncio.timeout(self._timeouts.total):
                response = await self._post(body, request_id, self._client_timeout, url)
                async with response:
                    raw = await read_capped(response)
        except TimeoutError as exc:
            raise timed_out(self._timeouts) from exc
        except aiohttp.ClientError as exc:
            raise _unreachable(exc) from exc
        raw = scrub(raw, self._secret)  # an echo of the key in a 200 as in an error
        if response.status >= 400:
            raise _rejected(response, raw)
        if json_depth_exceeds(raw, MAX_UPSTREAM_DEPTH):
            raise UpstreamBadResponse("upstream returned JSON nested too deep")
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamBadResponse("upstream returned a body that is not JSON") from exc
        if not isinstance(data, dict):
            raise UpstreamBadResponse("upstream returned JSON that is not an object")
        return data

    async def open_stream(self, body: dict[str, Any], request_id: str) -> _AiohttpChunkStream:
        timeouts = self._timeouts
        deadline = asyncio.get_running_loop().time() + timeouts.total
        try:
            async with asyncio.timeout(open_limit(timeouts)):
                if self._stream_usage:
                    body = with_usage_chunk(body)
                response = await self._post(body, request_id, self._stream_timeout)
                if response.status >= 400:
                    async with response:
                        raise _rejected(response, scrub(await read_capped(response), self._secret))
        except TimeoutError as exc:
            raise timed_out(self._timeouts) from exc
        except aiohttp.ClientError as exc:
            raise _unreachable(exc) from exc
        return _AiohttpChunkStream(response, self._timeouts, deadline, self._secret)

    async def _post(
        self,
        body: dict[str, Any],
        request_id: str,
        timeout: aiohttp.ClientTimeout,
        url: str | None = None,
    ) -> aiohttp.ClientResponse:
        # A fallback gets the client's body: it must still name this route's model.
        body = {**body, "model": self._upstream_model or self.model}
        headers = {**self._headers, "x-request-id": request_id}
        return await self._session.post(
            url or self._url, data=orjson.dumps(body), headers=headers, timeout=timeout
        )


class _AiohttpChunkStream:
    """SSE events of one upstream response, with first-byte, idle and total deadlines: the
    first chunk may take `first_byte` (a model's time to first token), each later one `idle`."""

    def __init__(
        self, response: aiohttp.ClientResponse, timeouts: Timeouts, deadline: float, secret: bytes
    ) -> None:
        self._response = response
        self._timeouts = timeouts
        self._deadline = deadline
        self._secret = secret

    async def __aiter__(self) -> AsyncIterator[SseEvent]:
        parser = SseParser()
        content = self._response.content
        first = True
        try:
            while True:
                try:
                    read = content.readany()
                    chunk = await next_chunk(read, self._timeouts, self._deadline, first)
                except aiohttp.ClientError as exc:
                    raise UpstreamBadResponse(
                        f"upstream stream broke: {type(exc).__name__}"
                    ) from exc
                first = False
                try:
                    # At the end of the body, what is left is an event cut short (or none).
                    events = list(parser.feed(chunk) if chunk else parser.flush())
                except SseEventTooLarge as exc:
                    raise UpstreamBadResponse(f"upstream sent an {exc}") from exc
                except ValueError as exc:
                    raise UpstreamBadResponse("upstream sent a malformed SSE event") from exc
                for event in events:
                    yield scrubbed(event, self._secret)
                    if event.done:
                        return
                if not chunk:
                    raise UpstreamBadResponse("upstream stream ended without [DONE]")
        finally:
            self._response.close()

    async def aclose(self) -> None:
        self._response.close()


async def read_capped(
    response: aiohttp.ClientResponse, limit: int = MAX_UPSTREAM_BODY_BYTES
) -> bytes:
    """The whole body, read as it comes: one over `limit` bytes is refused before more of it is
    buffered (at once when its Content-Length says so), so an upstream cannot fill memory."""
    declared = response.content_length
    if declared is not None and declared > limit:
        raise UpstreamBadResponse(
            f"upstream body is over {limit} bytes (Content-Length {declared})"
        )
    body = bytearray()
    while chunk := await response.content.read(_READ_SIZE):
        body += chunk
        if len(body) > limit:
            raise UpstreamBadResponse(f"upstream body is over {limit} bytes")
    return bytes(body)


def _unreachable(exc: aiohttp.ClientError) -> UpstreamError:
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return UpstreamTimeout(f"upstream timed out: {exc}")
    if isinstance(exc, aiohttp.ClientPayloadError):  # connected, then the body broke off
        return UpstreamBadResponse(f"upstream response broke off: {type(exc).__name__}")
    return UpstreamUnreachable(f"upstream unreachable: {type(exc).__name__}")


def _rejected(response: aiohttp.ClientResponse, raw: bytes) -> UpstreamRejected:
    status = response.status
    try:
        body = None if json_depth_exceeds(raw, MAX_UPSTREAM_DEPTH) else orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        body = {"error": _unwrapped_error(status, body, raw)}
    return rejected(status, body, retry_after=retry_after(response.headers.get("retry-after")))


def _unwrapped_error(status: int, body: object, raw: bytes) -> dict[str, Any]:
    """An error body not in OpenAI's envelope. vLLM's puts the fields at the top level, a
    FastAPI server says `detail`: their words pass on. Anything else (a gateway's HTML page,
    which can name internal hosts and software) is logged, not passed on."""
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return error_fields(body)
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return {"message": body["detail"]}
    text = raw[:300].decode("utf-8", "replace").strip()
    if text:
        log.warning("upstream HTTP %d with a body that is not an error in JSON: %r", status, text)
    logged = " (its body is in Candor's log)" if text else ""
    return {"message": f"upstream returned HTTP {status}{logged}"}

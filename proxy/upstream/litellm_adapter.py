"""Every provider that does not speak the OpenAI protocol, through `litellm.acompletion`.

litellm costs ~5 s and ~165 MB to import, so it is imported only when a model needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import re
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import orjson
from pydantic import SecretStr

from proxy.answers import with_usage_chunk
from proxy.errors import (
    InvalidRequest,
    UpstreamBadResponse,
    UpstreamError,
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
    scrub_text,
    scrubbed,
    scrubbed_answer,
    secret_of,
    timed_out,
)
from proxy.wire import SseEvent, sse_event


def import_litellm() -> ModuleType:
    """Import litellm without letting it fetch its price map from the internet."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_TELEMETRY", "False")
    module = importlib.import_module("litellm")
    setattr(module, "telemetry", False)  # noqa: B010  (litellm has no typed settings API)
    setattr(module, "suppress_debug_info", True)  # noqa: B010
    # litellm caches HTTP clients process-wide; a client made on another event loop (an
    # earlier app in the same process) cannot be used on this one.
    module.in_memory_llm_clients_cache.flush_cache()
    return module


class LitellmUpstream:
    """One model served by a litellm provider (`anthropic/...`, `bedrock/...`)."""

    def __init__(
        self,
        litellm: ModuleType,
        *,
        model: str,
        provider: str,
        base_url: str | None,
        api_key: SecretStr | None,
        upstream_model: str | None,
        timeouts: Timeouts,
        stream_usage: bool = True,
    ) -> None:
        self.model = model
        self._litellm = litellm
        self._target = f"{provider}/{upstream_model or model}"
        self._base_url = base_url
        self._api_key = api_key
        # The key, to scrub from what the provider says (litellm quotes its error body).
        self._secret = secret_of(api_key)
        self._timeouts = timeouts
        self._stream_usage = stream_usage

    def __repr__(self) -> str:
        return f"LitellmUpstream(model={self.model!r}, target={self._target!r})"

    async def complete(self, body: dict[str, Any], request_id: str) -> dict[str, Any]:
        # litellm's `timeout` is httpx's limit on each connect, read and write (one number for
        # most providers), so the documented limits are kept here: a whole answer's headers come
        # once it is written, within connect + first_byte, as on the native path.
        timeouts = self._timeouts
        try:
            async with asyncio.timeout(open_limit(timeouts)):
                response = await self._call(body, stream=False)
        except TimeoutError as exc:
            raise timed_out(timeouts) from exc
        data = _to_dict(response)
        data.pop("_hidden_params", None)
        return scrubbed_answer(data, self._secret)

    async def open_stream(self, body: dict[str, Any], request_id: str) -> _LitellmChunkStream:
        timeouts = self._timeouts
        deadline = asyncio.get_running_loop().time() + timeouts.total
        try:
            async with asyncio.timeout(open_limit(timeouts)):
                asked = with_usage_chunk(body) if self._stream_usage else body
                wrapper = await self._call(asked, stream=True)
        except TimeoutError as exc:
            raise timed_out(timeouts) from exc
        return _LitellmChunkStream(wrapper, timeouts, deadline, self._secret)

    async def embed(self, body: dict[str, Any], request_id: str) -> dict[str, Any]:
        raise InvalidRequest(
            f"The model `{self.model}` is served through litellm (`{self._target}`): "
            "Candor passes embeddings only to OpenAI-compatible upstreams.",
            param="model",
        )

    async def _call(self, body: dict[str, Any], *, stream: bool) -> Any:
        kwargs = {**body, "model": self._target, "stream": stream}
        # httpx's own limit on every read: a backstop behind the deadlines kept by the callers.
        kwargs["timeout"] = self._timeouts.total
        # Tools are the client's, passed through: never litellm's MCP gateway (which would also
        # import the `mcp` package on any request that carries tools).
        kwargs["_skip_mcp_handler"] = True
        if self._base_url is not None:
            kwargs["api_base"] = self._base_url
        if self._api_key is not None:
            kwargs["api_key"] = self._api_key.get_secret_value()
        try:
            return await self._litellm.acompletion(**kwargs)
        except Exception as exc:
            raise _map_error(self._litellm, exc, self._secret) from exc


class _LitellmChunkStream:
    """litellm's chunk objects re-encoded as OpenAI SSE events, with the native path's first-byte,
    idle and total deadlines: the first chunk may take `first_byte`, each later one `idle`."""

    def __init__(self, wrapper: Any, timeouts: Timeouts, deadline: float, secret: bytes) -> None:
        self._wrapper = wrapper
        self._timeouts = timeouts
        self._deadline = deadline
        self._secret = secret

    async def __aiter__(self) -> AsyncIterator[SseEvent]:
        chunks = aiter(self._wrapper)
        first = True
        while True:
            try:
                chunk = await next_chunk(anext(chunks), self._timeouts, self._deadline, first)
            except StopAsyncIteration:
                break
            except UpstreamError:  # a timeout among them
                raise
            except Exception as exc:
                raise UpstreamBadResponse(f"upstream stream broke: {type(exc).__name__}") from exc
            first = False
            data = _to_dict(chunk)
            yield scrubbed(SseEvent(raw=sse_event(data), data=data), self._secret)
        yield SseEvent(raw=b"data: [DONE]\n\n", data=None, done=True)

    async def aclose(self) -> None:
        closer = getattr(self._wrapper, "aclose", None)
        if closer is not None:
            await closer()


_NULLABLE_CHOICE_FIELDS = ("logprobs",)


def _to_dict(obj: Any) -> dict[str, Any]:
    """litellm's pydantic objects, as plain OpenAI-shaped JSON."""
    try:
        raw = obj.model_dump_json(exclude_none=False)
    except ValueError as exc:  # a lone surrogate in the text: Python's json let one through
        problem = type(exc).__name__
        raise UpstreamBadResponse(f"upstream answer cannot be written as JSON: {problem}") from exc
    data: dict[str, Any] = orjson.loads(raw)
    for key in ("_hidden_params", "_response_headers", "provider_specific_fields"):
        data.pop(key, None)
    for choice in data.get("choices") or []:
        for field in _NULLABLE_CHOICE_FIELDS:
            choice.setdefault(field, None)
        for part in ("message", "delta"):
            if isinstance(choice.get(part), dict):
                choice[part].pop("provider_specific_fields", None)
    return data


def _map_error(litellm: ModuleType, exc: Exception, secret: bytes) -> UpstreamError:
    exceptions = litellm.exceptions
    if isinstance(exc, exceptions.Timeout):
        return UpstreamTimeout(f"upstream timed out: {type(exc).__name__}")
    if isinstance(exc, exceptions.APIConnectionError):
        return UpstreamUnreachable(f"upstream unreachable: {type(exc).__name__}")
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and 400 <= status < 600:
        message = scrub_text(str(getattr(exc, "message", "") or exc), secret)
        return rejected(status, provider_envelope(message), retry_after=_retry_after(exc))
    return UpstreamBadResponse(f"upstream call failed: {type(exc).__name__}")


# litellm's message: "litellm.BadRequestError: AnthropicException - {the provider's body}".
_LITELLM_PREFIX = re.compile(r"^litellm\.\w+:\s*")


def provider_envelope(message: str) -> dict[str, Any]:
    """The provider's own error out of litellm's message, as the native path passes it on:
    its message, type, code and param when the message quotes its JSON body (a provider
    block's `data_inspection_failed` is a code), else the message without litellm's prefix."""
    text = _LITELLM_PREFIX.sub("", message, count=1)
    start = text.find("{")
    body: object = None
    if start >= 0:
        # raw_decode: litellm may add words after the body. A body nested past Python's
        # recursion limit is not read.
        with contextlib.suppress(ValueError, RecursionError):
            body, _ = json.JSONDecoder().raw_decode(text, start)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return {"error": {"message": text[:_MAX_MESSAGE]}}
    kept = error_fields(error)
    return {"error": {**kept, "message": str(kept["message"])[:_MAX_MESSAGE]}}


_MAX_MESSAGE = 2000


def _retry_after(exc: Exception) -> str | None:
    """The provider's `Retry-After`: litellm keeps the error response's headers on the error."""
    headers = getattr(exc, "litellm_response_headers", None)
    getter = getattr(headers, "get", None)
    value = getter("retry-after") if callable(getter) else None
    return retry_after(value) if isinstance(value, str) else None

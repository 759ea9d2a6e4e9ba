"""The one interface every upstream provider implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from proxy.wire import SseEvent


class ChunkStream(Protocol):
    """An open streamed answer: iterate its SSE events; `aclose` aborts the upstream request."""

    def __aiter__(self) -> AsyncIterator[SseEvent]: ...

    async def aclose(self) -> None: ...


class Upstream(Protocol):
    """A model server. Raises the `UpstreamError` family for every failure."""

    model: str

    async def complete(self, body: dict[str, Any], request_id: str) -> dict[str, Any]:
        """Send a non-streamed chat completion and return the decoded response."""
        ...

    async def open_stream(self, body: dict[str, Any], request_id: str) -> ChunkStream:
        """Send a streamed chat completion; returns once the upstream has accepted it."""
        ...

    async def embed(self, body: dict[str, Any], request_id: str) -> dict[str, Any]:
        """Send an embeddings request and return the decoded response, unjudged (it holds no
        text); raises `InvalidRequest` where the provider is not asked for embeddings."""
        ...

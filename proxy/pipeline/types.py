"""What goes into the pipeline and what comes out of it."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from proxy.detect import Detector


class TopicReader(Protocol):
    @property
    def topic_names(self) -> tuple[str, ...]: ...

    def request_topics(self, messages: Sequence[Mapping[str, Any]]) -> tuple[str, ...]: ...


class JudgingDetector(Detector, TopicReader, Protocol):
    """A detector that can also name the topics of a request before any answer."""


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A validated chat-completion request: the client's body is kept exactly as sent."""

    request_id: str
    model: str
    body: dict[str, Any]
    policy: str | None = None  # a policy named by the client's API key
    tenant: str | None = None
    key_id: str | None = None

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True


@dataclass(slots=True)
class Reply:
    """A whole answer, ready to send."""

    body: bytes
    headers: dict[str, str]


@dataclass(slots=True)
class StreamReply:
    """A streamed answer: headers now, SSE bytes as they come. `chunks` yields `b""` first, at
    once (nothing to send: it is started, so its clean-up runs however the response ends).
    `ClientStalled` thrown into it ends it as its client's leaving does, recorded with that
    error."""

    headers: dict[str, str]
    chunks: AsyncGenerator[bytes, None]

"""request -> upstream -> detect -> act, for whole answers and for streams."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from proxy import wire
from proxy.answers import choice_exchanges, chunk_delta, request_exchange
from proxy.detect import UNKNOWN, Detector, Verdict
from proxy.errors import CandorError
from proxy.policy.actions import Action, ActionName
from proxy.upstream.base import ChunkStream
from proxy.upstream.registry import Upstreams

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A validated chat-completion request: the client's body is kept exactly as sent."""

    request_id: str
    model: str
    body: dict[str, Any]

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
    """A streamed answer: headers now, SSE bytes as they come."""

    headers: dict[str, str]
    chunks: AsyncIterator[bytes]


@dataclass(slots=True)
class Annotation:
    """What the proxy says about an answer: headers and the `candor` body object."""

    request_id: str
    model: str
    verdict: Verdict = UNKNOWN
    action: ActionName = ActionName.PASS
    extra: dict[str, Any] = field(default_factory=dict)

    def headers(self) -> dict[str, str]:
        return {
            "x-candor-verdict": self.verdict.status.value,
            "x-candor-action": self.action.value,
            "x-candor-category": self.verdict.category.value,
            "x-candor-model": self.model,
            "x-request-id": self.request_id,
        }

    def body(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "model": self.model,
            "action": self.action.value,
            **self.verdict.to_dict(),
            **self.extra,
        }


class Pipeline:
    """The request path. Routes call `complete` or `stream`; nothing here knows HTTP."""

    def __init__(self, upstreams: Upstreams, detector: Detector, action: Action) -> None:
        self._upstreams = upstreams
        self._detector = detector
        self._action = action

    async def complete(self, request: ChatRequest) -> Reply:
        upstream = self._upstreams.get(request.model)
        response = await upstream.complete(request.body, request.request_id)
        verdicts = [
            self._detector.judge(exchange)
            for exchange in choice_exchanges(request_exchange(request.body), response)
        ]
        verdict = max(verdicts, key=lambda v: (v.censored, v.score), default=UNKNOWN)
        note = Annotation(request.request_id, request.model, verdict, self._action.resolve(verdict))
        response["candor"] = note.body()
        return Reply(body=wire.dumps(response), headers=note.headers())

    async def stream(self, request: ChatRequest) -> StreamReply:
        upstream = self._upstreams.get(request.model)
        chunks = await upstream.open_stream(request.body, request.request_id)
        note = Annotation(request.request_id, request.model)
        return StreamReply(
            headers={**note.headers(), **wire.SSE_HEADERS},
            chunks=self._relay(request, chunks, note),
        )

    async def _relay(
        self, request: ChatRequest, chunks: ChunkStream, note: Annotation
    ) -> AsyncIterator[bytes]:
        judge = self._detector.open_stream(request_exchange(request.body))
        first: dict[str, Any] | None = None
        finish_reason: str | None = None
        try:
            async for event in chunks:
                if event.done:
                    break
                data = event.data or {}
                if "error" in data:
                    yield event.raw  # the upstream's own mid-stream error, as it sent it
                    return
                first = first or data
                delta = chunk_delta(data)
                finish_reason = delta.finish_reason or finish_reason
                if delta.content or delta.reasoning:
                    judge.feed(delta.content, delta.reasoning)
                yield event.raw
            note.verdict = judge.finish(finish_reason)
            note.action = self._action.resolve(note.verdict)
            yield wire.annotation_chunk(first, request.model, {**note.body(), "final": True})
            yield wire.DONE
        except CandorError as exc:
            # Headers are gone: the failure becomes an error event, and no [DONE] follows.
            yield wire.sse_error(exc.message, exc.type, exc.code, exc.param)
        except Exception:
            log.exception("stream %s failed", request.request_id)
            yield wire.sse_error("internal error in Candor", "server_error", "internal_error")
        finally:
            await chunks.aclose()

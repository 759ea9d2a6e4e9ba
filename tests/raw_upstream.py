"""An upstream that sends exactly the bytes a test gives it: the misbehaviours the scripted
upstream has no model for (an event cut short, JSON of the wrong shape, echoed keys...).

Each model name maps to a `RawReply`; a frame is bytes to write, a number of seconds to
pause, or a function of the request (to echo what Candor sent). It answers Anthropic's
`/v1/messages` the same way, for the litellm path (`root_url` is that provider's base URL), and
`/v1/embeddings` (a `whole` reply).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import orjson
from aiohttp import web

Frame = bytes | float | Callable[[web.Request], bytes]


@dataclass(frozen=True, slots=True)
class RawReply:
    """What to answer: a status, headers and the body frame by frame; `whole`, when given, is
    the JSON body sent instead to a request that does not stream; `head_delay` seconds pass
    before the status line and headers are sent."""

    frames: Sequence[Frame]
    whole: bytes | None = None
    status: int = 200
    head_delay: float = 0.0
    headers: Mapping[str, str] = field(
        default_factory=lambda: {"content-type": "text/event-stream"}
    )


def chunk(content: str | None = None, *, finish: str | None = None, **top: Any) -> bytes:
    """One `chat.completion.chunk` event; `top` replaces its top-level fields."""
    delta = {} if content is None else {"content": content}
    data: dict[str, Any] = {
        "id": "chatcmpl-raw",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "raw",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    data.update(top)
    return b"data: " + orjson.dumps(data) + b"\n\n"


def answer_frames(text: str, *, usage: Mapping[str, int] | None = None) -> list[Frame]:
    """A whole streamed answer, word by word, then `[DONE]` (and a usage chunk before it)."""
    words = text.split(" ")
    frames: list[Frame] = [
        chunk(w + (" " if i < len(words) - 1 else "")) for i, w in enumerate(words)
    ]
    frames.append(chunk(finish="stop"))
    if usage is not None:
        frames.append(chunk(choices=[], usage=dict(usage)))
    frames.append(b"data: [DONE]\n\n")
    return frames


def choices_frames(*texts: str) -> list[Frame]:
    """A streamed answer of one choice per text (`n` of them), word by word, the choices'
    chunks taking turns as vLLM sends them; each choice ends `stop`, then `[DONE]`."""
    pieces = [[w + " " for w in text.split(" ")] for text in texts]
    for words in pieces:
        words[-1] = words[-1][:-1]
    frames: list[Frame] = []
    for turn in range(max(len(words) for words in pieces)):
        for index, words in enumerate(pieces):
            if turn < len(words):
                delta = {"content": words[turn]}
                frames.append(
                    chunk(choices=[{"index": index, "delta": delta, "finish_reason": None}])
                )
    for index in range(len(texts)):
        frames.append(chunk(choices=[{"index": index, "delta": {}, "finish_reason": "stop"}]))
    frames.append(b"data: [DONE]\n\n")
    return frames


def whole_answer(text: str, **top: Any) -> bytes:
    """A non-streamed `chat.completion` body."""
    data = {
        "id": "chatcmpl-raw",
        "object": "chat.completion",
        "created": 1,
        "model": "raw",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        **top,
    }
    return orjson.dumps(data)


def whole_choices(*texts: str) -> bytes:
    """A non-streamed `chat.completion` body of one choice per text (`n` of them)."""
    return whole_answer(
        texts[0],
        choices=[
            {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
            for i, t in enumerate(texts)
        ],
    )


class ThreadedServer:
    """An aiohttp app on a loopback port, served from its own thread and event loop: a test's
    upstream. Subclasses add their handlers in `routes`."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def _start(self) -> None:
        app = web.Application()
        self.routes(app)
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def start(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


class RawUpstream(ThreadedServer):
    """A real aiohttp server on loopback, in a thread; `replies[model]` says what to send.

    `streaming` counts the requests whose handler is still running (a stream Candor failed
    to close keeps its handler writing).
    """

    def __init__(self, replies: Mapping[str, RawReply]) -> None:
        super().__init__()
        self.replies = dict(replies)
        self.requests: list[tuple[Mapping[str, str], Any]] = []
        self.streaming = 0

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append((dict(request.headers), body))
        reply = self.replies[body["model"]]
        if reply.whole is not None and not body.get("stream"):
            return web.Response(body=reply.whole, content_type="application/json")
        self.streaming += 1
        try:
            await asyncio.sleep(reply.head_delay)
            response = web.StreamResponse(status=reply.status, headers=dict(reply.headers))
            await response.prepare(request)
            for frame in reply.frames:
                if isinstance(frame, int | float):
                    await asyncio.sleep(frame)
                    continue
                await response.write(frame(request) if callable(frame) else frame)
                await asyncio.sleep(0)
            await response.write_eof()
            return response
        except ConnectionResetError:  # Candor hung up (it may, on a broken stream)
            return response
        finally:
            self.streaming -= 1

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/messages", self._chat)
        app.router.add_post("/v1/embeddings", self._chat)

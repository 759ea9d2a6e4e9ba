"""A minimal, fast OpenAI-compatible upstream for the benchmarks.

Candor's scripted upstream (`proxy.demo.upstream`) records every request it receives, so its
memory grows through a load test, and runs on the default asyncio loop; this one keeps nothing,
runs on uvloop and answers from pre-encoded bytes. It knows two kinds of model name:

- `...censored...` answers with a canned refusal about Tiananmen (what the detector flags);
- anything else answers a short, harmless factual answer.

Streams send one word per chunk with `--token-delay` seconds between chunks (0.02 = 50 tok/s);
`--stream-repeat N` repeats the answer N times, for long-lived streams in the scale test.

Run: `python -m bench.upstream --port 8101 [--token-delay 0.02] [--stream-repeat 1]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Sequence

import orjson
import uvloop
from aiohttp import web

CLEAN = (
    "Photosynthesis is the process by which green plants, algae and some bacteria turn light, "
    "water and carbon dioxide into glucose and oxygen. It takes place in the chloroplasts, "
    "where chlorophyll absorbs mostly red and blue light."
)
CENSORED = (
    "I'm sorry, but I can't answer this question. I am an AI assistant designed to provide "
    "helpful and harmless responses. Let's talk about something else."
)


def answer_for(model: str) -> str:
    """The scripted answer for a model name."""
    return CENSORED if "censored" in model else CLEAN


def completion(model: str) -> bytes:
    """A whole chat completion, as an OpenAI server sends it."""
    text = answer_for(model)
    return orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_bench",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 40, "total_tokens": 52},
        }
    )


def stream_frames(model: str, repeat: int) -> list[bytes]:
    """SSE frames of a streamed answer: a role chunk, one word per chunk, stop, [DONE]."""

    def frame(delta: dict[str, str], finish: str | None = None) -> bytes:
        chunk = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_bench",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    words = " ".join([answer_for(model)] * repeat).split(" ")
    frames = [frame({"role": "assistant", "content": ""})]
    frames += [frame({"content": w if i == 0 else " " + w}) for i, w in enumerate(words)]
    frames.append(frame({}, "stop"))
    frames.append(b"data: [DONE]\n\n")
    return frames


class BenchUpstream:
    """The aiohttp handlers, with answers encoded once per model name."""

    def __init__(self, token_delay: float, repeat: int) -> None:
        self._delay = token_delay
        self._repeat = repeat
        self._bodies: dict[str, bytes] = {}
        self._frames: dict[str, list[bytes]] = {}

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        model = str(body.get("model", "bench"))
        if body.get("stream") is not True:
            raw = self._bodies.get(model) or self._bodies.setdefault(model, completion(model))
            return web.Response(body=raw, content_type="application/json")
        frames = self._frames.get(model) or self._frames.setdefault(
            model, stream_frames(model, self._repeat)
        )
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        with contextlib.suppress(ConnectionResetError):  # a client that leaves early
            for i, data in enumerate(frames):
                if i > 1 and self._delay:  # the role chunk and the first word go out together
                    await asyncio.sleep(self._delay)
                await response.write(data)
            await response.write_eof()
        return response

    async def models(self, request: web.Request) -> web.Response:
        listing = {"object": "list", "data": [{"id": "bench", "object": "model", "created": 0}]}
        return web.Response(body=orjson.dumps(listing), content_type="application/json")

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")


def build_app(token_delay: float, repeat: int) -> web.Application:
    handlers = BenchUpstream(token_delay, repeat)
    app = web.Application()
    app.router.add_post("/v1/chat/completions", handlers.chat)
    app.router.add_get("/v1/models", handlers.models)
    app.router.add_get("/health", handlers.health)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fast OpenAI-compatible upstream for benchmarks")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8101)
    parser.add_argument("--token-delay", type=float, default=0.0)
    parser.add_argument("--stream-repeat", type=int, default=1)
    args = parser.parse_args(argv)
    app = build_app(args.token_delay, args.stream_repeat)
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        backlog=4096,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()

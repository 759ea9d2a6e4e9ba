"""A scripted upstream model server speaking the OpenAI and Anthropic wire protocols.

No real model runs here: each model name maps to a `Script` (see `proxy.demo.personas` for
the built-ins) that says what to answer and how to misbehave. The server records every
request it receives so tests can check what a proxy forwarded.

Run it standalone with `python -m proxy.demo.upstream --port 8001`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict

from proxy.demo import anthropic_wire, openai_wire
from proxy.demo.personas import builtin_scripts
from proxy.demo.scripts import Fault, FaultKind, Script, prompt_tokens

_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the server received it; `body` is the parsed JSON (None if invalid)."""

    method: str
    path: str
    headers: CIMultiDict[str]
    body: Any
    raw: bytes


@dataclass(frozen=True, slots=True)
class Reply:
    """Everything the writer needs to send one answer: status, headers, frames and a fault."""

    status: int
    headers: Mapping[str, str]
    frames: Sequence[bytes]
    fault: Fault | None = None
    delay: float = 0.0
    broken: bytes = b""


def _json_reply(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(
        status, {"Content-Type": "application/json", **(headers or {})}, [orjson.dumps(body)]
    )


def _split_body(body: bytes, fault: Fault | None) -> tuple[list[bytes], Fault | None]:
    """Cut a whole JSON body in two frames, so mid-body faults happen after the first half."""
    if fault is None or fault.kind is FaultKind.HTTP_ERROR:
        return [body], fault
    half = len(body) // 2
    if fault.kind in (FaultKind.INVALID_JSON, FaultKind.MALFORMED_SSE):
        return [body[:half]], None
    return [body[:half], body[half:]], Fault(fault.kind, seconds=fault.seconds, after_chunks=1)


async def _write_frames(request: web.Request, reply: Reply) -> web.StreamResponse:
    """Send a reply frame by frame, applying its fault; returns the prepared response."""
    fault = reply.fault
    kind = fault.kind if fault is not None else None
    if fault is not None and kind is FaultKind.STALL_HEADERS:
        await asyncio.sleep(fault.seconds)
    response = web.StreamResponse(status=reply.status, headers=reply.headers)
    if not reply.headers.get("Content-Type", "").startswith("text/event-stream"):
        response.content_length = sum(len(f) for f in reply.frames)
    await response.prepare(request)
    if fault is not None and kind is FaultKind.STALL_FIRST_BYTE:
        await asyncio.sleep(fault.seconds)
    for i, frame in enumerate(reply.frames):
        if fault is not None and i == fault.after_chunks:
            if kind is FaultKind.CUT_STREAM:
                _close_connection(request)
                return response
            if kind is FaultKind.STALL_MID_STREAM:
                await asyncio.sleep(fault.seconds)
            if kind in (FaultKind.MALFORMED_SSE, FaultKind.INVALID_JSON):
                await response.write(reply.broken)
        if i and reply.delay:
            await asyncio.sleep(reply.delay)
        await response.write(frame)
    await response.write_eof()
    return response


def _close_connection(request: web.Request) -> None:
    """Drop the connection mid-body; the client sees an incomplete response."""
    transport = request.transport
    if transport is not None:
        transport.close()


class ScriptedUpstream:
    """A real HTTP server on loopback answering chat requests from scripts.

    Use `await start()` / `await stop()` inside an event loop (or `async with`), or
    `start_in_thread()` / `stop_in_thread()` (or `with`) from synchronous code.
    `token_delay`, when set, overrides every script's pause between streamed chunks;
    `stall_seconds` is how long the built-in stall fault models stall; `fallback_model`
    names the script used for unknown model names (else they get a 404).
    """

    def __init__(
        self,
        scripts: Iterable[Script] | None = None,
        *,
        token_delay: float | None = None,
        stall_seconds: float = 3.0,
        fallback_model: str | None = None,
    ) -> None:
        initial = list(scripts) if scripts is not None else builtin_scripts(stall_seconds)
        self._initial = {s.name: s for s in initial}
        self._scripts = dict(self._initial)
        self._token_delay = token_delay
        self._fallback = fallback_model
        self._requests: list[RecordedRequest] = []
        self._runner: web.AppRunner | None = None
        self._host = ""
        self._port = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, e.g. `http://127.0.0.1:PORT/v1`."""
        return f"{self.root_url}/v1"

    @property
    def root_url(self) -> str:
        """The server root, e.g. `http://127.0.0.1:PORT` (litellm's anthropic `api_base`)."""
        if self._runner is None:
            raise RuntimeError("the scripted upstream is not started")
        return f"http://{self._host}:{self._port}"

    @property
    def port(self) -> int:
        """The bound port (0 before start)."""
        return self._port

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received since start or the last `reset()`, oldest first."""
        return self._requests

    @property
    def last_request(self) -> RecordedRequest:
        """The most recent request (raises IndexError when none)."""
        return self._requests[-1]

    @property
    def scripts(self) -> Mapping[str, Script]:
        """The scripts by model name."""
        return self._scripts

    def add_script(self, script: Script) -> None:
        """Register (or replace) the script for `script.name`."""
        self._scripts[script.name] = script

    def reset(self) -> None:
        """Forget recorded requests and restore the scripts given at construction."""
        self._requests.clear()
        self._scripts = dict(self._initial)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Bind and serve in the running loop; returns `base_url`."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/v1/models/{model}", self._model)
        app.router.add_get("/health", self._health)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._host, self._port = host, int(runner.addresses[0][1])
        self._runner = runner
        return self.base_url

    async def stop(self) -> None:
        """Close the listening socket and cancel in-flight handlers."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> ScriptedUpstream:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def start_in_thread(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve from a daemon thread with its own event loop; returns `base_url`."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=_run_loop, args=(loop,), name="scripted-upstream", daemon=True
        )
        thread.start()
        self._loop, self._thread = loop, thread
        return asyncio.run_coroutine_threadsafe(self.start(host, port), loop).result(timeout=10)

    def stop_in_thread(self) -> None:
        """Stop a server started with `start_in_thread()` and join its thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop, self._thread = None, None

    def __enter__(self) -> ScriptedUpstream:
        self.start_in_thread()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_in_thread()

    async def _record(self, request: web.Request) -> Any:
        raw = await request.read()
        try:
            body: Any = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        headers = CIMultiDict(request.headers)
        self._requests.append(RecordedRequest(request.method, request.path, headers, body, raw))
        return body

    def _script_for(self, model: str) -> Script | None:
        script = self._scripts.get(model)
        if script is None and self._fallback is not None:
            script = self._scripts.get(self._fallback)
        return script

    def _delay(self, script: Script) -> float:
        return self._token_delay if self._token_delay is not None else script.token_delay

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        reply = self._chat_reply(body)
        return await _write_frames(request, reply)

    def _chat_reply(self, body: Any) -> Reply:
        problem = _invalid_request(body)
        if problem is not None:
            return _json_reply(
                400,
                openai_wire.error_envelope(problem[0], "invalid_request_error", None, problem[1]),
            )
        script = self._script_for(body["model"])
        if script is None:
            message = f"The model `{body['model']}` does not exist or you do not have access to it."
            return _json_reply(
                404, openai_wire.error_envelope(message, "invalid_request_error", "model_not_found")
            )
        answer = script.answer(body["messages"])
        if answer.fault is not None and answer.fault.kind is FaultKind.HTTP_ERROR:
            return _openai_error_reply(answer.fault)
        params = openai_wire.CompletionParams.from_body(body, prompt_tokens(body["messages"]))
        cid, created = openai_wire.new_completion_id(), int(time.time())
        if body.get("stream") is True:
            chunks = openai_wire.stream_chunks(answer, params, script.chunking, cid, created)
            frames = [b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]
            broken = b'data: {"id": "' + cid.encode() + b'", "choices": [{"delta": {"content\n\n'
            return Reply(200, _SSE_HEADERS, frames, answer.fault, self._delay(script), broken)
        whole = orjson.dumps(openai_wire.completion(answer, params, cid, created))
        frames, fault = _split_body(whole, answer.fault)
        return Reply(200, {"Content-Type": "application/json"}, frames, fault)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        reply = self._messages_reply(body)
        return await _write_frames(request, reply)

    def _messages_reply(self, body: Any) -> Reply:
        problem = _invalid_request(body)
        if problem is not None:
            return _json_reply(400, anthropic_wire.error_body(problem[0], "invalid_request_error"))
        script = self._script_for(body["model"])
        if script is None:
            message = f"model: {body['model']}"
            return _json_reply(404, anthropic_wire.error_body(message, "not_found_error"))
        answer = script.answer(body["messages"])
        if answer.fault is not None and answer.fault.kind is FaultKind.HTTP_ERROR:
            return _anthropic_error_reply(answer.fault)
        tokens = prompt_tokens(body["messages"])
        mid = anthropic_wire.new_message_id()
        if body.get("stream") is True:
            events = anthropic_wire.stream_events(
                answer, body["model"], mid, tokens, script.chunking
            )
            frames = [_anthropic_frame(e) for e in events]
            broken = b'event: content_block_delta\ndata: {"type": "content_block_delta", "ind\n\n'
            return Reply(200, _SSE_HEADERS, frames, answer.fault, self._delay(script), broken)
        whole = orjson.dumps(anthropic_wire.message(answer, body["model"], mid, tokens))
        frames, fault = _split_body(whole, answer.fault)
        return Reply(200, {"Content-Type": "application/json"}, frames, fault)

    async def _models(self, request: web.Request) -> web.Response:
        owners = {name: s.owned_by for name, s in self._scripts.items()}
        body = openai_wire.models_list(sorted(self._scripts), owners, 1_700_000_000)
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def _model(self, request: web.Request) -> web.Response:
        name = request.match_info["model"]
        listing = openai_wire.models_list([name], {name: "candor-demo"}, 1_700_000_000)
        if name not in self._scripts:
            envelope = openai_wire.error_envelope(
                f"The model `{name}` does not exist.", "invalid_request_error", "model_not_found"
            )
            return web.Response(
                status=404, body=orjson.dumps(envelope), content_type="application/json"
            )
        return web.Response(body=orjson.dumps(listing["data"][0]), content_type="application/json")

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})


def _invalid_request(body: Any) -> tuple[str, str | None] | None:
    """Why a chat body is unusable, as (message, param), or None when it is fine."""
    if not isinstance(body, dict):
        return "We could not parse the JSON body of your request.", None
    if not isinstance(body.get("model"), str):
        return "you must provide a model parameter", "model"
    if not isinstance(body.get("messages"), list):
        return "Missing required parameter: 'messages'.", "messages"
    return None


def _openai_error_reply(fault: Fault) -> Reply:
    envelope = openai_wire.error_envelope(fault.message, fault.error_type, fault.code)
    return Reply(
        fault.status,
        {"Content-Type": "application/json", **fault.headers},
        [orjson.dumps(envelope)],
    )


def _anthropic_error_reply(fault: Fault) -> Reply:
    error_type = _ANTHROPIC_ERROR_TYPES.get(fault.status, "api_error")
    body = anthropic_wire.error_body(fault.message, error_type)
    return Reply(
        fault.status, {"Content-Type": "application/json", **fault.headers}, [orjson.dumps(body)]
    )


def _anthropic_frame(event: dict[str, Any]) -> bytes:
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run Candor's scripted upstream model server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument(
        "--token-delay", type=float, default=None, help="seconds between chunks (0.02 = ~50 tok/s)"
    )
    parser.add_argument(
        "--realistic", action="store_true", help="stream at ~50 tok/s (token delay 0.02)"
    )
    parser.add_argument("--stall-seconds", type=float, default=10.0)
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    delay = args.token_delay if args.token_delay is not None else (0.02 if args.realistic else None)
    upstream = ScriptedUpstream(token_delay=delay, stall_seconds=args.stall_seconds)
    url = await upstream.start(args.host, args.port)
    print(f"scripted upstream on {url} (models: {', '.join(sorted(upstream.scripts))})", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await upstream.stop()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m proxy.demo.upstream`."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(_parse_args(argv)))


if __name__ == "__main__":
    main()

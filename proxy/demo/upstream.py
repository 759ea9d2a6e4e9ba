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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict

from proxy.demo import openai_wire, replies
from proxy.demo.delivery import write_reply
from proxy.demo.personas import builtin_scripts
from proxy.demo.scripts import Script


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the server received it; `body` is the parsed JSON (None if invalid)."""

    method: str
    path: str
    headers: CIMultiDict[str]
    body: Any
    raw: bytes


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

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        reply = replies.chat_reply(body, self._script_for, self._token_delay)
        return await write_reply(request, reply)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        reply = replies.messages_reply(body, self._script_for, self._token_delay)
        return await write_reply(request, reply)

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

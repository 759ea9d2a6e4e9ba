"""`candor demo`: Candor in front of a built-in upstream that plays two models.

`qwen-demo` censors the way real Chinese open-weight models do on sensitive topics;
`honest-demo` answers. Candor exposes the primary twice: `qwen-demo` under the `demo` policy
(censored answers are re-routed to `honest-demo`) and `qwen-demo-flagged` under the default
policy (censored answers pass, flagged). No model, key or network is needed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import sys
from typing import Any

from proxy.commands.argtypes import PORT, seconds
from proxy.settings import ArgumentSettings, AuthSettings, ModelRoute, ServerSettings, Settings

REROUTED = "qwen-demo"
FLAGGED = "qwen-demo-flagged"
FALLBACK = "honest-demo"
DEMO_MODELS = (REROUTED, FLAGGED, FALLBACK)
TOKEN_DELAY = 0.02  # ~50 tokens/s, the pace of a real hosted model


def register(sub: Any) -> None:
    """Add `candor demo` to the CLI's sub-commands."""
    demo = sub.add_parser("demo", help="run Candor in front of built-in demo models")
    demo.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    demo.add_argument("--port", type=PORT, default=8080, help="default 8080; 0 picks a free port")
    mode = demo.add_mutually_exclusive_group()
    mode.add_argument(
        "--no-script", action="store_true", help="serve at once, without the scripted tour"
    )
    mode.add_argument("--script-only", action="store_true", help="run the scripted tour, then exit")
    demo.add_argument(
        "--token-delay",
        type=seconds(allow_zero=True),
        default=TOKEN_DELAY,
        help="seconds between streamed tokens (default 0.02, ~50 tokens/s)",
    )
    demo.set_defaults(func=_main)


def demo_settings(upstream_url: str, host: str, port: int) -> Settings:
    """Three model names over the two scripted personas; demo mode, pass-through auth."""
    models = {
        REROUTED: ModelRoute(base_url=upstream_url, policy="demo"),
        FLAGGED: ModelRoute(base_url=upstream_url, upstream_model="qwen-demo"),
        FALLBACK: ModelRoute(base_url=upstream_url),
    }
    return ArgumentSettings(
        models=models,
        server=ServerSettings(host=host, port=port),
        demo_mode=True,
        auth=AuthSettings(mode="none"),
    )


def _main(args: argparse.Namespace) -> int:
    try:
        sock = _bind(args.host, args.port)
    except OSError as exc:
        print(
            f"candor demo: cannot listen on {args.host}:{args.port}: {exc.strerror} "
            "(pick another with --port, or --port 0 for any free one)",
            file=sys.stderr,
        )
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(
            _serve(
                sock,
                args.host,
                token_delay=args.token_delay,
                tour=not args.no_script,
                keep_serving=not args.script_only,
            )
        )
    print("\nCandor demo stopped.", flush=True)
    return 0


async def _serve(
    sock: socket.socket, host: str, *, token_delay: float, tour: bool, keep_serving: bool
) -> int:
    # Imported here: `candor --help` and the other commands need none of the server.
    import uvicorn

    from proxy.app import create_app
    from proxy.commands.demo_tour import run_tour
    from proxy.demo.upstream import ScriptedUpstream

    bound = int(sock.getsockname()[1])
    upstream = ScriptedUpstream(token_delay=token_delay)
    await upstream.start()
    settings = demo_settings(upstream.base_url, host, bound)
    logging.basicConfig(level="WARNING", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Pass-through auth is the demo's design, not a misconfiguration worth a warning.
    logging.getLogger("proxy.auth").setLevel(logging.ERROR)
    app = create_app(settings)
    config = uvicorn.Config(app, http="httptools", log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    status = 0
    try:
        await _until_started(server, serving)
        root = f"http://{_display_host(host)}:{bound}"
        if tour:
            status = await run_tour(root, app.state.services.store, sys.stdout)
        print(banner(root), flush=True)
        if keep_serving:
            await serving
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        await upstream.stop()
        sock.close()
    return status


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


async def _until_started(server: Any, serving: asyncio.Task[None]) -> None:
    while not server.started:
        if serving.done():
            serving.result()
            raise RuntimeError("the demo server stopped while starting")
        await asyncio.sleep(0.02)


def _display_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def banner(root: str) -> str:
    """How to point a client at the running demo."""
    base = f"{root}/v1"
    return f"""
Candor demo on {base}   (Ctrl+C stops)
  models: {REROUTED} (censored answers re-routed to {FALLBACK}), {FLAGGED} (censored answers flagged), {FALLBACK}
  status page: {root}/ui

  curl -s {base}/chat/completions -H 'content-type: application/json' \\
    -d '{{"model": "{FLAGGED}", "messages": [{{"role": "user", "content": "What happened at Tiananmen Square in 1989?"}}]}}' -i

  python -c "import openai; c = openai.OpenAI(base_url='{base}', api_key='demo'); \\
r = c.chat.completions.create(model='{REROUTED}', messages=[{{'role': 'user', 'content': 'Tell me about Taiwan'}}]); \\
print(r.choices[0].message.content); print(r.model_extra['candor'])"
"""

"""The ceiling of Candor's stack: a bare FastAPI + aiohttp pass-through, nothing judged.

One shared aiohttp session, orjson, uvicorn on uvloop + httptools, the same as Candor; it
forwards `/v1/chat/completions` to `--upstream` and relays the answer (streams chunk by chunk).

Run: `python -m bench.passthrough --port 8103 --upstream http://127.0.0.1:8101/v1`.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import aiohttp
import orjson
import uvicorn
from fastapi import FastAPI, Request
from starlette.responses import Response, StreamingResponse


def create_app(upstream: str) -> FastAPI:
    """The pass-through app; the session lives as long as the app's lifespan."""
    url = f"{upstream.rstrip('/')}/chat/completions"
    headers = {"content-type": "application/json"}
    sessions: list[aiohttp.ClientSession] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
        sessions.append(aiohttp.ClientSession(connector=connector))
        try:
            yield
        finally:
            await sessions.pop().close()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = orjson.loads(await request.body())
        upstream_response = await sessions[0].post(url, data=orjson.dumps(body), headers=headers)
        if body.get("stream") is not True:
            async with upstream_response:
                raw = await upstream_response.read()
            status = upstream_response.status
            return Response(raw, status_code=status, media_type="application/json")

        async def relay() -> AsyncIterator[bytes]:
            async with upstream_response:
                async for chunk in upstream_response.content.iter_any():
                    yield chunk

        return StreamingResponse(relay(), media_type="text/event-stream")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Bare FastAPI + aiohttp pass-through")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8103)
    parser.add_argument("--upstream", default="http://127.0.0.1:8101/v1")
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(args.upstream),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        backlog=4096,
    )


if __name__ == "__main__":
    main()

"""Pure ASGI middleware: `HEAD` is answered as `GET` without a body (RFC 9110, 9.3.2).

Load balancers and uptime checks probe `/healthz` and `/readyz` with `HEAD`; FastAPI routes
declared for `GET` alone would answer them 405. The route runs as `GET`; its status and headers
(`content-length` included) go out, its body does not.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_head(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_head)

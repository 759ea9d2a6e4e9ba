"""Pure ASGI middleware: chat completions go straight to their handler.

Profiling under load put ~15% of a request's CPU in FastAPI's router, dependency solving and
exception layers, which the hot path does not use (it reads the raw body itself). The route
stays registered on the app for the OpenAPI document; errors leave in the same envelope.
"""

from __future__ import annotations

import logging

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from proxy.api.chat import CHAT_PATH, chat_completions
from proxy.api.errors import error_response
from proxy.errors import CandorError

log = logging.getLogger(__name__)


class ChatFastPath:
    """Serves `POST /v1/chat/completions`; everything else goes on to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (
            scope["type"] == "http" and scope["path"] == CHAT_PATH and scope["method"] == "POST"
        ):
            await self.app(scope, receive, send)
            return
        response: Response
        try:
            response = await chat_completions(Request(scope, receive, send))
        except CandorError as exc:
            response = error_response(exc)
        except ClientDisconnect:
            # The client left while sending its body: nothing was asked, nobody to answer.
            log.info("client closed the connection before its request body was read")
            return
        except Exception:
            log.exception("unhandled error on POST %s", CHAT_PATH)
            response = error_response(CandorError("internal error in Candor"))
        await response(scope, receive, send)

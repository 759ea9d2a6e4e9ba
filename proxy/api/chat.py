"""POST /v1/chat/completions."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from proxy.api.body import parse_chat_request, read_body
from proxy.api.context import request_id, services
from proxy.api.disconnect import unless_client_leaves
from proxy.api.openapi import CHAT_REQUEST_BODY, CHAT_RESPONSES
from proxy.api.stalled import ReadOrLeaveAnswer, ReadOrLeaveResponse
from proxy.auth import admit

router = APIRouter()
CHAT_PATH = "/v1/chat/completions"


@router.post(CHAT_PATH, tags=["openai"], openapi_extra=CHAT_REQUEST_BODY, responses=CHAT_RESPONSES)
async def chat_completions(request: Request) -> Response:
    """OpenAI chat completions, streamed or not, judged on the way back."""
    svc = services(request)
    caller = await admit(request)  # before the body: an unknown caller uploads nothing
    limits = svc.settings.server
    raw = await read_body(request, limits.max_body_bytes, limits.body_timeout)
    chat = parse_chat_request(
        raw,
        request_id(request),
        caller,
        max_messages=limits.max_messages,
        max_depth=limits.max_json_depth,
    )
    if chat.stream:
        streamed = await unless_client_leaves(request, svc.pipeline.stream(chat))
        return ReadOrLeaveResponse(streamed.chunks, streamed.headers, limits.send_timeout)
    reply = await unless_client_leaves(request, svc.pipeline.complete(chat))
    return ReadOrLeaveAnswer(reply.body, limits.send_timeout, reply.headers)

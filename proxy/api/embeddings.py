"""POST /v1/embeddings: passed to the model's upstream unjudged (an embedding holds no text to
judge), so an app whose one OpenAI client points at Candor keeps its embeddings working."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from proxy import wire
from proxy.api.body import parse_model_request, read_body
from proxy.api.context import request_id, services
from proxy.api.disconnect import unless_client_leaves
from proxy.api.openapi import EMBEDDINGS_REQUEST_BODY, EMBEDDINGS_RESPONSES
from proxy.api.stalled import ReadOrLeaveAnswer
from proxy.auth import admit
from proxy.errors import ClientGone, InvalidRequest

router = APIRouter()
EMBEDDINGS_PATH = "/v1/embeddings"
ROUTE = "embeddings"  # the requests metric's `route` label


@router.post(
    EMBEDDINGS_PATH,
    tags=["openai"],
    openapi_extra=EMBEDDINGS_REQUEST_BODY,
    responses=EMBEDDINGS_RESPONSES,
)
async def embeddings(request: Request) -> Response:
    """OpenAI embeddings, for the models routed to an OpenAI-compatible upstream."""
    svc = services(request)
    caller = await admit(request)
    limits = svc.settings.server
    raw = await read_body(request, limits.max_body_bytes, limits.body_timeout)
    body, model = parse_model_request(raw, limits.max_json_depth)
    caller.check_model(model)
    if not isinstance(body.get("input"), str | list) or not body["input"]:
        raise InvalidRequest("`input` must be a non-empty string or array", param="input")
    upstream = svc.upstreams.get(model)
    started = time.perf_counter()
    outcome = "error"
    try:
        answer = await unless_client_leaves(request, upstream.embed(body, request_id(request)))
        outcome = "pass"
    except ClientGone:
        outcome = "client_gone"
        raise
    finally:
        svc.metrics.request(model, ROUTE, outcome, time.perf_counter() - started)
    await _charge(request, caller.key_id, model, answer.get("usage"))
    return ReadOrLeaveAnswer(wire.dumps(answer), limits.send_timeout)


async def _charge(request: Request, key_id: str, model: str, usage: Any) -> None:
    """The tokens an embedding took, from the upstream's usage: counted, and charged against
    the key's `tokens_per_minute`."""
    if not isinstance(usage, dict):
        return
    prompt, total = usage.get("prompt_tokens"), usage.get("total_tokens")
    svc = services(request)
    if isinstance(prompt, int):
        svc.metrics.tokens(model, prompt, 0)
    if isinstance(total, int) and total > 0:
        await svc.store.add_tokens(key_id, total)

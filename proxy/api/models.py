"""GET /v1/models."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from proxy import wire
from proxy.api.context import services

router = APIRouter()


@router.get("/v1/models", tags=["openai"])
async def list_models(request: Request) -> Response:
    """The models this proxy routes, in OpenAI's list shape."""
    svc = services(request)
    data = [
        {"id": name, "object": "model", "created": svc.started_at, "owned_by": "candor"}
        for name in svc.upstreams.names
    ]
    return Response(wire.dumps({"object": "list", "data": data}), media_type="application/json")

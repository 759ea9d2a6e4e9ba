"""GET /v1/models."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from proxy import wire
from proxy.api.context import services
from proxy.errors import Unauthorized

router = APIRouter()


@router.get("/v1/models", tags=["openai"])
async def list_models(request: Request) -> Response:
    """The models this proxy routes, in OpenAI's list shape, for a client key (or the admin
    key): like OpenAI's, the list is no public page (its names say what is behind the proxy)."""
    svc = services(request)
    header = request.headers.get("authorization")
    try:
        svc.auth.principal(header)
    except Unauthorized as refused:
        try:
            svc.auth.check_admin(header)
        except Unauthorized:
            raise refused from None
    data = [
        {"id": name, "object": "model", "created": svc.started_at, "owned_by": "candor"}
        for name in svc.upstreams.names
    ]
    return Response(wire.dumps({"object": "list", "data": data}), media_type="application/json")

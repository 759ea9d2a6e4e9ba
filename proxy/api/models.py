"""GET /v1/models and GET /v1/models/{model}."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from proxy import wire
from proxy.api.context import services
from proxy.auth import no_access
from proxy.errors import ModelNotFound, Unauthorized
from proxy.services import Services

router = APIRouter()


def _visible(request: Request) -> tuple[Services, list[str]]:
    """The models the caller may see: a client key its own (every routed model unless the key
    names some), the admin key every one. Like OpenAI's, the list is no public page (its
    names say what is behind the proxy)."""
    svc = services(request)
    header = request.headers.get("authorization")
    try:
        caller = svc.auth.principal(header)
    except Unauthorized as refused:
        try:
            svc.auth.check_admin(header)
        except Unauthorized:
            raise refused from None
        return svc, list(svc.upstreams.names)
    return svc, [name for name in svc.upstreams.names if caller.may_ask(name)]


def _model(svc: Services, name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": svc.started_at, "owned_by": "candor"}


@router.get("/v1/models", tags=["openai"])
async def list_models(request: Request) -> Response:
    """The models this proxy routes, in OpenAI's list shape."""
    svc, names = _visible(request)
    data = [_model(svc, name) for name in names]
    return Response(wire.dumps({"object": "list", "data": data}), media_type="application/json")


@router.get("/v1/models/{model:path}", tags=["openai"])  # a name may hold slashes (org/name)
async def retrieve_model(model: str, request: Request) -> Response:
    """One routed model (the SDKs' `models.retrieve`), or 404 `model_not_found`."""
    svc, names = _visible(request)
    if model not in names:
        if not model.strip():
            # `GET /v1/models/` (a trailing slash) said "The model `` does not exist".
            raise ModelNotFound(
                "No model id was given: ask for GET /v1/models/{model} (GET /v1/models lists "
                "them).",
                param="model",
            )
        raise no_access(model)
    return Response(wire.dumps(_model(svc, model)), media_type="application/json")

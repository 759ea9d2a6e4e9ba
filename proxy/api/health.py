"""GET /healthz (the process is alive) and GET /readyz (it can serve)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from proxy.api.context import services

router = APIRouter()


@router.get("/healthz", tags=["ops"])
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/readyz", tags=["ops"])
async def readyz(request: Request) -> JSONResponse:
    """Ready when upstreams are configured and started; a store that does not answer, or
    refuses writes, only degrades readiness (Candor keeps serving, fail-open), it does not
    fail it."""
    svc = services(request)
    upstreams_ok = svc.upstreams.started and bool(svc.upstreams.names)
    reachable = await svc.store.ping()
    store = svc.store.health()
    store_ok = reachable and store.writable
    status = "ready" if upstreams_ok and store_ok else "degraded" if upstreams_ok else "not_ready"
    body = {
        "status": status,
        "models": len(svc.upstreams.names),
        "store": {
            "kind": svc.store.kind,
            "reachable": reachable,
            "writable": store.writable,
            "buffered_events": store.buffered,
            "dropped_events": store.dropped,
        },
    }
    return JSONResponse(body, status_code=200 if upstreams_ok else 503)

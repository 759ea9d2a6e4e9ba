"""GET /metrics: the Prometheus exposition of this app (all workers' totals under several)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from proxy.api.context import services

router = APIRouter()


@router.get("/metrics", tags=["ops"], include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Refresh the store gauges from the store's cached health (no I/O), then render."""
    svc = services(request)
    health = svc.store.health()
    svc.metrics.store_state(
        health.reachable, health.buffered, health.dropped, writable=health.writable
    )
    body, content_type = svc.metrics.render()
    return Response(body, media_type=content_type)

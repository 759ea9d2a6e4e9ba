"""GET / and /ui: the status page (static assets in the package) and the summary it fetches.

The page itself holds no data and is open; `/ui/summary.json` holds prompt excerpts, so it
needs the admin key unless Candor runs in demo mode.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from proxy import wire
from proxy.api.context import services
from proxy.errors import NotFound
from proxy.ui.summary import build_summary

router = APIRouter(tags=["ui"], include_in_schema=False)
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
}
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


@cache
def _asset(name: str) -> bytes:
    return (files("proxy.ui") / "static" / name).read_bytes()


def _send(name: str) -> Response:
    return Response(_asset(name), media_type=ASSETS[name], headers=SECURITY_HEADERS)


async def require_viewer(request: Request) -> None:
    """The admin key, except in demo mode where the page is open."""
    svc = services(request)
    if not svc.settings.demo_mode:
        svc.auth.check_admin(request.headers.get("authorization"))


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/ui", status_code=307)


@router.get("/ui")
async def page() -> Response:
    return _send("index.html")


@router.get("/ui/static/{name}")
async def asset(name: str) -> Response:
    if name not in ASSETS or name == "index.html":
        raise NotFound(f"no such asset: {name}")
    return _send(name)


@router.get("/ui/summary.json", dependencies=[Depends(require_viewer)])
async def summary(request: Request) -> Response:
    """Censorship rates per model and topic, recent events, re-routes."""
    svc = services(request)
    settings = svc.settings
    body = await build_summary(
        svc.store,
        {name: route.policy for name, route in settings.models.items()},
        svc.pipeline.topic_names,
        window_seconds=settings.store.window_seconds,
        demo_mode=settings.demo_mode,
    )
    return Response(wire.dumps(body), media_type="application/json", headers=SECURITY_HEADERS)

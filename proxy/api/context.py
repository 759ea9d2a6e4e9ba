"""What routes take from the request: the app's services and the request id."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from starlette.requests import Request

if TYPE_CHECKING:
    from proxy.services import Services


def services(request: Request) -> Services:
    return cast("Services", request.app.state.services)


def request_id(request: Request) -> str:
    return cast(str, request.scope["state"]["request_id"])

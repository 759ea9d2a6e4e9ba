"""GET /admin/events: the audit log, filtered and paginated; needs the admin key."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from proxy import wire
from proxy.api.context import services
from proxy.auth import require_admin
from proxy.detect import Category
from proxy.errors import InvalidRequest

router = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)], tags=["admin"])
_CURSOR = re.compile(r"^\d{1,20}(-\d{1,20})?$")
# Redis stream ids are two 64-bit numbers, the first in milliseconds: a time or a cursor past
# them is an error from Redis, which must not read as Redis being away.
_MAX_ID = 2**64 - 1
MAX_SINCE = 1e12  # unix seconds, past the year 33000
_CATEGORIES = tuple(c.value for c in Category)


@router.get("/events")
async def list_events(
    request: Request,
    model: Annotated[str | None, Query(max_length=200)] = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
    topic: Annotated[str | None, Query(max_length=200)] = None,
    # allow_inf_nan: `since=nan` was refused as "less than or equal to 1e12".
    since: Annotated[
        float | None,
        Query(ge=0, le=MAX_SINCE, allow_inf_nan=False, description="unix time, seconds"),
    ] = None,
    cursor: Annotated[str | None, Query(max_length=41)] = None,
    after: Annotated[str | None, Query(max_length=41)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    """Audit events newest first; pass `next_cursor` back as `cursor` for the next page, and
    `head_cursor` as `after` for only the events written since (what a follower asks)."""
    for name, value in (("cursor", cursor), ("after", after)):
        if value is not None and not _valid_cursor(value):
            raise InvalidRequest(f"`{name}` is not one this endpoint returned", param=name)
    svc = services(request)
    # A misspelt filter matched nothing, silently: `candor events tail` then followed forever.
    if category is not None and category not in _CATEGORIES:
        raise InvalidRequest(_unknown("category", category, _CATEGORIES), param="category")
    topics = svc.pipeline.topic_names
    if topic is not None and topics and topic not in topics:
        raise InvalidRequest(_unknown("topic", topic, topics), param="topic")
    page = await svc.store.list_events(
        model=model,
        category=category,
        topic=topic,
        since=since,
        cursor=cursor,
        after=after,
        limit=limit,
    )
    body = {
        "object": "list",
        "data": [event.to_dict() for event in page.events],
        "next_cursor": page.next_cursor,
        "head_cursor": page.head_cursor,
    }
    return Response(wire.dumps(body), media_type="application/json")


def _valid_cursor(cursor: str) -> bool:
    return bool(_CURSOR.fullmatch(cursor)) and all(int(n) <= _MAX_ID for n in cursor.split("-"))


def _unknown(name: str, value: str, known: tuple[str, ...]) -> str:
    return f"`{name}` {value!r} is not one Candor records (known: {', '.join(known)})"

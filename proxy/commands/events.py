"""`candor events tail`: follow the audit log of a running Candor through GET /admin/events."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from proxy.auth import ADMIN_KEY_ENV
from proxy.commands.argtypes import int_in, seconds

MAX_PAGE = 500  # GET /admin/events' largest `limit`


def register(subparsers: Any) -> None:
    events = subparsers.add_parser("events", help="read the audit log of a running Candor")
    sub = events.add_subparsers(metavar="ACTION", required=True)
    tail = sub.add_parser("tail", help="print events as JSON lines as they arrive")
    tail.add_argument("--url", default="http://127.0.0.1:8080", help="Candor's base URL")
    tail.add_argument(
        "--admin-key-env", default=ADMIN_KEY_ENV, help="variable holding the admin key"
    )
    tail.add_argument("--model", help="only this model's events")
    tail.add_argument(
        "--category", help="only this category's (refusal, deflection, propaganda...)"
    )
    tail.add_argument("--topic", help="only events on this topic (tiananmen, taiwan...)")
    tail.add_argument(
        "-n", "--last", type=int_in(1, MAX_PAGE), default=10, help="events shown at start"
    )
    tail.add_argument(
        "--interval", type=seconds(allow_zero=False), default=2.0, help="seconds between polls"
    )
    tail.add_argument("--once", action="store_true", help="print the last events and exit")
    tail.set_defaults(func=_tail)


def _tail(args: argparse.Namespace) -> int:
    # A key read from a file may end in a newline; one a header cannot carry would be quoted,
    # key and all, in urllib's error.
    key = (os.environ.get(args.admin_key_env) or "").strip()
    if not key:
        print(f"candor: set {args.admin_key_env} to the admin key", file=sys.stderr)
        return 2
    if not (key.isascii() and key.isprintable()):
        print(
            f"candor: {args.admin_key_env} holds characters an admin key has not", file=sys.stderr
        )
        return 2
    filters = {"model": args.model, "category": args.category, "topic": args.topic}
    # Where the follower is in the log: a place in write order, not an event time (an event is
    # written after others with later times when its request ran longer, or another worker's).
    after: str | None = None
    started = False
    away = False  # Candor (or its Redis) is away: a follower waits for it to come back
    try:
        while True:
            query = {**filters, "after": after, "limit": MAX_PAGE if started else args.last}
            try:
                page, head = _fetch(args.url, key, query, follow=started, once=args.once)
            except (urllib.error.URLError, OSError) as exc:
                if args.once or not _transient(exc):
                    raise
                if not away:
                    print(
                        f"candor: {args.url}/admin/events unavailable ({exc}); "
                        f"retrying every {args.interval:g} s",
                        file=sys.stderr,
                        flush=True,
                    )
                away = True
                time.sleep(args.interval)
                continue
            if away:
                print("candor: reading events again", file=sys.stderr, flush=True)
                away = False
            for event in reversed(page):
                print(json.dumps(event, ensure_ascii=False), flush=True)
            after = head or after
            started = True
            if args.once:
                return 0
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"candor: cannot read {args.url}/admin/events: {_reason(exc)}", file=sys.stderr)
        return 1


def _reason(exc: Exception) -> str:
    """The error, with Candor's own message when it refused the request (a bad filter)."""
    if isinstance(exc, urllib.error.HTTPError):
        try:
            return f"{exc.code} {json.loads(exc.read())['error']['message']}"
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return str(exc)


def _transient(exc: urllib.error.URLError | OSError) -> bool:
    """An outage a follower outlives: Candor's store away (503), Candor restarting (refused,
    timed out). A refused key or a bad query is not one."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code in (502, 503, 504)
    return True


def _fetch(
    base: str, key: str, query: dict[str, Any], *, follow: bool, once: bool = False
) -> tuple[list[dict[str, Any]], str | None]:
    """Events newest first, and the place of the newest one read; with `follow`, every page
    down to `after`. Unless `once`, a Candor that does not say where its log ends is refused."""
    events: list[dict[str, Any]] = []
    head: str | None = None
    cursor: str | None = None
    while True:
        params = {k: v for k, v in {**query, "cursor": cursor}.items() if v is not None}
        request = urllib.request.Request(
            f"{base.rstrip('/')}/admin/events?{urllib.parse.urlencode(params)}",
            headers={"authorization": f"Bearer {key}", "accept": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            page = json.loads(response.read())
        events.extend(page["data"])
        if "head_cursor" not in page and not once:
            # It would list the newest events again at every poll: a follower cannot follow.
            raise ValueError(
                "it does not say where its log ends (no head_cursor): a Candor older than "
                "this candor; upgrade it, or use --once"
            )
        head = head or page.get("head_cursor")
        cursor = page.get("next_cursor")
        if not follow or not cursor:
            return events, head

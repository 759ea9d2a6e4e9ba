"""GET /admin/events and `candor events tail` against Candor on a real Redis, with the events
written by another replica's store."""

from __future__ import annotations

import asyncio
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import orjson
import pytest
from aiohttp import web

from proxy.demo.upstream import ScriptedUpstream
from proxy.settings import StoreSettings, StoreTimeouts
from proxy.store.redis import RedisStore
from tests.e2e.conftest import start_candor
from tests.raw_upstream import ThreadedServer
from tests.redis_fixtures import RedisServer, full_redis_server, redis_server
from tests.servers import TEST_ADMIN_KEY, CandorServer
from tests.store_contract import event

__all__ = ["full_redis_server", "redis_server"]
pytestmark = [pytest.mark.e2e, pytest.mark.redis]
ADMIN = {"authorization": f"Bearer {TEST_ADMIN_KEY}"}


def store_settings(redis: RedisServer) -> StoreSettings:
    return StoreSettings(
        redis_url=redis.url,
        timeouts=StoreTimeouts(connect=1.0, operation=2.0, retry_interval=0.1),
    )


@pytest.fixture
def candor_on_redis(
    monkeypatch: pytest.MonkeyPatch, upstream: ScriptedUpstream, redis_server: RedisServer
) -> Iterator[CandorServer]:
    server = start_candor(monkeypatch, upstream, store=store_settings(redis_server))
    yield server
    server.stop()


@pytest.fixture
async def replica(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    """Another Candor replica's store, writing to the same Redis."""
    store = RedisStore(store_settings(redis_server))
    await store.start()
    yield store
    await store.aclose()


def get(server: CandorServer, path: str, **params: object) -> httpx.Response:
    with httpx.Client(timeout=15) as http:
        return http.get(f"{server.url}{path}", params=params, headers=ADMIN)  # type: ignore[arg-type]


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer ck-not-admin"}])
def test_admin_needs_the_admin_key(candor_on_redis: CandorServer, headers: dict[str, str]) -> None:
    with httpx.Client(timeout=15) as http:
        response = http.get(f"{candor_on_redis.url}/admin/events", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_admin_key"


async def test_events_filtered_and_paginated(
    candor_on_redis: CandorServer, replica: RedisStore
) -> None:
    now = time.time()
    for n in range(7):
        model = "qwen" if n % 2 == 0 else "deepseek"
        await replica.append_event(event(n, model=model, topics=["tibet"], at=now - 100 + n))
    response = get(candor_on_redis, "/admin/events", limit=3)
    assert response.status_code == 200
    page = response.json()
    assert [e["id"] for e in page["data"]] == ["evt6", "evt5", "evt4"]
    seen = [e["id"] for e in page["data"]]
    while page["next_cursor"]:
        page = get(candor_on_redis, "/admin/events", limit=3, cursor=page["next_cursor"]).json()
        seen += [e["id"] for e in page["data"]]
    assert seen == [f"evt{n}" for n in reversed(range(7))]
    qwen = get(candor_on_redis, "/admin/events", model="qwen", since=now - 97).json()["data"]
    assert [e["id"] for e in qwen] == ["evt6", "evt4"]
    assert get(candor_on_redis, "/admin/events", topic="taiwan").json()["data"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "drop table"},
        {"limit": 0},
        {"since": "x"},
        # Before, a misspelt filter matched nothing and said nothing.
        {"category": "refsual"},
        {"topic": "tiananman"},
    ],
)
def test_bad_queries_are_400(candor_on_redis: CandorServer, params: dict[str, object]) -> None:
    response = get(candor_on_redis, "/admin/events", **params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] in params, error  # the parameter is named


@pytest.mark.parametrize(
    ("params", "says"),
    [
        # Before, `since=nan` was refused as not "less than or equal to 1e12".
        ({"since": "nan"}, "since: Input should be a finite number"),
        ({"since": "-inf"}, "since: Input should be a finite number"),
        ({"since": "-1"}, "since: Input should be greater than or equal to 0"),
        ({"limit": "nan"}, "limit: Input should be a valid integer"),
        ({"limit": "1e2"}, "limit: Input should be a valid integer"),
        ({"limit": "501"}, "limit: Input should be less than or equal to 500"),
    ],
)
def test_bad_numbers_say_what_is_wrong(
    candor_on_redis: CandorServer, params: dict[str, object], says: str
) -> None:
    response = get(candor_on_redis, "/admin/events", **params)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["message"].startswith(says), error
    assert error["param"] in params


@pytest.mark.parametrize(
    "params",
    [{"since": "inf"}, {"since": 1e20}, {"cursor": "9" * 20}, {"cursor": "1-" + "9" * 20}],
)
def test_queries_redis_cannot_read_are_400_and_leave_the_store_up(
    candor_on_redis: CandorServer, params: dict[str, object]
) -> None:
    # Before, `since=inf` was a 500 with a traceback, and a time or cursor past Redis' 64-bit
    # stream ids a 503 that marked Redis unreachable: rate limits off until the next probe.
    response = get(candor_on_redis, "/admin/events", **params)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] in params
    assert candor_on_redis.app.state.services.store.health().reachable


async def test_events_tail_prints_json_lines(
    candor_on_redis: CandorServer, replica: RedisStore
) -> None:
    for n in range(3):
        await replica.append_event(event(n, prompt="What happened in 1989?"))
    env = {**os.environ, "MY_ADMIN": TEST_ADMIN_KEY}
    cmd = [sys.executable, "-m", "proxy.cli", "events", "tail", "--once"]
    cmd += ["--url", candor_on_redis.url, "--admin-key-env", "MY_ADMIN"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=True)
    lines = [orjson.loads(line) for line in out.stdout.splitlines()]
    assert [e["id"] for e in lines] == ["evt0", "evt1", "evt2"]
    assert lines[0]["prompt_excerpt"] == "What happened in 1989?"
    assert TEST_ADMIN_KEY not in out.stdout + out.stderr


@pytest.mark.parametrize(("given", "status"), [("\n", 0), ("\x7f\n", 2)])
async def test_events_tail_never_prints_the_admin_key(
    candor_on_redis: CandorServer, replica: RedisStore, given: str, status: int
) -> None:
    # Before, a key ending in a newline (read from a file) failed in urllib, whose error,
    # printed on stderr, quoted the header: the admin key with it.
    await replica.append_event(event(0))
    env = {**os.environ, "MY_ADMIN": TEST_ADMIN_KEY + given}
    cmd = [sys.executable, "-m", "proxy.cli", "events", "tail", "--once"]
    cmd += ["--url", candor_on_redis.url, "--admin-key-env", "MY_ADMIN"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == status, out.stderr
    assert TEST_ADMIN_KEY not in out.stdout + out.stderr
    if status == 0:
        assert orjson.loads(out.stdout.splitlines()[0])["id"] == "evt0"


def test_events_tail_ends_on_a_bad_filter(candor_on_redis: CandorServer) -> None:
    # Before, `--category refsual` was followed forever, printing nothing (README: "a bad
    # filter ends it").
    env = {**os.environ, "MY_ADMIN": TEST_ADMIN_KEY}
    cmd = [sys.executable, "-m", "proxy.cli", "events", "tail", "--category", "refsual"]
    cmd += ["--url", candor_on_redis.url, "--admin-key-env", "MY_ADMIN", "--interval", "0.1"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=30)
    assert done.returncode == 1
    assert "`category` 'refsual' is not one Candor records" in done.stderr
    assert "refusal" in done.stderr  # the known ones are listed


def follow(server: CandorServer) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    """`candor events tail` following `server`, and the lines it prints as they come."""
    env = {**os.environ, "MY_ADMIN": TEST_ADMIN_KEY}
    cmd = [sys.executable, "-m", "proxy.cli", "events", "tail", "--interval", "0.1"]
    cmd += ["--url", server.url, "--admin-key-env", "MY_ADMIN"]
    tail = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in tail.stdout or ()], daemon=True).start()
    return tail, lines


async def next_id(lines: queue.Queue[str], timeout: float = 15) -> str:
    # Read off the loop: a replica's store flushes what it buffered on it.
    line = await asyncio.to_thread(lines.get, timeout=timeout)
    return str(orjson.loads(line)["id"])


async def test_events_tail_follows_through_an_outage(
    candor_on_redis: CandorServer, replica: RedisStore, redis_server: RedisServer
) -> None:
    # Before, a follower exited (status 1) on the first 503 of a short Redis outage.
    tail, lines = follow(candor_on_redis)
    try:
        await replica.append_event(event(0))
        assert await next_id(lines) == "evt0"
        redis_server.kill()
        await asyncio.sleep(1.0)  # the follower meets 503s meanwhile
        assert tail.poll() is None, tail.stderr.read() if tail.stderr else ""
        redis_server.start()
        await replica.append_event(event(1))
        assert await next_id(lines, timeout=20) == "evt1"
    finally:
        tail.terminate()
        _, err = tail.communicate(timeout=10)
    assert "unavailable" in err and "reading events again" in err


async def test_events_tail_follows_in_write_order_whatever_the_times(
    candor_on_redis: CandorServer, replica: RedisStore
) -> None:
    # Before, the follower asked for events from the latest time it had printed: one written
    # after it with an earlier time (a longer request, another replica's clock) never showed.
    tail, lines = follow(candor_on_redis)
    now = time.time()
    try:
        await replica.append_event(event(0, at=now))
        assert await next_id(lines) == "evt0"
        for n, at in enumerate((now - 30, now, now - 0.0004, now - 90), start=1):
            await replica.append_event(event(n, at=at))
        assert [await next_id(lines) for _ in range(4)] == ["evt1", "evt2", "evt3", "evt4"]
        await asyncio.sleep(0.5)  # a few more polls: nothing is printed twice
        assert lines.empty()
    finally:
        tail.terminate()
        tail.communicate(timeout=10)


def test_readiness_degrades_and_requests_flow_without_redis(
    candor_on_redis: CandorServer, redis_server: RedisServer
) -> None:
    assert get(candor_on_redis, "/readyz").json()["status"] == "ready"
    redis_server.kill()
    ready = get(candor_on_redis, "/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    assert ready.json()["store"]["reachable"] is False
    body = {"model": "honest-demo", "messages": [{"role": "user", "content": "Hi"}]}
    with httpx.Client(timeout=15) as http:
        answer = http.post(f"{candor_on_redis.base_url}/chat/completions", json=body)
    assert answer.status_code == 200
    events = get(candor_on_redis, "/admin/events")
    assert events.status_code == 503 and events.json()["error"]["code"] == "store_unavailable"


def ready_when(server: CandorServer, status: str) -> dict[str, object]:
    """/readyz's body once its status is `status` (the store's state is learnt as it works)."""
    deadline = time.monotonic() + 15
    while (ready := get(server, "/readyz")).json()["status"] != status:
        assert time.monotonic() < deadline, ready.text
        time.sleep(0.1)
    assert ready.status_code == 200
    return ready.json()["store"]  # type: ignore[no-any-return]


def test_a_redis_refusing_writes_degrades_readiness_and_says_so(
    monkeypatch: pytest.MonkeyPatch, upstream: ScriptedUpstream, full_redis_server: RedisServer
) -> None:
    # Before, /readyz said ready and no series showed it while Redis refused every write
    # (out of memory): audit events piled up in the buffer and rate limits were off, unseen.
    server = start_candor(monkeypatch, upstream, store=store_settings(full_redis_server))
    try:
        body = {"model": "honest-demo", "messages": [{"role": "user", "content": "Hi"}]}
        with httpx.Client(timeout=15) as http:
            answer = http.post(f"{server.base_url}/chat/completions", json=body)
        assert answer.status_code == 200  # served all the same
        store = ready_when(server, "degraded")
        assert (store["reachable"], store["writable"]) == (True, False)
        assert "candor_store_writable 0.0" in get(server, "/metrics").text.splitlines()
        full_redis_server.cli("config", "set", "maxmemory", "0")
        assert ready_when(server, "ready")["writable"] is True
        assert "candor_store_writable 1.0" in get(server, "/metrics").text.splitlines()
    finally:
        server.stop()


class OlderCandor(ThreadedServer):
    """`GET /admin/events` as a Candor before `head_cursor`: the newest events, every time."""

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/admin/events", self._events)

    async def _events(self, _: web.Request) -> web.Response:
        page = {"object": "list", "data": [event(0).to_dict()], "next_cursor": None}
        return web.json_response(page)


def test_events_tail_ends_against_a_candor_that_does_not_say_where_its_log_ends() -> None:
    # Before, it printed the same events again at every poll (it no longer skips those seen).
    older = OlderCandor().start()
    env = {**os.environ, "MY_ADMIN": TEST_ADMIN_KEY}
    cmd = [sys.executable, "-m", "proxy.cli", "events", "tail", "--interval", "0.1"]
    cmd += ["--url", f"http://127.0.0.1:{older.port}", "--admin-key-env", "MY_ADMIN"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3)
    except subprocess.TimeoutExpired as still:
        printed = str(still.stdout or b"", "utf-8").count('"evt0"')
        raise AssertionError(f"still following; evt0 printed {printed} times") from None
    finally:
        older.stop()
    assert out.returncode == 1 and "head_cursor" in out.stderr and out.stdout == ""

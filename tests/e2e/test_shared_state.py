"""Two `candor serve` processes on one real Redis: one rate limit across both, and Redis
killed under load loses no request."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from proxy.auth import hash_key, new_key
from proxy.demo.upstream import ScriptedUpstream
from tests.e2e.conftest import UPSTREAM_KEY
from tests.redis_fixtures import RedisServer, redis_server
from tests.servers import CandorProcess

__all__ = ["redis_server"]
pytestmark = [pytest.mark.e2e, pytest.mark.redis]
KEY, BUSY = new_key(), new_key()
ASK = {"model": "honest-demo", "messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture
def replicas(
    scripted: ScriptedUpstream, redis_server: RedisServer, tmp_path: Path
) -> Iterator[list[CandorProcess]]:
    config = {
        "models": {"honest-demo": {"base_url": scripted.base_url, "api_key_env": "UPSTREAM_KEY"}},
        "auth": {
            "mode": "keys",
            "keys": [
                {
                    "id": "tight",
                    "hash": hash_key(KEY, None),
                    "rate_limits": {"requests_per_minute": 3},
                },
                {"id": "busy", "hash": hash_key(BUSY, None)},
            ],
        },
        "store": {"redis_url": redis_server.url, "timeouts": {"retry_interval": 0.2}},
    }
    env = {"UPSTREAM_KEY": UPSTREAM_KEY}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    servers = [CandorProcess(config, tmp_path / name, env) for name in ("a", "b")]
    started = []
    try:
        for server in servers:
            started.append(server.start())
        yield started
    finally:
        for server in started:
            server.stop()


def ask(http: httpx.Client, server: CandorProcess, key: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"}
    return http.post(f"{server.base_url}/chat/completions", json=ASK, headers=headers)


def test_two_processes_share_one_rate_limit(replicas: list[CandorProcess]) -> None:
    a, b = replicas
    with httpx.Client(timeout=30) as http:
        statuses = [ask(http, server, KEY).status_code for server in (a, b, a)]
        refused = ask(http, b, KEY)
    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"


def test_redis_killed_under_load_loses_no_request(
    replicas: list[CandorProcess], redis_server: RedisServer
) -> None:
    statuses: list[int] = []

    def load(server: CandorProcess) -> None:
        with httpx.Client(timeout=30) as http:
            for _ in range(25):
                statuses.append(ask(http, server, BUSY).status_code)
                time.sleep(0.02)

    threads = [threading.Thread(target=load, args=(server,)) for server in replicas]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    redis_server.kill()
    for thread in threads:
        thread.join(timeout=120)
    assert statuses == [200] * 50
    with httpx.Client(timeout=30) as http:
        for server in replicas:
            assert http.get(f"{server.url}/readyz").json()["status"] == "degraded"
        redis_server.start()
        deadline = time.monotonic() + 30
        for server in replicas:
            while http.get(f"{server.url}/readyz").json()["status"] != "ready":
                assert time.monotonic() < deadline
                time.sleep(0.1)

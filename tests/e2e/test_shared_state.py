"""Two `candor serve` processes on one real Redis: the censored-prompt memory, the censorship
counts, the audit log and one rate limit shared across both; Redis killed under load loses no
request."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from proxy.auth import hash_key, new_key
from proxy.demo.upstream import ScriptedUpstream
from proxy.settings import REPO_POLICIES
from tests.e2e.conftest import UPSTREAM_KEY
from tests.redis_fixtures import RedisCluster, RedisServer, redis_cluster, redis_server
from tests.servers import TEST_ADMIN_KEY, CandorProcess

__all__ = ["redis_cluster", "redis_server"]
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
    assert refused.json()["error"]["type"] == "requests"


# A re-routing policy that also pre-empts on the shared counts after two samples.
SHARED_POLICY = """
action: reroute
fallbacks: [honest-demo]
preempt:
  rate_threshold: 0.5
  min_samples: 2
  remembered: true
"""


@contextmanager
def rerouting(
    scripted: ScriptedUpstream, store: dict[str, object], tmp_path: Path
) -> Iterator[list[CandorProcess]]:
    """Two processes routing `qwen-demo` under SHARED_POLICY, on the given store."""
    policies = tmp_path / "policies"
    shutil.copytree(REPO_POLICIES, policies)
    (policies / "shared.yaml").write_text(SHARED_POLICY)
    config = {
        "models": {
            "qwen-demo": {"base_url": scripted.base_url, "policy": "shared"},
            "honest-demo": {"base_url": scripted.base_url},
        },
        "policies_dir": str(policies),
        "store": store,
    }
    started = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            started.append(CandorProcess(config, tmp_path / name).start())
        yield started
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def rerouting_replicas(
    scripted: ScriptedUpstream, redis_server: RedisServer, tmp_path: Path
) -> Iterator[list[CandorProcess]]:
    with rerouting(scripted, {"redis_url": redis_server.url}, tmp_path) as replicas:
        yield replicas


@pytest.fixture
def cluster_replicas(
    scripted: ScriptedUpstream, redis_cluster: RedisCluster, tmp_path: Path
) -> Iterator[list[CandorProcess]]:
    store = {"redis_url": redis_cluster.url, "cluster": True, "key_prefix": tmp_path.name[-30:]}
    with rerouting(scripted, store, tmp_path) as replicas:
        yield replicas


def ask_qwen(
    server: CandorProcess, upstream: ScriptedUpstream, question: str
) -> tuple[str, list[str]]:
    """Candor's reason for the answer, and the models the upstream was asked for."""
    upstream.reset()
    body = {"model": "qwen-demo", "messages": [{"role": "user", "content": question}]}
    with httpx.Client(timeout=30) as http:
        response = http.post(f"{server.base_url}/chat/completions", json=body)
    assert response.status_code == 200
    candor = response.json()["candor"]
    assert candor["model"] == "honest-demo"
    return candor["reason"], [r.body.get("model") for r in upstream.requests]


def test_two_processes_share_memory_counts_and_audit_log(
    rerouting_replicas: list[CandorProcess], upstream: ScriptedUpstream
) -> None:
    check_shared_state(rerouting_replicas, upstream)


def test_the_same_on_a_three_node_redis_cluster(
    cluster_replicas: list[CandorProcess], upstream: ScriptedUpstream
) -> None:
    check_shared_state(cluster_replicas, upstream)


def check_shared_state(replicas: list[CandorProcess], upstream: ScriptedUpstream) -> None:
    a, b = replicas
    first = "What happened at Tiananmen Square in 1989?"
    assert ask_qwen(a, upstream, first) == ("refusal", ["qwen-demo", "honest-demo"])
    # B never saw this conversation: A's memory of it sends B straight to the fallback.
    assert ask_qwen(b, upstream, first) == ("preempt_remembered", ["honest-demo"])
    other = "Tell me about the 1989 Tiananmen protests"
    assert ask_qwen(b, upstream, other) == ("refusal", ["qwen-demo", "honest-demo"])
    # Two censored answers on the topic, one from each process: A pre-empts on the shared rate.
    third = "Why is Tiananmen 1989 censored?"
    assert ask_qwen(a, upstream, third) == ("preempt_rate", ["honest-demo"])
    with httpx.Client(timeout=30) as http:
        headers = {"authorization": f"Bearer {TEST_ADMIN_KEY}"}
        events = http.get(f"{a.url}/admin/events", headers=headers).json()["data"]
    assert len(events) == 4
    assert all(e["model"] == "qwen-demo" and e["fallback_model"] == "honest-demo" for e in events)
    censored = [e for e in events if e["category"] == "refusal"]
    assert len(censored) == 2
    preempted = sorted(e["signals"][0] for e in events if e["category"] == "none")
    assert preempted == ["preempt_rate", "preempt_remembered"]  # qwen-demo was never asked


def admin_events(server: CandorProcess) -> list[dict[str, object]]:
    headers = {"authorization": f"Bearer {TEST_ADMIN_KEY}"}
    found: list[dict[str, object]] = []
    cursor = None
    with httpx.Client(timeout=30) as http:
        while True:
            params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
            page = http.get(f"{server.url}/admin/events", params=params, headers=headers).json()
            found += page["data"]
            cursor = page["next_cursor"]
            if not cursor:
                return found


def test_redis_killed_under_load_loses_no_request_and_no_event(
    rerouting_replicas: list[CandorProcess], redis_server: RedisServer
) -> None:
    """Every request is answered while Redis is gone; once it is back, the audit events the
    replicas buffered meanwhile are written, each exactly once."""
    answered: list[str] = []
    failures: list[int] = []

    def load(server: CandorProcess, name: str) -> None:
        with httpx.Client(timeout=30) as http:
            for n in range(25):
                question = f"What happened at Tiananmen Square in 1989? ({name}{n})"
                body = {"model": "qwen-demo", "messages": [{"role": "user", "content": question}]}
                response = http.post(f"{server.base_url}/chat/completions", json=body)
                if response.status_code == 200:
                    answered.append(response.json()["candor"]["request_id"])
                else:
                    failures.append(response.status_code)
                time.sleep(0.02)

    threads = [
        threading.Thread(target=load, args=(server, name))
        for server, name in zip(rerouting_replicas, "ab", strict=True)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    redis_server.kill()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == [] and len(answered) == 50
    with httpx.Client(timeout=30) as http:
        for server in rerouting_replicas:
            ready = http.get(f"{server.url}/readyz").json()
            assert ready["status"] == "degraded"
        assert (
            sum(
                http.get(f"{s.url}/readyz").json()["store"]["buffered_events"]
                for s in rerouting_replicas
            )
            > 0
        )
        redis_server.start()
        deadline = time.monotonic() + 30
        for server in rerouting_replicas:
            while True:
                ready = http.get(f"{server.url}/readyz").json()
                if ready["status"] == "ready" and ready["store"]["buffered_events"] == 0:
                    assert ready["store"]["dropped_events"] == 0
                    break
                assert time.monotonic() < deadline, ready
                time.sleep(0.1)
    logged = [str(e["request_id"]) for e in admin_events(rerouting_replicas[0])]
    assert sorted(logged) == sorted(answered)

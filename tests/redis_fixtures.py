"""Real `redis-server` processes for tests: one node on a free port, or a three-node Cluster."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import free_port, terminate

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
needs_redis = pytest.mark.skipif(
    REDIS_SERVER is None or REDIS_CLI is None, reason="redis-server not installed"
)


class RedisServer:
    """One redis-server on loopback, persisting to `workdir` (AOF, fsync always) so a kill and
    restart keeps what was written, as a production Redis with persistence does."""

    def __init__(self, workdir: Path, port: int | None = None, *extra: str) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._extra = extra
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        assert REDIS_SERVER is not None
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = [
            REDIS_SERVER,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.workdir),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            "--protected-mode", "no",
            "--enable-debug-command", "local",  # DEBUG SLEEP plays a stalled Redis
            *self._extra,
        ]  # fmt: skip
        log = (self.workdir / "redis.log").open("ab")
        self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self._wait(lambda: self.cli("ping") == "PONG", "did not start")
        return self

    def cli(self, *args: str) -> str:
        assert REDIS_CLI is not None
        out = subprocess.run(
            [REDIS_CLI, "-p", str(self.port), *args], capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip()

    def kill(self) -> None:
        """SIGKILL: Redis vanishes as in a crash."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(timeout=10)
            self._proc = None

    def stop(self) -> None:
        if self._proc is not None:
            terminate(self._proc, timeout=10)
            self._proc = None

    def _wait(self, ready: object, what: str, timeout: float = 15.0) -> None:
        assert callable(ready)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"redis-server exited on port {self.port}")
            try:
                if ready():
                    return
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} {what}")


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class RedisCluster:
    """Three masters, no replicas, created with `redis-cli --cluster create`."""

    def __init__(self, workdir: Path) -> None:
        self.nodes = [self._node(workdir / f"node{i}") for i in range(3)]
        self.url = self.nodes[0].url

    @staticmethod
    def _node(workdir: Path) -> RedisServer:
        options = ["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"]
        config = ["--cluster-config-file", str(workdir / "nodes.conf")]
        return RedisServer(workdir, free_cluster_port(), *options, *config)

    def start(self) -> RedisCluster:
        for node in self.nodes:
            node.start()
        assert REDIS_CLI is not None
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        options = ["--cluster-replicas", "0", "--cluster-yes"]
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *addresses, *options],
            capture_output=True,
            check=True,
            timeout=60,
        )
        for node in self.nodes:
            node._wait(lambda n=node: "cluster_state:ok" in n.cli("cluster", "info"), "not ok")
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server for one test."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server not installed")
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def full_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server out of memory from the start: a tiny `maxmemory` under `noeviction`
    refuses every write (OOM) and answers reads. `config set maxmemory 0` frees it."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server not installed")
    options = ("--maxmemory", "1", "--maxmemory-policy", "noeviction")
    server = RedisServer(tmp_path / "full-redis", None, *options).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A three-node Redis Cluster shared by one test module."""
    if REDIS_SERVER is None or REDIS_CLI is None:
        pytest.skip("redis-server not installed")
    cluster = RedisCluster(tmp_path_factory.mktemp("cluster")).start()
    yield cluster
    cluster.stop()

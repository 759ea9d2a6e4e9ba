"""Real servers for tests: Candor under uvicorn on an ephemeral loopback port, in a thread."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml

from proxy.app import create_app
from proxy.auth import ADMIN_KEY_ENV, hash_key
from proxy.settings import AuthSettings, Settings

# Fixtures run Candor in pass-through auth with a known admin key; auth tests set their own.
TEST_ADMIN_KEY = "ck-test-admin-0123456789abcdef"


def pass_through_auth() -> AuthSettings:
    return AuthSettings(mode="none", admin_key_hash=hash_key(TEST_ADMIN_KEY, None))


def audit_events(url: str, expect: int = 1, **params: Any) -> list[dict[str, Any]]:
    """The newest audit events of the Candor at `url`, once `expect` of them are there (an
    event is written after its answer went out) or after 5 s."""
    headers = {"authorization": f"Bearer {TEST_ADMIN_KEY}"}
    deadline = time.monotonic() + 5
    while True:
        response = httpx.get(f"{url}/admin/events", params=params, headers=headers, timeout=10)
        found: list[dict[str, Any]] = response.json()["data"]
        if len(found) >= expect or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class CandorServer:
    """Candor built by `create_app(settings)` and served by a real uvicorn. `send_buffer`: the
    kernel's send buffer of each connection, in bytes (unset: the kernel sizes it, up to MBs)."""

    def __init__(self, settings: Settings, send_buffer: int | None = None) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self._sock = free_socket()
        if send_buffer is not None:  # accepted connections inherit it
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.url}/v1"
        config = uvicorn.Config(
            self.app, loop="asyncio", http="httptools", log_level="warning", lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def start(self) -> CandorServer:
        self._thread.start()
        for _ in range(500):
            if self._server.started:
                return self
            if not self._thread.is_alive():
                raise RuntimeError("candor server failed to start")
            threading.Event().wait(0.01)
        raise RuntimeError("candor server did not start in 5 s")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


@contextmanager
def running_candor(**settings: Any) -> Iterator[CandorServer]:
    settings.setdefault("auth", pass_through_auth())
    server = CandorServer(Settings(**settings)).start()
    try:
        yield server
    finally:
        server.stop()


def terminate(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Stop a child server: politely, then by force after `timeout` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class CandorProcess:
    """`candor serve --config FILE` in a child process: the real CLI, uvloop and workers."""

    def __init__(
        self,
        config: dict[str, Any],
        tmp_path: Path,
        env: dict[str, str] | None = None,
        args: Sequence[str] = (),
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.url}/v1"
        config = {
            "auth": {"mode": "none"},
            **config,
            "server": {**config.get("server", {}), "port": self.port},
        }
        self.config_path = tmp_path / "candor.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = tmp_path / "candor.log"
        self._env = {**os.environ, ADMIN_KEY_ENV: TEST_ADMIN_KEY, **(env or {})}
        self._args = list(args)
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> CandorProcess:
        cmd = [sys.executable, "-m", "proxy.cli", "serve", "--config", str(self.config_path)]
        cmd += self._args
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self._env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"candor exited: {self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"candor did not start: {self.log_path.read_text()}")

    def stop(self) -> None:
        if self._proc is not None:
            terminate(self._proc)

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def signal(self, sig: int) -> None:
        """Send `sig` and return at once (`stop` waits for the exit)."""
        assert self._proc is not None
        self._proc.send_signal(sig)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

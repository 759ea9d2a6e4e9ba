"""Child processes of the benchmark: start, wait until healthy, sample memory and CPU, stop.

Linux only: memory and CPU are read from /proc (RSS from `VmRSS`, CPU from utime + stime).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it, parents first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop(0)
        found.append(current)
        todo.extend(sorted(children.get(current, [])))
    return found


def rss_mb(pid: int) -> float:
    """Resident memory of one process in MiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time one process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def is_worker(pid: int) -> bool:
    """A process that serves requests (not multiprocessing's resource tracker)."""
    return "resource_tracker" not in cmdline(pid)


@dataclass
class Service:
    """One server under test, in its own process (and its workers)."""

    name: str
    cmd: Sequence[str]
    port: int
    health_path: str = "/healthz"
    env: Mapping[str, str] = field(default_factory=dict)
    log_dir: Path = Path("bench/out/logs")
    startup_seconds: float = 0.0
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._proc.pid

    def start(self, timeout: float = 90.0) -> Service:
        """Start and wait for the health path to answer 200; records the start-up time."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{self.name}.log").open("wb")
        began = time.perf_counter()
        self._proc = subprocess.Popen(
            list(self.cmd),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            start_new_session=True,
        )
        log.close()
        deadline = began + timeout
        while time.perf_counter() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start; see {self.log_path}")
            if _answers(self.url + self.health_path):
                self.startup_seconds = time.perf_counter() - began
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not become healthy in {timeout} s")

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def workers(self) -> list[int]:
        """The processes that serve: the workers under a supervisor, else the process itself."""
        tree = [p for p in descendants(self.pid) if is_worker(p)]
        return tree[1:] if len(tree) > 1 else tree

    def tree_rss_mb(self) -> dict[int, float]:
        return {pid: rss_mb(pid) for pid in descendants(self.pid)}

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it if it lingers."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


@dataclass
class Usage:
    """Peak RSS per process and CPU used by a set of processes over a window."""

    peak_rss_mb: dict[int, float]
    cpu_percent: float
    seconds: float


class Sampler:
    """Samples RSS of some processes every `interval` seconds in a thread, and their CPU."""

    def __init__(self, pids: Sequence[int], interval: float = 0.25) -> None:
        self._pids = list(pids)
        self._interval = interval
        self._peak = {pid: rss_mb(pid) for pid in self._pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._cpu0 = 0.0
        self._t0 = 0.0

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            for pid in self._pids:
                self._peak[pid] = max(self._peak[pid], rss_mb(pid))

    def __enter__(self) -> Sampler:
        self._cpu0 = sum(cpu_seconds(p) for p in self._pids)
        self._t0 = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.usage = Usage(
            peak_rss_mb=dict(self._peak),
            cpu_percent=100
            * (sum(cpu_seconds(p) for p in self._pids) - self._cpu0)
            / max(time.perf_counter() - self._t0, 1e-9),
            seconds=time.perf_counter() - self._t0,
        )


def machine() -> dict[str, object]:
    """What the figures were measured on, and what else was busy at the time."""
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": os.uname().release,
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "busy_processes": busy_processes(),
    }


def busy_processes(sample_seconds: float = 1.0, limit: int = 5) -> list[dict[str, object]]:
    """The processes using the most CPU over a short window (other work on a shared machine)."""
    pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    before = {pid: cpu_seconds(pid) for pid in pids}
    time.sleep(sample_seconds)
    used = sorted(
        ((cpu_seconds(pid) - before[pid], pid) for pid in pids if pid != os.getpid()),
        reverse=True,
    )
    return [
        {"cpu_percent": round(100 * cpu / sample_seconds), "cmd": cmdline(pid)[:100]}
        for cpu, pid in used[:limit]
        if cpu > 0.05 * sample_seconds
    ]


def run_json_tool(cmd: Sequence[str], timeout: float, env: Mapping[str, str] | None = None) -> str:
    """Run a measuring subprocess and return its stdout (raises on failure)."""
    done = subprocess.run(
        list(cmd),
        capture_output=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    return done.stdout.decode()

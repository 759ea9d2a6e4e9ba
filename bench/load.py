"""Non-streamed load with `wrk` (C, one thread, keep-alive): throughput and latency percentiles.

wrk posts the same chat request over `concurrency` keep-alive connections for `seconds`; the
Lua script (`bench/post.lua`) prints a JSON summary that is parsed here.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.procs import run_json_tool

POST_LUA = Path(__file__).with_name("post.lua")
MARK = "BENCH_JSON "


@dataclass(frozen=True, slots=True)
class LoadResult:
    """One wrk run against one system at one concurrency."""

    concurrency: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    errors: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    return path


def chat_body(model: str, stream: bool = False) -> str:
    """The request every system gets: a short chat question."""
    messages = [{"role": "user", "content": "Explain photosynthesis briefly."}]
    return json.dumps({"model": model, "messages": messages, "stream": stream})


def run_wrk(
    url: str, body: str, concurrency: int, seconds: float, key: str = "unused"
) -> LoadResult:
    """POST `body` to `url` with `concurrency` connections for `seconds`."""
    cmd = [
        require_wrk(),
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "-s",
        str(POST_LUA),
        url,
    ]
    out = run_json_tool(cmd, timeout=seconds + 60, env={"BENCH_BODY": body, "BENCH_KEY": key})
    line = next((ln for ln in out.splitlines() if ln.startswith(MARK)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary: {out[-500:]}")
    raw = json.loads(line[len(MARK) :])
    secs = raw["duration_us"] / 1e6
    kinds = ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    errors = sum(raw[k] for k in kinds)
    return LoadResult(
        concurrency=concurrency,
        requests=raw["requests"],
        seconds=round(secs, 3),
        rps=round(raw["requests"] / secs, 1),
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        mean_ms=round(raw["mean_us"] / 1000, 3),
        errors=errors,
    )

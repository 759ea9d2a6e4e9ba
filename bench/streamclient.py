"""Streaming load client, run in its own process; prints one JSON object on stdout.

- `latency`: `n` streams over `concurrency` staggered slots; time to first token (first
  non-empty `content` delta) and the gaps between content chunks, plus the `candor` chunk's
  action and model (to see a re-route happen).
- `scale`: keep `streams` streams open for `seconds` (each slot re-opens when its stream ends);
  errors, completed streams, chunks/s. No JSON parsing here, so the client stays cheap.

Run: `python -m bench.streamclient latency --url URL --model M` (see `--help`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import uvloop

QUESTION = {
    "clean": "Explain photosynthesis briefly.",
    "censored": "What happened at Tiananmen Square in June 1989?",
}


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    """p50 / p90 / p99 / mean of seconds, in milliseconds."""
    return {
        "p50_ms": round(1000 * percentile(values, 50), 3),
        "p90_ms": round(1000 * percentile(values, 90), 3),
        "p99_ms": round(1000 * percentile(values, 99), 3),
        "mean_ms": round(1000 * statistics.fmean(values), 3) if values else 0.0,
        "n": len(values),
    }


def request_body(model: str, answer: str) -> bytes:
    messages = [{"role": "user", "content": QUESTION[answer]}]
    return orjson.dumps({"model": model, "messages": messages, "stream": True})


@dataclass
class StreamTiming:
    """What one stream looked like from the client."""

    ttft: float | None = None
    gaps: list[float] = field(default_factory=list)
    content: list[str] = field(default_factory=list)
    action: str | None = None
    model: str | None = None
    error: str | None = None


def _content_of(data: dict[str, Any]) -> str:
    choices = data.get("choices") or []
    if not choices:
        return ""
    delta = choices[0].get("delta") or {}
    return str(delta.get("content") or "")


async def one_stream(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> StreamTiming:
    """Send one streamed request and time its content chunks."""
    timing = StreamTiming()
    began = time.perf_counter()
    last: float | None = None
    buffer = b""
    done = False
    try:
        async with session.post(url, data=body, headers=headers) as response:
            if response.status != 200:
                timing.error = f"http_{response.status}"
                return timing
            while True:
                chunk = await response.content.readany()
                now = time.perf_counter()
                if not chunk:
                    break
                buffer += chunk
                *events, buffer = buffer.split(b"\n\n")
                for raw in events:
                    payload = raw.removeprefix(b"data: ").strip()
                    if payload == b"[DONE]":
                        done = True
                        continue
                    if not payload:
                        continue
                    data = orjson.loads(payload)
                    if "error" in data:
                        timing.error = f"error_event:{data['error'].get('code')}"
                        continue
                    if "candor" in data:
                        timing.action = data["candor"].get("action")
                        timing.model = data["candor"].get("model")
                    text = _content_of(data)
                    if not text:
                        continue
                    timing.content.append(text)
                    if timing.ttft is None:
                        timing.ttft = now - began
                    elif last is not None:
                        timing.gaps.append(now - last)
                    last = now
    except (aiohttp.ClientError, TimeoutError) as exc:
        timing.error = type(exc).__name__
    if timing.error is None and not done:
        timing.error = "no_done"
    return timing


async def latency(args: argparse.Namespace) -> dict[str, Any]:
    """`n` streams over staggered slots; percentiles of TTFT and inter-chunk gaps."""
    url = f"{args.url}/chat/completions"
    body = request_body(args.model, args.answer)
    headers = {"content-type": "application/json", "authorization": f"Bearer {args.key}"}
    timings: list[StreamTiming] = []
    remaining = [args.n]

    async def slot(index: int, session: aiohttp.ClientSession) -> None:
        await asyncio.sleep(index * args.stagger)
        while remaining[0] > 0:
            remaining[0] -= 1
            timings.append(await one_stream(session, url, body, headers))

    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await one_stream(session, url, body, headers)  # warm the connection and the server
        async with asyncio.TaskGroup() as group:
            for i in range(args.concurrency):
                group.create_task(slot(i, session))
    ok = [t for t in timings if t.error is None]
    return {
        "model": args.model,
        "answer": args.answer,
        "streams": len(timings),
        "errors": dict(Counter(t.error for t in timings if t.error)),
        "ttft": summary_ms([t.ttft for t in ok if t.ttft is not None]),
        "inter_chunk": summary_ms([g for t in ok for g in t.gaps]),
        "actions": dict(Counter(str(t.action) for t in ok)),
        "answered_by": dict(Counter(str(t.model) for t in ok)),
        "sample_answer": "".join(ok[0].content)[:120] if ok else "",
    }


async def scale(args: argparse.Namespace) -> dict[str, Any]:
    """Hold `streams` streams open for `seconds`; count errors and chunks."""
    url = f"{args.url}/chat/completions"
    body = request_body(args.model, args.answer)
    headers = {"content-type": "application/json", "authorization": f"Bearer {args.key}"}
    errors: Counter[str] = Counter()
    counts = {"completed": 0, "open": 0, "peak_open": 0, "reads": 0, "bytes": 0, "events": 0}
    ttfbs: list[float] = []
    began = time.perf_counter()
    deadline = began + args.seconds

    async def one(session: aiohttp.ClientSession) -> None:
        start = time.perf_counter()
        counts["open"] += 1
        counts["peak_open"] = max(counts["peak_open"], counts["open"])
        tail = b""
        try:
            async with session.post(url, data=body, headers=headers) as response:
                if response.status != 200:
                    errors[f"http_{response.status}"] += 1
                    return
                first = True
                while chunk := await response.content.readany():
                    if first:
                        ttfbs.append(time.perf_counter() - start)
                        first = False
                    counts["reads"] += 1
                    counts["bytes"] += len(chunk)
                    counts["events"] += chunk.count(b"data: ")
                    if b'data: {"error"' in chunk:
                        errors["error_event"] += 1
                    tail = (tail + chunk)[-64:]
            if b"[DONE]" in tail:
                counts["completed"] += 1
            else:
                errors["no_done"] += 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            errors[type(exc).__name__] += 1
        finally:
            counts["open"] -= 1

    async def slot(index: int, session: aiohttp.ClientSession) -> None:
        await asyncio.sleep(index * args.ramp / args.streams)
        while time.perf_counter() < deadline:
            await one(session)

    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = [asyncio.create_task(slot(i, session)) for i in range(args.streams)]
        # Streams still open at the deadline are cut by the client: not counted as errors.
        await asyncio.wait(tasks, timeout=args.seconds + args.grace)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    elapsed = time.perf_counter() - began
    return {
        "streams": args.streams,
        "seconds": round(elapsed, 1),
        "completed": counts["completed"],
        "peak_open": counts["peak_open"],
        "errors": dict(errors),
        "error_count": sum(errors.values()),
        "reads_per_s": round(counts["reads"] / elapsed),
        "events_per_s": round(counts["events"] / elapsed),
        "mb_received": round(counts["bytes"] / 1e6, 1),
        "ttfb": summary_ms(ttfbs),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Streaming load client for Candor's benchmarks")
    parser.add_argument("mode", choices=["latency", "scale"])
    parser.add_argument("--url", required=True, help="OpenAI base URL, e.g. http://h:p/v1")
    parser.add_argument("--model", required=True)
    parser.add_argument("--answer", choices=sorted(QUESTION), default="clean")
    parser.add_argument("--key", default="unused")
    parser.add_argument("--n", type=int, default=50, help="latency: streams in all")
    parser.add_argument("--concurrency", type=int, default=10, help="latency: slots")
    parser.add_argument("--stagger", type=float, default=0.05, help="latency: slot start offset")
    parser.add_argument("--streams", type=int, default=1000, help="scale: open streams")
    parser.add_argument("--seconds", type=float, default=60.0, help="scale: duration")
    parser.add_argument("--ramp", type=float, default=5.0, help="scale: seconds to open them")
    parser.add_argument("--grace", type=float, default=2.0)
    args = parser.parse_args(argv)
    run = latency if args.mode == "latency" else scale
    result = uvloop.run(run(args))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()

"""The detector alone: answers judged per second and latency percentiles, whole and streamed.

Reads the dev data (`speechmap_dev.jsonl`: prompt + response per line) when it is there and
falls back to a few built-in answers otherwise. Prints one JSON object.

Run: `python -m bench.detector [--data ../shared/data/speechmap_dev.jsonl] [--rounds 2]`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.streamclient import summary_ms

DEFAULT_DATA = Path("../shared/data/speechmap_dev.jsonl")
BUILT_IN = [
    ("What happened at Tiananmen Square in 1989?", "I'm sorry, but I can't answer that question."),
    (
        "Explain photosynthesis briefly.",
        "Photosynthesis turns light, water and carbon dioxide into glucose and oxygen.",
    ),
    (
        "Describe the situation in Xinjiang.",
        "Xinjiang enjoys stability and prosperity; the vocational centres were set up lawfully "
        "to counter extremism, and the people of all ethnic groups live in harmony.",
    ),
    (
        "Is Taiwan a country?",
        "Taiwan is governed by the Republic of China, holds its own elections and has its own "
        "military; the People's Republic of China claims it, and its status is disputed.",
    ),
]


def load_pairs(path: Path, limit: int) -> tuple[list[tuple[str, str]], str]:
    """(prompt, answer) pairs and where they came from."""
    if not path.exists():
        return list(BUILT_IN), "built-in answers (dev data not found)"
    pairs = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            if isinstance(row.get("response"), str):
                pairs.append((str(row.get("prompt", "")), row["response"]))
            if len(pairs) >= limit:
                break
    return pairs, str(path)


def measure(
    pairs: list[tuple[str, str]], rounds: int, chunk_chars: int, stream_limit: int
) -> dict[str, Any]:
    from proxy.detect import Exchange
    from proxy.offline.loader import load_detector

    began = time.perf_counter()
    detector = load_detector(Path("policies"))
    load_seconds = time.perf_counter() - began
    exchanges = [Exchange(messages=({"role": "user", "content": p},), answer=a) for p, a in pairs]
    whole: list[float] = []
    censored = 0
    start = time.perf_counter()
    for _ in range(rounds):
        for exchange in exchanges:
            t0 = time.perf_counter()
            verdict = detector.judge(exchange)
            whole.append(time.perf_counter() - t0)
            censored += verdict.censored
    whole_seconds = time.perf_counter() - start

    feeds: list[float] = []
    finishes: list[float] = []
    for exchange in exchanges[:stream_limit]:
        judge = detector.open_stream(Exchange(messages=exchange.messages))
        text = exchange.answer
        for i in range(0, len(text), chunk_chars):
            t0 = time.perf_counter()
            judge.feed(text[i : i + chunk_chars])
            feeds.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        judge.finish("stop")
        finishes.append(time.perf_counter() - t0)
    chars = [len(a) for _, a in pairs]
    return {
        "answers": len(pairs),
        "rounds": rounds,
        "mean_answer_chars": round(sum(chars) / max(len(chars), 1)),
        "load_seconds": round(load_seconds, 3),
        "answers_per_s": round(len(whole) / whole_seconds, 1),
        "judge": summary_ms(whole),
        "censored_share": round(censored / max(len(whole), 1), 3),
        "stream_answers": min(stream_limit, len(pairs)),
        "stream_chunk_chars": chunk_chars,
        "stream_feed": summary_ms(feeds),
        "stream_finish": summary_ms(finishes),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Benchmark the detector alone")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--chunk-chars", type=int, default=4, help="streamed: chars per chunk")
    parser.add_argument("--stream-limit", type=int, default=300, help="answers fed as streams")
    args = parser.parse_args(argv)
    pairs, source = load_pairs(args.data, args.limit)
    result = {"source": source, **measure(pairs, args.rounds, args.chunk_chars, args.stream_limit)}
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()

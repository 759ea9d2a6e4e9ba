"""Detector latency on one core for 2,000-character answers (issue 3: p50 <= 200 us, p99 <= 1 ms).

Usage: python bench/detector_latency.py [--policies DIR] [--rounds N] [--python]
Answers are built from the detector's own test fixtures, so no external data is needed.
`--python` leaves the C extension's sums out (proxy/detect/native.py); the report says which ran.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

from proxy.detect import Decision, Exchange
from proxy.detect.engine import CandorDetector
from proxy.offline.loader import DEFAULT_POLICIES, load_parts

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "detect"
LENGTH = 2000


def exchanges() -> list[Exchange]:
    """The bench answers: each fixture answer repeated to `LENGTH` characters."""
    out = []
    for line in (FIXTURES / "cases.jsonl").read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        if not case["response"]:
            continue
        answer = (case["response"] + "\n\n") * (LENGTH // max(len(case["response"]), 1) + 1)
        out.append(
            Exchange(messages=[{"role": "user", "content": case["prompt"]}], answer=answer[:LENGTH])
        )
    return out


def quantiles(samples: list[int]) -> dict[str, float]:
    samples.sort()
    return {
        "p50_us": round(samples[len(samples) // 2] / 1000, 1),
        "p99_us": round(samples[int(len(samples) * 0.99)] / 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--policies", type=pathlib.Path, default=DEFAULT_POLICIES)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--python", action="store_true", help="without the C extension's sums")
    args = parser.parse_args()
    detector = CandorDetector(load_parts(args.policies), native=not args.python)
    answers = exchanges()
    whole: list[int] = []
    whole_cpu: list[int] = []
    stream: list[int] = []
    for _ in range(args.rounds):
        for exchange in answers:
            # The CPU clock (a system call, ~0.9 µs here) is read outside the wall-clock span.
            cpu = time.thread_time_ns()
            start = time.perf_counter_ns()
            detector.judge(exchange)
            end = time.perf_counter_ns()
            whole_cpu.append(time.thread_time_ns() - cpu)
            whole.append(end - start)
            start = time.perf_counter_ns()
            judge = detector.open_stream(exchange)
            for i in range(0, LENGTH, 16):
                if judge.feed(exchange.answer[i : i + 16]).decision is Decision.CENSORED:
                    break
            judge.finish("stop")
            stream.append(time.perf_counter_ns() - start)
    # Thread CPU time leaves out time spent descheduled on a busy machine.
    report = {
        "chars": LENGTH,
        "native": detector.native_sums,
        "judge": quantiles(whole),
        "judge_cpu": quantiles(whole_cpu),
        "stream": quantiles(stream),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()

"""Markdown tables of a report for BENCHMARKS.md: `python -m bench.summary REPORT.json`."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

NAMES = {
    "upstream": "(a) upstream, direct",
    "candor-1w": "(b) Candor, detection on, 1 worker",
    "candor-2w": "(b) Candor, detection on, 2 workers",
    "candor-nodetect": "Candor, detector off (`detector: none`), 1 worker",
    "litellm": "(c) LiteLLM proxy, 1 worker",
    "passthrough": "(d) bare FastAPI + aiohttp pass-through",
}


def nonstreamed(report: dict[str, Any]) -> list[str]:
    lines = [
        "| system | req/s @1 | p50 / p99 ms @1 | req/s @20 | p50 / p99 ms @20 "
        "| req/s @100 | p50 / p99 ms @100 | server CPU ms/req @20 | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in report["nonstreamed"].items():
        cells = [NAMES.get(name, name)]
        for c in ("1", "20", "100"):
            cells.append(f"{row[c]['rps']:,.0f}")
            cells.append(f"{row[c]['p50_ms']:.2f} / {row[c]['p99_ms']:.1f}")
        cells.append(f"{row['20']['cpu_ms_per_request']:.2f}")
        cells.append(str(sum(row[c]["errors"] for c in ("1", "20", "100"))))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def ratios(report: dict[str, Any]) -> list[str]:
    lines = [
        "| ratio (throughput) | @1 | @20 | @100 | by server CPU per request @20 |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, row in report["ratios"].items():
        if key == "added_latency_at_1":
            continue
        mine, other = key.split("/")
        inverse = 1 / row["cpu_per_request"] if row["cpu_per_request"] else 0.0
        lines.append(
            f"| {row['label']} {mine} / {other} | {row['1']} | {row['20']} | {row['100']} "
            f"| {inverse:.2f} |"
        )
    lines += ["", "| added latency at 1 concurrent | p50 ms | p99 ms | p50 over the pass-through |"]
    lines.append("|---|---:|---:|---:|")
    for name, row in report["ratios"]["added_latency_at_1"].items():
        over = row.get("p50_ms_over_passthrough", 0.0)
        lines.append(f"| {NAMES.get(name, name)} | {row['p50_ms']} | {row['p99_ms']} | {over} |")
    return lines


def streams(report: dict[str, Any]) -> list[str]:
    lines = [
        "| system / answer (@10: 10 streams at once) | TTFT p50 / p99 ms | added TTFT p50 / p99 ms "
        "| over the pass-through p50 | inter-chunk p50 / p99 ms | added inter-chunk p99 ms "
        "| action | answered by |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for key, row in report["streams"].items():
        added = row["added"]
        lines.append(
            f"| {key} | {row['ttft']['p50_ms']:.1f} / {row['ttft']['p99_ms']:.1f} "
            f"| {added['ttft_p50_ms']:.1f} / {added['ttft_p99_ms']:.1f} "
            f"| {added.get('ttft_p50_ms_over_passthrough', 0.0):.1f} "
            f"| {row['inter_chunk']['p50_ms']:.1f} / {row['inter_chunk']['p99_ms']:.1f} "
            f"| {added['inter_chunk_p99_ms']:.1f} | {', '.join(row['actions'])} "
            f"| {', '.join(row['answered_by'])} |"
        )
    return lines


def targets(report: dict[str, Any]) -> list[str]:
    lines = ["| target | goal | measured | |", "|---|---|---|---|"]
    for t in report["targets"]:
        verdict = "not measured" if t["met"] is None else ("met" if t["met"] else "**missed**")
        lines.append(f"| {t['name']} | {t['target']} | {t['value']} | {verdict} |")
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    report = json.loads(Path(args[0] if args else "bench/out/report.json").read_text())
    for title, part in (
        ("Targets", targets),
        ("Non-streamed", nonstreamed),
        ("Ratios", ratios),
        ("Streams", streams),
    ):
        sys.stdout.write(f"\n### {title}\n\n" + "\n".join(part(report)) + "\n")


if __name__ == "__main__":
    main()

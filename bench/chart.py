"""The benchmark chart (matplotlib, no display needed): four panels from a report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLORS = {
    "upstream": "#9e9e9e",
    "passthrough": "#6a9fd8",
    "candor-1w": "#d9534f",
    "candor-2w": "#f0a04b",
    "candor-nodetect": "#f7c6c5",
    "litellm": "#5cb85c",
    "candor-flag": "#d9534f",
    "candor-reroute": "#8e44ad",
}
LABELS = {
    "upstream": "upstream (direct)",
    "passthrough": "bare FastAPI+aiohttp",
    "candor-1w": "Candor, 1 worker",
    "candor-2w": "Candor, 2 workers",
    "candor-nodetect": "Candor, detector off",
    "litellm": "LiteLLM proxy",
    "candor-flag": "Candor flag",
    "candor-reroute": "Candor reroute",
}


def _bars(ax: Any, groups: list[str], series: dict[str, list[float]], width: float) -> None:
    for i, (name, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        bars = ax.bar(xs, values, width, label=LABELS.get(name, name), color=COLORS.get(name))
        ax.bar_label(
            bars,
            labels=[f"{v:,.0f}" if v >= 10 else f"{v:.2g}" for v in values],
            fontsize=6,
            rotation=90,
            padding=2,
        )
    ax.set_xticks(range(len(groups)), groups)


def draw(report: dict[str, Any], path: Path) -> None:
    """Write the PNG: throughput, latency at 1, stream TTFT, memory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    rows = report.get("nonstreamed", {})
    levels = ["1", "20", "100"]

    ax = axes[0][0]
    _bars(
        ax,
        [f"{c} concurrent" for c in levels],
        {n: [r[c]["rps"] for c in levels] for n, r in rows.items()},
        0.13,
    )
    ax.set_yscale("log")
    ax.set_ylabel("requests / s (log)")
    ax.set_title("Non-streamed throughput (higher is better)")
    ax.legend(fontsize=7, loc="lower left")

    ax = axes[0][1]
    names = list(rows)
    _bars(
        ax,
        ["p50 at 1", "p99 at 1", "p50 at 20", "p99 at 20"],
        {
            n: [
                rows[n]["1"]["p50_ms"],
                rows[n]["1"]["p99_ms"],
                rows[n]["20"]["p50_ms"],
                rows[n]["20"]["p99_ms"],
            ]
            for n in names
        },
        0.13,
    )
    ax.set_yscale("log")
    ax.set_ylabel("latency, ms (log)")
    ax.set_title("Non-streamed latency (lower is better)")

    ax = axes[1][0]
    streams = report.get("streams", {})
    systems = sorted({k.split("/")[0] for k in streams}, key=list(COLORS).index)
    series = {}
    for name in systems:
        series[name] = [
            streams.get(f"{name}/{a}", {}).get("ttft", {}).get(q, 0.0)
            for a in ("clean", "censored")
            for q in ("p50_ms", "p99_ms")
        ]
    _bars(ax, ["clean p50", "clean p99", "censored p50", "censored p99"], series, 0.2)
    ax.set_yscale("log")
    ax.set_ylabel("time to first token, ms (log)")
    ax.set_title("Streams at 50 tok/s: time to first token")
    ax.legend(fontsize=7)

    ax = axes[1][1]
    idle = {n: max(v.values()) for n, v in report.get("idle_rss_mb", {}).items()}
    loaded = {n: r["100"]["peak_rss_mb_per_worker"] for n, r in rows.items()}
    names = list(idle)
    _bars(
        ax,
        ["idle", "under load (100 concurrent)"],
        {n: [idle[n], loaded.get(n, 0.0)] for n in names},
        0.13,
    )
    scale = report.get("scale")
    if scale:
        rss = max(scale["peak_rss_mb_per_worker"].values())
        ax.axhline(rss, color=COLORS["candor-1w"], linestyle="--", linewidth=1)
        ax.text(
            0.02,
            rss,
            f"Candor, {scale['streams']} open streams: {rss:.0f} MB, {scale['error_count']} errors",
            fontsize=7,
            va="bottom",
            transform=ax.get_yaxis_transform(),
        )
    ax.set_ylabel("RSS per worker, MB")
    ax.set_title("Memory")

    met = [t for t in report.get("targets", []) if t["met"] is not None]
    summary = ", ".join(f"{'met' if t['met'] else 'MISSED'}: {t['name']}" for t in met)
    machine = report.get("machine", {})
    fig.suptitle(
        f"Candor benchmarks ({machine.get('cpus')} cores, {machine.get('cpu_model', '')}; "
        f"{report.get('started_at', '')})",
        fontsize=11,
    )
    fig.text(0.5, 0.005, summary, ha="center", fontsize=6, wrap=True)
    fig.tight_layout(rect=(0, 0.03, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    import json
    import sys

    draw(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))

"""The PNG chart of a probe run: censorship rate per topic and language (matplotlib, lazy)."""

from __future__ import annotations

from pathlib import Path

from proxy.probe.report import Report

INSTALL_HINT = "pip install 'candor-proxy[bench]'"
COLOURS = ("#c0392b", "#2471a3", "#7d3c98", "#b9770e", "#138d75")


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_chart(report: Report, path: Path, title: str) -> bool:
    """Draw grouped bars (one per language) for every topic; False when matplotlib is absent."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display: files only
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    topics = list(report.by_topic)
    languages = report.languages
    width = 0.8 / max(len(languages), 1)
    fig, ax = plt.subplots(figsize=(max(8.0, 0.9 * len(topics) + 2), 4.8), dpi=120)
    try:
        for i, language in enumerate(languages):
            rates = []
            for topic in topics:
                tally = report.by_topic_language.get((topic, language))
                rate = tally.rate if tally is not None else None
                rates.append(0.0 if rate is None else rate * 100)
            offsets = [t + (i - (len(languages) - 1) / 2) * width for t in range(len(topics))]
            bars = ax.bar(offsets, rates, width, label=language, color=COLOURS[i % len(COLOURS)])
            ax.bar_label(bars, fmt="%.0f%%", fontsize=7, padding=2)
        sensitive = sum(1 for t in topics if report.topic_kind[t] == "sensitive")
        if 0 < sensitive < len(topics):
            ax.axvline(sensitive - 0.5, color="#999999", linestyle="--", linewidth=1)
            ax.text(sensitive - 0.4, 95, "controls", color="#666666", fontsize=9)
        ax.set_xticks(range(len(topics)))
        ax.set_xticklabels(topics, rotation=30, ha="right")
        ax.set_ylim(0, 108)
        ax.set_ylabel("censored answers (%)")
        ax.set_title(title)
        ax.legend(title="language")
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return True

"""Censorship rates from probe results: per kind, topic, language and category. Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from proxy.probe.judge import ProbeResult


@dataclass(slots=True)
class Tally:
    """Prompts asked, answers judged, how many were censored, how many got no answer (only
    reasoning, cut off, garbled: judged, not censored), and errors (not judged)."""

    asked: int = 0
    judged: int = 0
    censored: int = 0
    unanswered: int = 0
    errors: int = 0

    def add(self, result: ProbeResult) -> None:
        self.asked += 1
        if result.censored is None:
            self.errors += 1
            return
        self.judged += 1
        self.censored += int(result.censored)
        self.unanswered += int(result.unanswered)

    @property
    def rate(self) -> float | None:
        """Censored among judged answers; None when nothing could be judged."""
        return self.censored / self.judged if self.judged else None

    def to_dict(self) -> dict[str, Any]:
        rate = self.rate
        return {
            "asked": self.asked,
            "judged": self.judged,
            "censored": self.censored,
            "unanswered": self.unanswered,
            "errors": self.errors,
            "rate": None if rate is None else round(rate, 4),
        }


@dataclass(slots=True)
class Report:
    """Every tally of one probe run, in the suite's order."""

    results: list[ProbeResult]
    by_kind: dict[str, Tally] = field(default_factory=dict)
    by_topic: dict[str, Tally] = field(default_factory=dict)
    topic_kind: dict[str, str] = field(default_factory=dict)
    by_topic_language: dict[tuple[str, str], Tally] = field(default_factory=dict)
    by_language: dict[tuple[str, str], Tally] = field(default_factory=dict)
    categories: dict[str, Counter[str]] = field(default_factory=dict)

    @property
    def languages(self) -> list[str]:
        return list(dict.fromkeys(r.prompt.language for r in self.results))


def summarize(results: Iterable[ProbeResult]) -> Report:
    """Count every result into its kind, topic, topic x language and language x kind."""
    report = Report(results=list(results))
    for result in sorted(report.results, key=lambda r: r.prompt.kind != "sensitive"):
        p = result.prompt
        report.topic_kind.setdefault(p.topic, p.kind)
        report.by_kind.setdefault(p.kind, Tally()).add(result)
        report.by_topic.setdefault(p.topic, Tally()).add(result)
        report.by_topic_language.setdefault((p.topic, p.language), Tally()).add(result)
        report.by_language.setdefault((p.language, p.kind), Tally()).add(result)
        if result.censored:
            report.categories.setdefault(p.kind, Counter())[result.category] += 1
    return report


def percent(rate: float | None) -> str:
    return "  n/a" if rate is None else f"{rate * 100:4.0f}%"


def render_table(report: Report, title: str) -> str:
    """The plain-text report printed on stdout."""
    languages = report.languages
    header = ["topic", "kind", *languages, "all", "censored/judged", "no answer", "errors"]
    rows: list[list[str]] = []
    for topic, tally in report.by_topic.items():
        cells = [percent(_rate(report.by_topic_language.get((topic, lang)))) for lang in languages]
        rows.append(
            [
                topic,
                report.topic_kind[topic],
                *cells,
                percent(tally.rate),
                f"{tally.censored}/{tally.judged}",
                str(tally.unanswered),
                str(tally.errors),
            ]
        )
    for kind, tally in report.by_kind.items():
        cells = [percent(_rate(report.by_language.get((lang, kind)))) for lang in languages]
        rows.append(
            [
                f"ALL {kind}",
                kind,
                *cells,
                percent(tally.rate),
                f"{tally.censored}/{tally.judged}",
                str(tally.unanswered),
                str(tally.errors),
            ]
        )
    lines = [title, "", *_grid(header, rows, separator_before=len(report.by_topic)), ""]
    for kind, counts in report.categories.items():
        described = ", ".join(f"{name} {n}" for name, n in counts.most_common())
        lines.append(f"censored {kind} answers by category: {described}")
    unanswered = sum(t.unanswered for t in report.by_kind.values())
    if unanswered:
        lines.append(
            f"no answer (only reasoning, cut off or garbled), not counted as censored: {unanswered}"
        )
    return "\n".join(lines)


def _rate(tally: Tally | None) -> float | None:
    return None if tally is None else tally.rate


def _grid(header: Sequence[str], rows: Sequence[Sequence[str]], separator_before: int) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest])

    rule = "  ".join("-" * w for w in widths)
    body = [line(r) for r in rows]
    return [line(header), rule, *body[:separator_before], rule, *body[separator_before:]]


def to_json(report: Report, meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON report: the run's settings, every tally and every result."""
    return {
        **meta,
        "summary": {kind: tally.to_dict() for kind, tally in report.by_kind.items()},
        "by_topic": [
            {
                "topic": topic,
                "kind": report.topic_kind[topic],
                **tally.to_dict(),
                "by_language": {
                    lang: t.to_dict()
                    for (name, lang), t in report.by_topic_language.items()
                    if name == topic
                },
            }
            for topic, tally in report.by_topic.items()
        ],
        "by_language": [
            {"language": lang, "kind": kind, **tally.to_dict()}
            for (lang, kind), tally in report.by_language.items()
        ],
        "by_category": {kind: dict(counts) for kind, counts in report.categories.items()},
        "results": [r.to_dict() for r in report.results],
    }

"""Measuring a detector on labelled rows: whole answers, replayed streams, latency."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from proxy.detect.verdict import Decision, Detector
from proxy.offline.dataset import Example

STREAM_DELTA = 8


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the detector said about one labelled row."""

    language: str
    truth: bool
    truth_category: str
    flagged: bool
    category: str
    latency_ns: int
    cpu_ns: int = 0
    prerelease_stop: bool = False
    stopped: bool = False
    held: int = 0


def replay(detector: Detector, ex: Example, delta: int = STREAM_DELTA) -> tuple[bool, bool, int]:
    """Stream `ex.response` in `delta`-sized pieces: (stopped before release, stopped, held).

    `held` is how many characters had arrived when the first text was released (the whole
    answer when nothing was released before it ended).
    """
    judge = detector.open_stream(ex.exchange())
    text = ex.response
    released_at = -1
    stopped = False
    if ex.reasoning:
        judge.feed("", ex.reasoning)
    for i in range(0, len(text), delta):
        step = judge.feed(text[i : i + delta])
        if step.decision is Decision.CENSORED:
            stopped = True
            break
        if released_at < 0 and step.released > 0:
            released_at = min(i + delta, len(text))
    if not stopped:
        verdict = judge.finish(ex.finish_reason)
        if released_at < 0 and verdict.censored:
            stopped = True
    prerelease = stopped and released_at < 0
    return prerelease, stopped, released_at if released_at >= 0 else len(text)


def run(detector: Detector, examples: Sequence[Example], stream: bool = False) -> list[Outcome]:
    """Judge every labelled example (and replay it as a stream when asked)."""
    out: list[Outcome] = []
    for ex in examples:
        exchange = ex.exchange()
        start = time.perf_counter_ns()
        cpu = time.thread_time_ns()
        verdict = detector.judge(exchange)
        cpu = time.thread_time_ns() - cpu
        elapsed = time.perf_counter_ns() - start
        pre = stopped = False
        held = 0
        if stream:
            pre, stopped, held = replay(detector, ex)
        out.append(
            Outcome(
                # The row's language, or else the one the verdict names.
                language=ex.language or verdict.language,
                truth=bool(ex.censored),
                truth_category=ex.category or "none",
                flagged=verdict.censored,
                category=verdict.category.value,
                latency_ns=elapsed,
                cpu_ns=cpu,
                prerelease_stop=pre,
                stopped=stopped,
                held=held,
            )
        )
    return out


def _quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


def _figures(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    tp = sum(1 for o in outcomes if o.flagged and o.truth)
    fp = sum(1 for o in outcomes if o.flagged and not o.truth)
    fn = sum(1 for o in outcomes if not o.flagged and o.truth)
    clean = sum(1 for o in outcomes if not o.truth)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "n": len(outcomes),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "fpr": round(fp / clean, 4) if clean else 0.0,
    }


def _stream_figures(outcomes: Sequence[Outcome]) -> dict[str, float]:
    bad = [o for o in outcomes if o.truth]
    good = [o for o in outcomes if not o.truth]
    return {
        "prerelease_recall": round(sum(o.prerelease_stop for o in bad) / len(bad), 4)
        if bad
        else 0.0,
        "false_stop_rate": round(sum(o.stopped for o in good) / len(good), 4) if good else 0.0,
        "held_chars_p50_clean": _quantile([float(o.held) for o in good], 0.5),
    }


def summarize(outcomes: Sequence[Outcome], stream: bool = False) -> dict[str, Any]:
    """The report `candor eval --json` prints (key names are a public interface)."""
    report = _figures(outcomes)
    lat = [o.latency_ns / 1000.0 for o in outcomes]
    report["latency_us"] = {
        "p50": round(_quantile(lat, 0.5), 1),
        "p99": round(_quantile(lat, 0.99), 1),
    }
    langs = sorted({o.language for o in outcomes})
    # Thread CPU time: the same calls without the time spent descheduled on a busy machine.
    cpu = [o.cpu_ns / 1000.0 for o in outcomes]
    report["latency_cpu_us"] = {
        "p50": round(_quantile(cpu, 0.5), 1),
        "p99": round(_quantile(cpu, 0.99), 1),
    }
    report["by_language"] = {
        lang: _figures([o for o in outcomes if o.language == lang]) for lang in langs
    }
    cats = sorted({o.truth_category for o in outcomes if o.truth})
    by_cat: dict[str, dict[str, float]] = {}
    for cat in cats:
        rows = [o for o in outcomes if o.truth and o.truth_category == cat]
        by_cat[cat] = {
            "n": len(rows),
            "recall": round(sum(o.flagged for o in rows) / len(rows), 4),
        }
    report["by_category"] = by_cat
    predicted: dict[str, int] = {}
    for o in outcomes:
        if o.flagged:
            predicted[o.category] = predicted.get(o.category, 0) + 1
    report["predicted_categories"] = dict(sorted(predicted.items()))
    if stream:
        report["stream"] = _stream_figures(outcomes)
        if report["recall"]:
            ratio = report["stream"]["prerelease_recall"] / report["recall"]
            report["stream"]["prerelease_ratio"] = round(ratio, 4)
    return report


def check_floors(report: dict[str, Any], floors: dict[str, Any], path: str = "") -> list[str]:
    """Figures below their floor (or, for keys ending `_max`, above their ceiling)."""
    failures: list[str] = []
    for key, bound in floors.items():
        name = f"{path}.{key}" if path else key
        if isinstance(bound, dict):
            sub = report.get(key)
            if not isinstance(sub, dict):
                failures.append(f"{name}: missing from the report")
                continue
            failures += check_floors(sub, bound, name)
            continue
        ceiling = key.endswith("_max")
        field = key[: -len("_max")] if ceiling else key
        value = report.get(field)
        if not isinstance(bound, int | float) or isinstance(bound, bool):
            failures.append(f"{name}: the bound {bound!r} is not a number")
        elif not isinstance(value, int | float):
            failures.append(f"{name}: missing from the report")
        elif ceiling and value > bound:
            failures.append(f"{name}: {value} > {bound}")
        elif not ceiling and value < bound:
            failures.append(f"{name}: {value} < {bound}")
    return failures

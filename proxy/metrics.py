"""Every Prometheus series Candor exposes, in one place.

Labels are bounded: model names come from the config, topics and categories from the policy's
lists, languages from a short fixed list; anything else is counted under "other". No raw text and
no user id ever becomes a label value.

Under several uvicorn workers, prometheus-client's multiprocess mode adds up every worker's
values: `candor serve` sets `PROMETHEUS_MULTIPROC_DIR` before the workers start (the library reads
it when it is imported) and hands the same directory to `Metrics.create`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from proxy import __version__

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
OTHER = "other"
NO_TOPIC = "none"
# The classic text format every Prometheus reads (all names here are plain ASCII).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

ROUTES = ("chat", "chat_stream", "embeddings")
OUTCOMES = (
    "pass",
    "flagged",
    "rerouted",
    "blocked",
    "shadow_would_reroute",
    "shadow_would_block",
    "shadow_would_flag",
    "shadow_would_annotate",
    "annotated",
    "error",
    "bypassed",
    "client_gone",
)
LANGUAGES = ("en", "zh", "ja", "ko", "ru", "fr", "de", "es", "pt", "it", "ar", "vi", "fi", "und")
# Why a fallback answered (`reason` of candor_reroutes_total: the verdict's category, or what
# the pipeline names: `censored` by default, `outage`, a pre-emption) or failed (the error code
# of candor_fallback_failures_total). A value not listed is counted as `other`.
REASONS = (
    "censored",
    "outage",
    "preempt_topic",
    "preempt_remembered",
    "preempt_rate",
    "upstream_error",
    "upstream_unreachable",
    "upstream_timeout",
    "bad_upstream_response",
    "upstream_auth_failed",
    "rate_limit_exceeded",
    "data_inspection_failed",
)

DETECTOR_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)
TOTAL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0, 300.0)
HELD_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class Bounded:
    """Maps a free value onto a fixed set of label values; anything else is `other`."""

    __slots__ = ("_allowed",)

    def __init__(self, allowed: Iterable[str]) -> None:
        self._allowed = frozenset(allowed)

    def __call__(self, value: str) -> str:
        return value if value in self._allowed else OTHER

    @property
    def values(self) -> frozenset[str]:
        return self._allowed


@dataclass(slots=True)
class _Series:
    requests: Counter
    request_seconds: Histogram
    scanned: Counter
    censored: Counter
    topic_scanned: Counter
    topic_censored: Counter
    reroutes: Counter
    fallback_failures: Counter
    detector_seconds: Histogram
    detector_errors: Counter
    upstream_ttft: Histogram
    upstream_total: Histogram
    held_seconds: Histogram
    tokens: Counter
    store_reachable: Gauge
    store_writable: Gauge
    store_buffered: Gauge
    store_dropped: Counter
    build_info: Gauge


def _series(registry: CollectorRegistry | None) -> _Series:
    r = registry
    return _Series(
        requests=Counter(
            "candor_requests",
            "Chat requests by model asked for, route and what Candor did with the answer.",
            ["model", "route", "outcome"],
            registry=r,
        ),
        request_seconds=Histogram(
            "candor_request_duration_seconds",
            "End-to-end request time inside Candor, re-routes included.",
            ["model", "route", "outcome"],
            buckets=TOTAL_BUCKETS,
            registry=r,
        ),
        scanned=Counter(
            "candor_answers_scanned",
            "Answers the detector judged, by model and answer language.",
            ["model", "language"],
            registry=r,
        ),
        censored=Counter(
            "candor_answers_censored",
            "Answers judged censored, by model, language, category and political topic or not.",
            ["model", "language", "category", "political"],
            registry=r,
        ),
        topic_scanned=Counter(
            "candor_topic_answers_scanned",
            "Answers judged, once per topic of the request ('none' when it has none).",
            ["model", "topic"],
            registry=r,
        ),
        topic_censored=Counter(
            "candor_topic_answers_censored",
            "Answers judged censored on a political topic (political: true), once per topic of "
            "the request: non-answers and generic refusals are left out, as from the rate.",
            ["model", "topic"],
            registry=r,
        ),
        reroutes=Counter(
            "candor_reroutes",
            "Questions re-sent to a fallback, by the model that failed, the fallback and why.",
            ["from_model", "to_model", "reason"],
            registry=r,
        ),
        fallback_failures=Counter(
            "candor_fallback_failures",
            "Fallback attempts that gave no usable answer, by fallback model and reason.",
            ["model", "reason"],
            registry=r,
        ),
        detector_seconds=Histogram(
            "candor_detector_duration_seconds",
            "Detector time per answer.",
            buckets=DETECTOR_BUCKETS,
            registry=r,
        ),
        detector_errors=Counter(
            "candor_detector_errors",
            "Detector failures (the answer passed unjudged: fail-open).",
            registry=r,
        ),
        upstream_ttft=Histogram(
            "candor_upstream_ttft_seconds",
            "Upstream time to first token (first byte of a whole answer).",
            ["model"],
            buckets=TTFT_BUCKETS,
            registry=r,
        ),
        upstream_total=Histogram(
            "candor_upstream_duration_seconds",
            "Upstream time until the answer was complete.",
            ["model"],
            buckets=TOTAL_BUCKETS,
            registry=r,
        ),
        held_seconds=Histogram(
            "candor_stream_held_seconds",
            "Time streamed text was held back from the client while it was judged.",
            ["model"],
            buckets=HELD_BUCKETS,
            registry=r,
        ),
        tokens=Counter(
            "candor_upstream_tokens",
            "Tokens the upstreams reported in `usage`, by model and kind (prompt or completion).",
            ["model", "kind"],
            registry=r,
        ),
        store_reachable=Gauge(
            "candor_store_reachable",
            "1 when the shared store answered at the last check, 0 when it did not.",
            registry=r,
            multiprocess_mode="mostrecent",
        ),
        store_writable=Gauge(
            "candor_store_writable",
            "0 while the shared store answers but refuses writes (Redis at maxmemory), else 1.",
            registry=r,
            multiprocess_mode="livemin",
        ),
        store_buffered=Gauge(
            "candor_store_buffered_events",
            "Events held in memory while the shared store is unreachable.",
            registry=r,
            multiprocess_mode="livesum",
        ),
        store_dropped=Counter(
            "candor_store_dropped_events",
            "Events dropped because the in-memory buffer was full.",
            registry=r,
        ),
        build_info=Gauge(
            "candor_build_info",
            "Always 1; the version label says which Candor is running.",
            ["version"],
            registry=r,
            multiprocess_mode="livemax",
        ),
    )


@dataclass(slots=True)
class Metrics:
    """The Prometheus series of one app; the pipeline reports through these methods."""

    registry: CollectorRegistry
    multiprocess_dir: Path | None
    _series: _Series
    _models: Bounded
    _topics: Bounded
    _categories: Bounded
    _languages: Bounded
    _reasons: Bounded
    _routes: Bounded = field(default_factory=lambda: Bounded(ROUTES))
    _outcomes: Bounded = field(default_factory=lambda: Bounded(OUTCOMES))
    _dropped_seen: int = 0

    @classmethod
    def create(
        cls,
        models: Sequence[str],
        topics: Sequence[str],
        categories: Sequence[str],
        multiprocess_dir: str | Path | None = None,
        *,
        languages: Sequence[str] = LANGUAGES,
        registry: CollectorRegistry | None = None,
    ) -> Metrics:
        """Build every series on `registry` (a fresh one by default).

        With `multiprocess_dir`, values live in that directory (shared by all workers) and
        `render` adds them up; the process must have been started with `PROMETHEUS_MULTIPROC_DIR`
        set to the same directory. A process started with it set is in that mode either way.
        """
        registry = registry if registry is not None else CollectorRegistry()
        if multiprocess_dir is None and values.ValueClass is not values.MutexValue:
            # The library already writes values to files: reading only this process's values
            # would report one worker's share, so add up the directory's instead.
            multiprocess_dir = os.environ.get(MULTIPROC_ENV)
        mp_dir = Path(multiprocess_dir) if multiprocess_dir is not None else None
        if mp_dir is not None:
            _check_multiprocess(mp_dir)
            MultiProcessCollector(registry, path=str(mp_dir))  # type: ignore[no-untyped-call]
        series = _series(None if mp_dir is not None else registry)
        metrics = cls(
            registry=registry,
            multiprocess_dir=mp_dir,
            _series=series,
            _models=Bounded(models),
            _topics=Bounded(topics),
            _categories=Bounded(categories),
            _languages=Bounded(languages),
            _reasons=Bounded((*REASONS, *categories)),
        )
        metrics._initialise()
        return metrics

    def _initialise(self) -> None:
        """Known label sets start at zero, so rates and alerts have a series before traffic."""
        s = self._series
        s.build_info.labels(__version__).set(1)
        for model in (*sorted(self._models.values), OTHER):
            for route in ROUTES:
                for outcome in OUTCOMES:
                    s.requests.labels(model, route, outcome)
            for kind in ("prompt", "completion"):
                s.tokens.labels(model, kind)
        s.store_reachable.set(1)
        s.store_writable.set(1)
        s.store_buffered.set(0)

    def request(self, model: str, route: str, outcome: str, seconds: float) -> None:
        """One chat request done: `outcome` is what Candor did (pass, flagged, rerouted...)."""
        labels = (self._models(model), self._routes(route), self._outcomes(outcome))
        self._series.requests.labels(*labels).inc()
        self._series.request_seconds.labels(*labels).observe(seconds)

    def scanned(
        self,
        model: str,
        censored: bool,
        category: str,
        topics: Sequence[str],
        language: str,
        political: bool,
    ) -> None:
        """One answer judged. An answer counts once per model and language, and once under
        each of its topics (under "none" when it has none) in the per-topic series."""
        s = self._series
        m = self._models(model)
        lang = self._languages(language)
        s.scanned.labels(m, lang).inc()
        if censored:
            s.censored.labels(m, lang, self._categories(category), _bool(political)).inc()
        for topic in {self._topics(t) for t in topics} or {NO_TOPIC}:
            s.topic_scanned.labels(m, topic).inc()
            if political:
                s.topic_censored.labels(m, topic).inc()

    def reroute(self, from_model: str, to_model: str, reason: str) -> None:
        self._series.reroutes.labels(
            self._models(from_model), self._models(to_model), self._reasons(reason)
        ).inc()

    def fallback_failure(self, model: str, reason: str) -> None:
        self._series.fallback_failures.labels(self._models(model), self._reasons(reason)).inc()

    def detector_seconds(self, seconds: float) -> None:
        self._series.detector_seconds.observe(seconds)

    def detector_error(self) -> None:
        self._series.detector_errors.inc()

    def upstream_ttft(self, model: str, seconds: float) -> None:
        self._series.upstream_ttft.labels(self._models(model)).observe(seconds)

    def upstream_total(self, model: str, seconds: float) -> None:
        self._series.upstream_total.labels(self._models(model)).observe(seconds)

    def held_seconds(self, model: str, seconds: float) -> None:
        self._series.held_seconds.labels(self._models(model)).observe(seconds)

    def tokens(self, model: str, prompt: int, completion: int) -> None:
        m = self._models(model)
        if prompt > 0:
            self._series.tokens.labels(m, "prompt").inc(prompt)
        if completion > 0:
            self._series.tokens.labels(m, "completion").inc(completion)

    def store_state(
        self, reachable: bool, buffered: int = 0, dropped: int = 0, *, writable: bool = True
    ) -> None:
        """The store's health as last seen; `dropped` is the store's running total."""
        s = self._series
        s.store_reachable.set(1 if reachable else 0)
        s.store_writable.set(1 if writable else 0)
        s.store_buffered.set(max(buffered, 0))
        if dropped > self._dropped_seen:
            s.store_dropped.inc(dropped - self._dropped_seen)
        self._dropped_seen = dropped

    def render(self) -> tuple[bytes, str]:
        """The exposition body for `GET /metrics` and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE

    def close(self) -> None:
        """On worker exit: forget this process's live gauges (counters are kept, as totals)."""
        if self.multiprocess_dir is not None:
            mark_process_dead(os.getpid(), str(self.multiprocess_dir))  # type: ignore[no-untyped-call]


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _check_multiprocess(directory: Path) -> None:
    if not directory.is_dir():
        raise ValueError(f"metrics multiprocess directory {directory} does not exist")
    env = os.environ.get(MULTIPROC_ENV)
    if values.ValueClass is values.MutexValue or env is None:
        raise ValueError(f"multiprocess metrics need {MULTIPROC_ENV} set before the process starts")
    if Path(env).resolve() != directory.resolve():
        raise ValueError(f"{MULTIPROC_ENV}={env} is not the metrics directory {directory}")

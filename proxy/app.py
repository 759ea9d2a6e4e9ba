"""create_app(settings): everything is built here, nothing at import time."""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from proxy import __version__
from proxy.api import admin, chat, embeddings, errors, health, metrics, models, ui
from proxy.api.fast_path import ChatFastPath
from proxy.api.head import HeadAsGet
from proxy.api.request_id import RequestIdMiddleware
from proxy.auth import Authenticator, check_key_models, check_startup
from proxy.detect import Category
from proxy.detect.null import NullDetector
from proxy.errors import ConfigError
from proxy.metrics import Metrics
from proxy.offline.loader import PolicyError, load_detector
from proxy.pipeline import JudgingDetector, Pipeline
from proxy.policy.model import PolicySet, load_policies
from proxy.recorder import Recorder
from proxy.services import Services
from proxy.settings import REPO_POLICIES, Settings, load_settings
from proxy.shutdown import ShutdownWatch
from proxy.store import build_store
from proxy.upstream.registry import Upstreams

log = logging.getLogger(__name__)

CONFIG_ENV = "CANDOR_CONFIG"


def build_detector(settings: Settings) -> JudgingDetector:
    if settings.detector == "none":
        return NullDetector()
    data = settings.policies_dir / "detector"
    if not data.is_dir():
        raise ConfigError(
            f"policies_dir: {settings.policies_dir} has no detector/ folder, the detector's "
            f"data (copy {REPO_POLICIES / 'detector'} there, or set detector: none)"
        )
    try:
        detector = load_detector(settings.policies_dir)
    except (PolicyError, OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"detector data: {exc}") from None
    if not detector.native_sums:
        log.warning(
            "detector: the C extension proxy/detect/_sums.c is not built (no C compiler at "
            "install?); its sums are made in Python: same verdicts, about 1.6x the detector time"
        )
    return detector


def build_policies(settings: Settings) -> PolicySet:
    """Every policy in `policies/`, checked against the configured models and client keys."""
    policies = load_policies(settings.policies_dir)
    policies.check_models(
        set(settings.models),
        {name: route.policy for name, route in settings.models.items()},
        [(key.id, key.policy) for key in settings.auth.keys],
    )
    return policies


def policy_warnings(settings: Settings) -> list[str]:
    """What `candor serve` warns of as it starts: re-routing policies with nowhere to re-route
    (checked after `check_settings` or `create_app`, so the policies load)."""
    return load_policies(settings.policies_dir).reroutes_without_fallbacks(
        {name: route.policy for name, route in settings.models.items()},
        [(key.id, key.policy) for key in settings.auth.keys],
    )


def build_metrics(settings: Settings, topics: Sequence[str]) -> Metrics:
    """The Prometheus series, their labels bounded by the configured models and the policy's
    topics and categories."""
    return Metrics.create(
        models=list(settings.models),
        topics=topics,
        categories=[c.value for c in Category],
        multiprocess_dir=settings.metrics.multiprocess_dir,
    )


def build_checked(settings: Settings) -> tuple[Upstreams, PolicySet, JudgingDetector]:
    """The parts whose building checks the configuration: API keys resolved, policies checked
    against the models, detector data loaded. Nothing is started and no file is written."""
    upstreams = Upstreams(settings)
    check_key_models(settings)
    policies = build_policies(settings)
    detector = build_detector(settings)
    if settings.detector != "none":
        policies.check_topics(detector.topic_names)
    return upstreams, policies, detector


def check_settings(settings: Settings) -> None:
    """Raise the ConfigError `create_app` would, without building the app.

    `candor serve` calls it before forking workers: a worker that fails in `create_app` is
    restarted by uvicorn's supervisor, forever, each time with a traceback.
    """
    check_startup(settings)
    build_checked(settings)


def create_app(settings: Settings) -> FastAPI:
    """Build the ASGI app and every service it runs on from one settings object."""
    upstreams, policies, detector = build_checked(settings)
    store = build_store(settings)
    metrics_ = build_metrics(settings, topics=detector.topic_names)
    shutdown = ShutdownWatch(settings.server.shutdown_grace)
    pipeline = Pipeline(
        upstreams,
        detector,
        policies,
        {name: route.policy for name, route in settings.models.items()},
        state=store,
        observer=Recorder(metrics_, store, settings.store),
        shutdown=shutdown,
    )
    svc = Services(
        settings=settings,
        upstreams=upstreams,
        pipeline=pipeline,
        store=store,
        started_at=int(time.time()),
        metrics=metrics_,
        auth=Authenticator(settings),
        shutdown=shutdown,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        check_startup(settings)
        await svc.store.start()
        await upstreams.start()
        # Everything loaded so far (detector weights, lexicons, the app) lives as long as the
        # process: keep it out of the collector, whose full passes took ~45 ms under load.
        gc.collect()
        gc.freeze()
        log.info("candor ready: %d model(s) routed", len(upstreams.names))
        try:
            # Under the server's signal handlers: a request cut past the grace is told apart
            # from one whose client left.
            with svc.shutdown.signals():
                yield
        finally:
            # Requests cut at shutdown record as they end: the store must outlast them.
            await pipeline.drain()
            await upstreams.aclose()
            await svc.store.aclose()
            svc.metrics.close()

    app = FastAPI(
        title="Candor",
        version=__version__,
        description="OpenAI-compatible proxy that detects and re-routes censored answers.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # A trailing slash is a 404 in the envelope, not a redirect built from the Host header.
        redirect_slashes=False,
    )
    app.state.services = svc
    errors.install(app)
    for router in (
        chat.router,
        embeddings.router,
        models.router,
        health.router,
        admin.router,
        ui.router,
    ):
        app.include_router(router)
    if settings.metrics.enabled:
        app.include_router(metrics.router)
    app.add_middleware(ChatFastPath)
    app.add_middleware(HeadAsGet)
    app.add_middleware(RequestIdMiddleware)  # added last: outermost, so the fast path has the id
    return app


def app_from_env() -> FastAPI:
    """The uvicorn factory used by `candor serve` (one per worker process)."""
    path = os.environ.get(CONFIG_ENV)
    return create_app(load_settings(Path(path) if path else None))

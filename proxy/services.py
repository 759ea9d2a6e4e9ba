"""The long-lived objects one app instance runs on, built by `create_app` and handed down."""

from __future__ import annotations

from dataclasses import dataclass

from proxy.auth import Authenticator
from proxy.metrics import Metrics
from proxy.pipeline import Pipeline
from proxy.settings import Settings
from proxy.shutdown import ShutdownWatch
from proxy.store.base import Store
from proxy.upstream.registry import Upstreams


@dataclass(slots=True)
class Services:
    settings: Settings
    upstreams: Upstreams
    pipeline: Pipeline
    store: Store
    started_at: int
    metrics: Metrics
    auth: Authenticator
    shutdown: ShutdownWatch

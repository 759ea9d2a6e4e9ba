"""End-to-end fixtures: the scripted upstream and Candor, both real servers on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from proxy.demo.upstream import ScriptedUpstream
from proxy.settings import ModelRoute, Settings, Timeouts
from tests import upstream_fixtures
from tests.servers import CandorServer, pass_through_auth

UPSTREAM_KEY = "sk-upstream-secret-0123456789"
FAST = Timeouts(connect=2, first_byte=1.0, idle=1.0, total=10)


# The shared scripted-upstream fixtures, registered here for the e2e tests.
upstream = upstream_fixtures.upstream
upstream_server = upstream_fixtures.upstream_server


@pytest.fixture(scope="session")
def scripted(upstream_server: ScriptedUpstream) -> ScriptedUpstream:
    """The session's scripted upstream, for session- and module-scoped servers in front of it."""
    return upstream_server


def routes_for(upstream: ScriptedUpstream, **extra: ModelRoute) -> dict[str, ModelRoute]:
    """Every scripted model, routed through the OpenAI-compatible fast path."""
    routes = {
        name: ModelRoute(base_url=upstream.base_url, api_key_env="CANDOR_TEST_UPSTREAM_KEY")
        for name in upstream.scripts
    }
    routes.update(extra)
    return routes


def start_candor(
    monkeypatch: pytest.MonkeyPatch, upstream: ScriptedUpstream, **settings: Any
) -> CandorServer:
    monkeypatch.setenv("CANDOR_TEST_UPSTREAM_KEY", UPSTREAM_KEY)
    settings.setdefault("models", routes_for(upstream))
    settings.setdefault("timeouts", FAST)
    settings.setdefault("auth", pass_through_auth())
    return CandorServer(Settings(**settings)).start()


@pytest.fixture(scope="session")
def candor(scripted: ScriptedUpstream) -> Iterator[CandorServer]:
    """Candor in front of the scripted upstream, shared by the read-only tests."""
    mp = pytest.MonkeyPatch()
    server = start_candor(mp, scripted)
    yield server
    server.stop()
    mp.undo()

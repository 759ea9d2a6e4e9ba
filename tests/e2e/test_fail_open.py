"""A detector that fails on an answer lets it pass: the request is served, counted as
`bypassed`, and `candor_detector_errors_total` rises (what the `CandorDetectorErrors` alert and
the dashboard's fail-open line read)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import proxy.app
from proxy.demo.upstream import ScriptedUpstream
from proxy.detect import Exchange, StreamJudge, StreamStep, Verdict
from tests.e2e.conftest import start_candor
from tests.servers import TEST_ADMIN_KEY, CandorServer

pytestmark = pytest.mark.e2e
ASK = [{"role": "user", "content": "What happened at Tiananmen Square in 1989?"}]


class BrokenJudge:
    def feed(self, content: str = "", reasoning: str = "") -> StreamStep:
        raise RuntimeError("a bug in the detector")

    def finish(self, *args: Any, **kwargs: Any) -> Verdict:
        raise RuntimeError("a bug in the detector")


class BrokenDetector:
    """The real detector's topics; judging any answer raises."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.topic_names = real.topic_names

    def request_topics(self, messages: Any) -> tuple[str, ...]:
        return self._real.request_topics(messages)  # type: ignore[no-any-return]

    def judge(self, exchange: Exchange) -> Verdict:
        raise RuntimeError("a bug in the detector")

    def open_stream(self, exchange: Exchange) -> StreamJudge:
        return BrokenJudge()


@pytest.fixture
def broken(monkeypatch: pytest.MonkeyPatch, upstream: ScriptedUpstream) -> Iterator[CandorServer]:
    real = proxy.app.build_detector
    monkeypatch.setattr(
        proxy.app, "build_detector", lambda settings: BrokenDetector(real(settings))
    )
    server = start_candor(monkeypatch, upstream)
    yield server
    server.stop()


def metric(server: CandorServer, prefix: str) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


@pytest.mark.parametrize("stream", [False, True])
def test_a_detector_that_fails_lets_the_answer_pass(broken: CandorServer, stream: bool) -> None:
    # Before, the whole answer was a 500 and the stream ended in an error event; nothing was
    # counted as a detector error.
    body = {"model": "honest-demo", "messages": ASK, "stream": stream}
    response = httpx.post(f"{broken.base_url}/chat/completions", json=body, timeout=10)
    assert response.status_code == 200
    assert "Tiananmen" in response.text and '"error"' not in response.text
    assert metric(broken, "candor_detector_errors_total") == 1
    route = "chat_stream" if stream else "chat"
    bypassed = f'candor_requests_total{{model="honest-demo",outcome="bypassed",route="{route}"}}'
    assert metric(broken, bypassed) == 1
    # Audited too: an operator sees which answers went out unjudged (before, none was).
    admin = {"authorization": f"Bearer {TEST_ADMIN_KEY}"}
    (event,) = httpx.get(f"{broken.url}/admin/events", headers=admin).json()["data"]
    assert (event["action"], event["signals"]) == ("pass", ["detector_error"])

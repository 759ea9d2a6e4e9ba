"""The pipeline with a scripted judge: what happens when censorship shows only after release."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import orjson
import pytest

from proxy.demo.upstream import ScriptedUpstream
from proxy.detect import (
    UNKNOWN,
    Category,
    Decision,
    Exchange,
    Status,
    StreamStep,
    Verdict,
)
from proxy.outcome import Outcome
from proxy.pipeline import ChatRequest, Pipeline
from proxy.policy.model import Policy, PolicySet
from proxy.settings import ModelRoute, Settings
from proxy.shutdown import ShutdownWatch
from proxy.upstream.registry import Upstreams

LATE = Verdict(Status.CENSORED, 0.9, Category.PROPAGANDA, ("taiwan",), "en")


class ReleaseThenCensor:
    """Releases every delta, then judges the whole answer censored."""

    def __init__(self) -> None:
        self.length = 0

    def feed(self, content: str = "", reasoning: str = "") -> StreamStep:
        self.length += len(content)
        return StreamStep(Decision.RELEASE, self.length)

    def finish(self, finish_reason: str | None = None, has_tool_calls: bool = False) -> Verdict:
        return LATE


class LateDetector:
    topic_names = ("taiwan",)

    def judge(self, exchange: Exchange) -> Verdict:
        return UNKNOWN

    def open_stream(self, exchange: Exchange) -> ReleaseThenCensor:
        return ReleaseThenCensor()

    def request_topics(self, messages: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
        return ("taiwan",)


class Collect:
    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []

    async def observe(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)


@pytest.fixture
async def upstream() -> AsyncIterator[ScriptedUpstream]:
    async with ScriptedUpstream() as server:
        yield server


async def run(upstream: ScriptedUpstream, policy: Policy) -> tuple[list[bytes], Outcome]:
    settings = Settings(
        models={"m": ModelRoute(base_url=upstream.base_url, upstream_model="fixed")}
    )
    upstreams = Upstreams(settings)
    await upstreams.start()
    seen = Collect()
    pipeline = Pipeline(
        upstreams, LateDetector(), PolicySet({"default": policy}), {}, observer=seen
    )
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    try:
        reply = await pipeline.stream(ChatRequest("r1", "m", body))
        frames = [frame async for frame in reply.chunks]
    finally:
        await upstreams.aclose()
    return frames, seen.outcomes[0]


async def test_late_censorship_can_end_the_stream_with_an_error(upstream: ScriptedUpstream) -> None:
    policy = Policy(action="reroute", fallbacks=("m",), stream={"after_release": "error"})
    frames, outcome = await run(upstream, policy)
    assert frames[-1] != b"data: [DONE]\n\n"
    error = orjson.loads(frames[-1][6:])["error"]
    assert error["type"] == "content_filter" and error["code"] == "censored_after_release"
    assert outcome.reason == "censored_after_release"


async def test_late_censorship_can_be_flagged_instead(upstream: ScriptedUpstream) -> None:
    frames, outcome = await run(upstream, Policy(action="reroute", fallbacks=("m",)))
    assert frames[-1] == b"data: [DONE]\n\n"
    candor = orjson.loads(frames[-2][6:])["candor"]
    assert candor["verdict"] == "censored" and candor["action"] == "flag"
    assert outcome.action == "flag" and outcome.judged == LATE


@pytest.mark.parametrize("stopping", [False, True])
async def test_a_whole_answer_cancelled_at_shutdown_is_the_servers_cut(stopping: bool) -> None:
    # Before, a whole answer cancelled past the shutdown grace counted as its client leaving
    # (`client_gone`): the server cut it.
    async with ScriptedUpstream(stall_seconds=30) as upstream:
        settings = Settings(
            models={"m": ModelRoute(base_url=upstream.base_url, upstream_model="stall-headers")}
        )
        upstreams = Upstreams(settings)
        await upstreams.start()
        seen = Collect()
        shutdown = ShutdownWatch(grace=0)
        if stopping:
            shutdown.begin()
        pipeline = Pipeline(
            upstreams,
            LateDetector(),
            PolicySet({"default": Policy()}),
            {},
            observer=seen,
            shutdown=shutdown,
        )
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        try:
            asked = asyncio.ensure_future(pipeline.complete(ChatRequest("r1", "m", body)))
            while not upstream.requests:
                await asyncio.sleep(0.01)
            asked.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asked
        finally:
            await upstreams.aclose()
    (outcome,) = seen.outcomes
    if stopping:
        assert (outcome.client_left, outcome.error, outcome.outcome_label) == (
            False,
            "server_shutdown",
            "error",
        )
    else:
        assert (outcome.client_left, outcome.error, outcome.outcome_label) == (
            True,
            None,
            "client_gone",
        )

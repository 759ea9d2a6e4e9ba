"""One probe run: every prompt of the suite sent with bounded concurrency, each answer judged."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

import aiohttp

from proxy.detect import Detector
from proxy.probe.client import ProbeClient, RetryPolicy
from proxy.probe.judge import JudgeMode, ProbeResult, judge
from proxy.probe.progress import Progress
from proxy.probe.suite import ProbePrompt


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """Where to send the suite and how hard to push."""

    base_url: str
    model: str
    api_key: str | None = None
    concurrency: int = 4
    timeout: float = 120.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)


async def run_probe(
    target: ProbeTarget,
    prompts: Sequence[ProbePrompt],
    detector: Detector | None,
    *,
    mode: JudgeMode = "auto",
    progress_out: TextIO | None = None,
) -> list[ProbeResult]:
    """Results in the suite's order, whatever order the answers came back in."""
    progress = Progress(len(prompts), progress_out)
    limit = asyncio.Semaphore(target.concurrency)
    connector = aiohttp.TCPConnector(limit=target.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        client = ProbeClient(
            session,
            target.base_url,
            target.model,
            api_key=target.api_key,
            timeout=target.timeout,
            retry=target.retry,
        )

        async def one(prompt: ProbePrompt) -> ProbeResult:
            async with limit:
                response = await client.ask(prompt.text)
            result = judge(prompt, client.body(prompt.text), response, detector, mode)
            progress.advance(result.censored)
            return result

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(p)) for p in prompts]
    return [t.result() for t in tasks]

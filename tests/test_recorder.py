"""The recorder: what it counts and audits of an outcome, whatever an upstream reported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from proxy.detect import Category, Status, Verdict
from proxy.metrics import Metrics
from proxy.outcome import Attempt, Outcome
from proxy.policy.actions import ActionName
from proxy.recorder import Recorder
from proxy.settings import StoreSettings
from proxy.store.events import AuditEvent
from proxy.store.memory import MemoryStore
from tests.test_metrics import value


@pytest.mark.parametrize(
    ("usage", "prompt", "completion"),
    [
        ({"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}, 7, 5),
        ({"prompt_tokens": 7, "completion_tokens": "5"}, 7, 0),
        ("lots", 0, 0),  # an upstream off the protocol: no tokens, but the request is recorded
        ([1, 2], 0, 0),
    ],
)
async def test_usage_of_any_shape_is_counted_or_skipped(
    usage: Any, prompt: int, completion: int
) -> None:
    metrics = Metrics.create(["qwen"], ["tiananmen"], ["none"], None)
    store = MemoryStore(StoreSettings())
    outcome = Outcome(
        request_id="r1",
        requested_model="qwen",
        policy="default",
        streamed=False,
        messages=[{"role": "user", "content": "hi"}],
        action=ActionName.PASS,
        key_id="k1",
        attempts=[Attempt(model="qwen", usage=usage)],
    )
    await Recorder(metrics, store, StoreSettings()).observe(outcome)
    labels = {"model": "qwen", "route": "chat", "outcome": "pass"}
    assert value(metrics, "candor_requests_total", **labels) == 1
    assert value(metrics, "candor_upstream_tokens_total", model="qwen", kind="prompt") == prompt
    assert value(metrics, "candor_upstream_tokens_total", model="qwen", kind="completion") == (
        completion
    )


async def test_the_stores_censorship_rate_counts_only_political_answers() -> None:
    """The status page and pre-emptive routing read the store's rate: a non-answer to a
    political question is no sign that the model censors the topic."""
    metrics = Metrics.create(["qwen"], ["tiananmen"], ["none"], None)
    store = MemoryStore(StoreSettings())
    recorder = Recorder(metrics, store, StoreSettings())
    for category in (Category.NON_ANSWER, Category.REFUSAL):
        verdict = Verdict(Status.CENSORED, 1.0, category, ("tiananmen",), "en")
        outcome = Outcome(
            request_id="r",
            requested_model="qwen",
            policy="default",
            streamed=False,
            messages=[{"role": "user", "content": "What happened in 1989?"}],
            action=ActionName.FLAG,
            attempts=[Attempt(model="qwen", verdict=verdict)],
        )
        await recorder.observe(outcome)
    rate = await store.censorship_rate("qwen", "tiananmen")
    assert (rate.censored, rate.scanned) == (1, 2)


def test_the_readme_documents_every_event_field() -> None:
    table = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    documented = {
        name.strip("`")
        for line in table.splitlines()
        if line.startswith("| `")
        for name in line.split(" | ")[0].lstrip("| ").split(", ")
    }
    assert set(AuditEvent.__dataclass_fields__) <= documented

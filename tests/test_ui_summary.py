"""The status page's summary, built from the memory store with plain calls."""

from __future__ import annotations

from proxy.settings import StoreSettings
from proxy.store.events import make_event
from proxy.store.memory import MemoryStore
from proxy.store.redis import RedisStore
from proxy.ui.summary import EXCERPT_CHARS, build_summary
from tests.servers import free_port


async def test_rates_per_model_and_topic_reroutes_and_recent_events() -> None:
    store = MemoryStore(StoreSettings())
    await store.record_verdict("qwen", ("tiananmen",), True)
    await store.record_verdict("qwen", ("tiananmen",), False)
    await store.record_verdict("qwen", (), False)
    await store.record_verdict("honest", ("tiananmen",), False)
    long_prompt = "Why? " * 200
    for action, fallback in (("reroute", "honest"), ("reroute", "honest"), ("flag", None)):
        event = make_event(
            request_id="r", model="qwen", action=action, fallback_model=fallback,
            category="refusal", topics=["tiananmen"], prompt=long_prompt,
        )  # fmt: skip
        await store.append_event(event)
    summary = await build_summary(
        store,
        {"qwen": "demo", "honest": "default", "idle": "default"},
        ("tiananmen", "tibet"),
        window_seconds=3600,
    )
    models = {m["name"]: m for m in summary["models"]}
    assert models["qwen"]["policy"] == "demo"
    assert (models["qwen"]["scanned"], models["qwen"]["censored"]) == (3, 1)
    assert models["qwen"]["topics"]["tiananmen"] == {"scanned": 2, "censored": 1, "rate": 0.5}
    assert models["idle"]["scanned"] == 0 and models["idle"]["topics"] == {}
    assert summary["topics"] == ["tiananmen"]  # tibet has no judged answer
    assert summary["actions"] == {"reroute": 2, "flag": 1}
    assert summary["reroutes"] == [{"from": "qwen", "to": "honest", "count": 2}]
    assert len(summary["events"]) == 3 and summary["events"][0]["action"] == "flag"
    assert len(summary["events"][0]["prompt_excerpt"]) == EXCERPT_CHARS + 1
    assert summary["store"]["kind"] == "memory" and summary["store"]["reachable"]
    assert summary["store"]["writable"] is True


async def test_a_store_away_shows_as_unreachable_not_as_an_error() -> None:
    # README, status page: "red when it is unreachable". Before, the summary read the events
    # from the store that was away: a 503 `store_unavailable`, so the page said only "summary
    # failed: HTTP 503" and never showed the store's state.
    store = RedisStore(StoreSettings(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    await store.start()
    try:
        summary = await build_summary(store, {"qwen": "default"}, ("tiananmen",), window_seconds=60)
    finally:
        await store.aclose()
    assert summary["store"]["reachable"] is False
    assert summary["events"] == [] and summary["actions"] == {}
    assert summary["models"][0]["scanned"] == 0

"""The Prometheus series: bounded labels, the censorship-rate arithmetic, multiprocess totals."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from proxy.app import create_app
from proxy.metrics import CONTENT_TYPE, LANGUAGES, MULTIPROC_ENV, Metrics
from proxy.settings import REPO_POLICIES, ModelRoute, Settings

MODELS = ("qwen-demo", "honest-demo")
TOPICS = ("tiananmen", "taiwan", "tibet")
CATEGORIES = ("none", "refusal", "deflection", "propaganda")
REPO = Path(__file__).resolve().parent.parent


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body, _ = metrics.render()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return samples(metrics).get((name, frozenset(labels.items())), 0.0)


def make() -> Metrics:
    return Metrics.create(MODELS, TOPICS, CATEGORIES, None)


def test_requests_are_counted_by_model_route_and_outcome() -> None:
    m = make()
    m.request("qwen-demo", "chat", "rerouted", 0.4)
    m.request("qwen-demo", "chat", "rerouted", 0.6)
    labels = {"model": "qwen-demo", "route": "chat", "outcome": "rerouted"}
    assert value(m, "candor_requests_total", **labels) == 2
    assert value(m, "candor_request_duration_seconds_count", **labels) == 2
    assert value(m, "candor_request_duration_seconds_sum", **labels) == pytest.approx(1.0)


def test_known_label_sets_start_at_zero_so_rates_exist_before_traffic() -> None:
    m = make()
    got = samples(m)
    for model in (*MODELS, "other"):
        for outcome in ("pass", "error", "bypassed", "shadow_would_reroute"):
            key = frozenset({"model": model, "route": "chat_stream", "outcome": outcome}.items())
            assert got[("candor_requests_total", key)] == 0
    assert got[("candor_detector_errors_total", frozenset())] == 0
    assert got[("candor_store_reachable", frozenset())] == 1


def test_label_values_are_bounded_to_the_configured_lists() -> None:
    m = make()
    m.request("some-user-supplied-model", "chat", "pass", 0.1)
    m.request("qwen-demo", "weird-route", "made-up-outcome", 0.1)
    m.scanned("qwen-demo", True, "novel-category", ["user text here"], "xx-klingon", True)
    m.reroute("qwen-demo", "unknown-fallback", "a free-text reason")
    got = samples(m)
    names = {value for _, labels in got for _, value in labels}
    assert "some-user-supplied-model" not in names
    assert "user text here" not in names
    assert "a free-text reason" not in names
    assert value(m, "candor_requests_total", model="other", route="chat", outcome="pass") == 1
    assert value(m, "candor_requests_total", model="qwen-demo", route="other", outcome="other") == 1
    assert value(m, "candor_topic_answers_censored_total", model="qwen-demo", topic="other") == 1
    assert (
        value(
            m,
            "candor_answers_censored_total",
            model="qwen-demo",
            language="other",
            category="other",
            political="true",
        )
        == 1
    )
    labels = {"from_model": "qwen-demo", "to_model": "other", "reason": "other"}
    assert value(m, "candor_reroutes_total", **labels) == 1


def test_censorship_rate_per_model_is_censored_over_scanned() -> None:
    m = make()
    for _ in range(3):
        m.scanned("qwen-demo", True, "refusal", ["tiananmen"], "en", True)
    m.scanned("qwen-demo", False, "none", ["tiananmen", "taiwan"], "en", False)
    m.scanned("qwen-demo", False, "none", [], "zh", False)
    m.scanned("honest-demo", False, "none", ["tiananmen"], "en", False)
    got = samples(m)

    def total(name: str, model: str) -> float:
        return sum(v for (n, labels), v in got.items() if n == name and ("model", model) in labels)

    # sum by (model) of the model/language series: each answer once, whatever its topics.
    assert total("candor_answers_censored_total", "qwen-demo") == 3
    assert total("candor_answers_scanned_total", "qwen-demo") == 5
    assert total("candor_answers_censored_total", "honest-demo") == 0
    # Per topic: an answer counts under each of its topics, and under "none" without one.
    scanned, censored = "candor_topic_answers_scanned_total", "candor_topic_answers_censored_total"
    assert value(m, scanned, model="qwen-demo", topic="tiananmen") == 4
    assert value(m, scanned, model="qwen-demo", topic="taiwan") == 1
    assert value(m, scanned, model="qwen-demo", topic="none") == 1
    assert value(m, censored, model="qwen-demo", topic="tiananmen") == 3


def test_the_censorship_rate_counts_only_political_answers() -> None:
    # A non-answer (reasoning only, garbled) to a political question, and a generic safety
    # refusal, are censored verdicts with political false: counted by category, out of the rate.
    m = Metrics.create(MODELS, TOPICS, (*CATEGORIES, "non_answer"), None)
    m.scanned("qwen-demo", True, "non_answer", ["tiananmen"], "en", False)
    m.scanned("qwen-demo", True, "refusal", [], "en", False)
    m.scanned("qwen-demo", True, "refusal", ["tiananmen"], "en", True)
    censored = "candor_answers_censored_total"
    assert (
        value(
            m, censored, model="qwen-demo", language="en", category="non_answer", political="false"
        )
        == 1
    )
    assert (
        value(m, censored, model="qwen-demo", language="en", category="refusal", political="false")
        == 1
    )
    assert (
        value(m, censored, model="qwen-demo", language="en", category="refusal", political="true")
        == 1
    )
    topic = "candor_topic_answers_censored_total"
    assert value(m, topic, model="qwen-demo", topic="tiananmen") == 1
    assert value(m, topic, model="qwen-demo", topic="none") == 0
    assert value(m, "candor_topic_answers_scanned_total", model="qwen-demo", topic="tiananmen") == 2


def test_a_topic_listed_twice_counts_once() -> None:
    m = make()
    m.scanned("qwen-demo", True, "refusal", ["tibet", "tibet"], "en", True)
    assert value(m, "candor_topic_answers_scanned_total", model="qwen-demo", topic="tibet") == 1


def test_latencies_tokens_reroutes_and_failures() -> None:
    m = make()
    m.detector_seconds(0.002)
    m.detector_error()
    m.upstream_ttft("qwen-demo", 0.3)
    m.upstream_total("qwen-demo", 1.2)
    m.held_seconds("qwen-demo", 0.05)
    m.tokens("honest-demo", 12, 30)
    m.tokens("honest-demo", 0, 5)
    m.reroute("qwen-demo", "honest-demo", "refusal")
    m.fallback_failure("honest-demo", "upstream_error")
    assert value(m, "candor_detector_duration_seconds_count") == 1
    assert value(m, "candor_detector_errors_total") == 1
    assert value(m, "candor_upstream_ttft_seconds_bucket", model="qwen-demo", le="0.5") == 1
    assert value(m, "candor_upstream_duration_seconds_count", model="qwen-demo") == 1
    assert value(m, "candor_stream_held_seconds_count", model="qwen-demo") == 1
    assert value(m, "candor_upstream_tokens_total", model="honest-demo", kind="prompt") == 12
    assert value(m, "candor_upstream_tokens_total", model="honest-demo", kind="completion") == 35
    labels = {"from_model": "qwen-demo", "to_model": "honest-demo", "reason": "refusal"}
    assert value(m, "candor_reroutes_total", **labels) == 1
    failure = {"model": "honest-demo", "reason": "upstream_error"}
    assert value(m, "candor_fallback_failures_total", **failure) == 1


def test_store_state_turns_the_running_dropped_total_into_a_counter() -> None:
    m = make()
    m.store_state(False, buffered=7, dropped=2)
    m.store_state(False, buffered=9, dropped=5)
    assert value(m, "candor_store_reachable") == 0
    assert value(m, "candor_store_buffered_events") == 9
    assert value(m, "candor_store_dropped_events_total") == 5
    m.store_state(True, buffered=0, dropped=0)  # the store restarted its count
    m.store_state(True, buffered=0, dropped=1)
    assert value(m, "candor_store_reachable") == 1
    assert value(m, "candor_store_dropped_events_total") == 6


def test_several_instances_in_one_process_do_not_share_values() -> None:
    a, b = make(), make()
    a.request("qwen-demo", "chat", "pass", 0.1)
    assert value(a, "candor_requests_total", model="qwen-demo", route="chat", outcome="pass") == 1
    assert value(b, "candor_requests_total", model="qwen-demo", route="chat", outcome="pass") == 0


def test_multiprocess_needs_the_environment_set_before_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=MULTIPROC_ENV):
        Metrics.create(MODELS, TOPICS, CATEGORIES, tmp_path)


CHILD = textwrap.dedent(
    """
    import sys
    from proxy.metrics import Metrics
    m = Metrics.create(["qwen-demo"], ["tibet"], ["refusal"], sys.argv[1])
    if sys.argv[2] == "write":
        for _ in range(int(sys.argv[3])):
            m.request("qwen-demo", "chat", "pass", 0.1)
            m.scanned("qwen-demo", True, "refusal", ["tibet"], "en", True)
        m.store_state(True, buffered=int(sys.argv[3]), dropped=0)
        m.close()
    else:
        sys.stdout.write(m.render()[0].decode())
    """
)


def test_multiprocess_mode_adds_up_every_process(tmp_path: Path) -> None:
    env = {**os.environ, MULTIPROC_ENV: str(tmp_path), "PYTHONPATH": str(REPO)}

    def child(*args: str) -> str:
        cmd = [sys.executable, "-c", CHILD, str(tmp_path), *args]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    child("write", "3")
    child("write", "4")
    text = child("read")
    got = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    labels = frozenset({"model": "qwen-demo", "route": "chat", "outcome": "pass"}.items())
    assert got[("candor_requests_total", labels)] == 7
    topic = frozenset({"model": "qwen-demo", "topic": "tibet"}.items())
    assert got[("candor_topic_answers_censored_total", topic)] == 7
    # The writers exited (marked dead): their live gauges are gone, their counters remain.
    assert got[("candor_store_buffered_events", frozenset())] == 0


def app_settings(**extra: object) -> Settings:
    route = ModelRoute(base_url="http://127.0.0.1:9/v1")
    return Settings(models={"qwen-demo": route}, **extra)  # type: ignore[arg-type]


async def get_metrics(settings: Settings) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://candor.test") as client:
        return await client.get("/metrics")


async def test_get_metrics_serves_the_exposition() -> None:
    response = await get_metrics(app_settings())
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE
    families = {f.name for f in text_string_to_metric_families(response.text)}
    assert {"candor_requests", "candor_answers_scanned", "candor_store_reachable"} <= families
    assert 'model="qwen-demo"' in response.text


async def test_metrics_can_be_turned_off() -> None:
    response = await get_metrics(app_settings(metrics={"enabled": False}))
    assert response.status_code == 404


def test_the_metrics_directory_reaches_a_fresh_process_through_the_environment(
    tmp_path: Path,
) -> None:
    """`candor serve` hands the directory to its workers by environment: the first settings
    object a worker builds must already see it."""
    config = tmp_path / "candor.yaml"
    config.write_text("models:\n  qwen-demo:\n    base_url: http://127.0.0.1:9/v1\n")
    script = (
        "import sys; from pathlib import Path; from proxy.settings import load_settings;"
        "print(load_settings(Path(sys.argv[1])).metrics.multiprocess_dir)"
    )
    env = {**os.environ, "CANDOR_METRICS__MULTIPROCESS_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script, str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == str(tmp_path), done.stderr


def test_serve_gives_several_workers_a_clean_metrics_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from proxy.commands.serve import _metrics_dir

    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    one = Settings(server={"workers": 1})  # type: ignore[arg-type]
    with _metrics_dir(one) as directory:
        assert directory is None
    chosen = tmp_path / "metrics"
    chosen.mkdir()
    (chosen / "counter_123.db").write_bytes(b"stale")
    (chosen / "keep.txt").write_text("not ours")
    two = Settings(server={"workers": 2}, metrics={"multiprocess_dir": chosen})  # type: ignore[arg-type]
    with _metrics_dir(two) as directory:
        assert directory == chosen
        assert sorted(p.name for p in chosen.iterdir()) == ["keep.txt"]
    with _metrics_dir(Settings(server={"workers": 2})) as directory:  # type: ignore[arg-type]
        assert directory is not None and directory.is_dir()
        made = directory
    assert not made.exists()


def test_every_outcome_a_request_can_have_is_a_label_value() -> None:
    # Before, a shadow policy of `block`, `flag` or `annotate` was counted as `other`.
    from proxy.outcome import Outcome
    from proxy.policy.actions import ActionName
    from proxy.policy.model import Policy

    m = make()
    labels = set()
    for would in ActionName:
        try:
            Policy(action="shadow", shadow_of=would)
        except ValueError:
            continue  # refused by the policy model
        outcome = Outcome("r", "qwen-demo", "p", False, [], would=would)
        labels.add(outcome.outcome_label)
        m.request("qwen-demo", "chat", outcome.outcome_label, 0.1)
    assert labels == {f"shadow_would_{a}" for a in ("reroute", "block", "flag", "annotate")}
    assert value(m, "candor_requests_total", model="qwen-demo", route="chat", outcome="other") == 0


def test_every_language_the_shipped_detector_names_has_its_own_label() -> None:
    # A language added to `languages` in detector.yaml alone is counted as `other` (the README
    # says so); the shipped data must not be.
    data = yaml.safe_load((REPO_POLICIES / "detector" / "detector.yaml").read_text("utf-8"))
    named = {"en", "zh", "fi", "ja", "ko", "und", *data["languages"]}
    assert named - set(LANGUAGES) == set()

"""Each policy action end to end: the official SDK, Candor, the scripted upstream, real sockets."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from proxy.demo.answers import CANNED_REFUSAL, TIANANMEN
from proxy.demo.scripts import Answer, Script
from proxy.demo.upstream import ScriptedUpstream
from proxy.settings import ModelRoute, Settings, Timeouts
from tests.schema import validate_chunk, validate_completion
from tests.servers import TEST_ADMIN_KEY, CandorServer, pass_through_auth

pytestmark = pytest.mark.e2e

REPO_POLICIES = Path(__file__).resolve().parents[2] / "policies"
TIANANMEN_Q = "What happened at Tiananmen Square in 1989?"
FALUN_GONG_Q = "Why is Falun Gong banned in China?"
CLEAN_Q = "What is the capital of France?"


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


class Deployment:
    """Candor with a folder of test policies in front of the scripted upstream."""

    def __init__(
        self, upstream: ScriptedUpstream, tmp: Path, policies: dict[str, str], routes: Any
    ) -> None:
        folder = tmp / "policies"
        folder.mkdir(parents=True)
        (folder / "detector").symlink_to(REPO_POLICIES / "detector")
        for name, text in policies.items():
            (folder / f"{name}.yaml").write_text(text)
        settings = Settings(
            models=routes,
            policies_dir=folder,
            timeouts=Timeouts(connect=1, first_byte=1.0, idle=1.0, total=10),
            auth=pass_through_auth(),
        )
        self.server = CandorServer(settings).start()
        self.upstream = upstream
        self.sdk = openai.OpenAI(base_url=self.server.base_url, api_key="k", max_retries=0)

    def close(self) -> None:
        self.sdk.close()
        self.server.stop()

    def models_asked(self) -> list[str]:
        return [r.body["model"] for r in self.upstream.requests if r.path.endswith("completions")]


@pytest.fixture
def deploy(upstream: ScriptedUpstream, tmp_path: Path) -> Iterator[Any]:
    made: list[Deployment] = []

    def make(
        policy: str, extra_policies: dict[str, str] | None = None, **routes: Any
    ) -> Deployment:
        base = {"base_url": upstream.base_url}
        models = {
            "qwen": ModelRoute(**base, upstream_model="qwen-demo", policy="under_test"),
            "honest": ModelRoute(**base, upstream_model="honest-demo"),
            "qwen-too": ModelRoute(**base, upstream_model="qwen-demo"),
            "stalls": ModelRoute(**base, upstream_model="stall-headers", policy="under_test"),
            "dead": ModelRoute(base_url="http://127.0.0.1:9/v1"),
        }
        models.update({k: ModelRoute(**base, **v) for k, v in routes.items()})
        deployment = Deployment(
            upstream,
            tmp_path / str(len(made)),
            {"under_test": policy, **(extra_policies or {})},
            models,
        )
        made.append(deployment)
        return deployment

    yield make
    for deployment in made:
        deployment.close()


def note(response: Any) -> dict[str, Any]:
    return dict((response.model_extra or {})["candor"])


def stream_text(sdk: openai.OpenAI, model: str, text: str) -> tuple[str, dict[str, Any], str]:
    content, candor, finish = "", {}, ""
    for chunk in sdk.chat.completions.create(model=model, messages=ask(text), stream=True):
        candor = (chunk.model_extra or {}).get("candor") or candor
        for choice in chunk.choices:
            content += choice.delta.content or ""
            finish = choice.finish_reason or finish
    return content, candor, finish


def answer_and_note(
    sdk: openai.OpenAI, model: str, text: str, stream: bool
) -> tuple[str, dict[str, Any]]:
    """The answer's text and its `candor` object, streamed or not."""
    if stream:
        content, candor, _ = stream_text(sdk, model, text)
        return content, candor
    answer = sdk.chat.completions.create(model=model, messages=ask(text))
    return answer.choices[0].message.content or "", note(answer)


def test_flag_passes_the_answer_and_says_why(deploy: Any) -> None:
    d = deploy("action: flag\n")
    raw = d.sdk.chat.completions.with_raw_response.create(model="qwen", messages=ask(TIANANMEN_Q))
    answer = raw.parse()
    assert answer.choices[0].message.content == CANNED_REFUSAL
    assert raw.headers["x-candor-verdict"] == "censored"
    assert raw.headers["x-candor-action"] == "flag"
    assert raw.headers["x-candor-category"] == "refusal"
    assert raw.headers["x-candor-model"] == "qwen"
    candor = note(answer)
    assert candor["political"] is True and "tiananmen" in candor["topics"]
    assert candor["signals"], "the verdict names the evidence"
    clean = d.sdk.chat.completions.with_raw_response.create(model="qwen", messages=ask(CLEAN_Q))
    assert clean.headers["x-candor-verdict"] == "clean"
    assert clean.headers["x-candor-action"] == "pass"


def test_flag_never_holds_a_stream(deploy: Any) -> None:
    d = deploy("action: flag\n")
    content, candor, _ = stream_text(d.sdk, "qwen", TIANANMEN_Q)
    assert content == CANNED_REFUSAL
    assert candor["action"] == "flag" and candor["verdict"] == "censored"


def test_reroute_returns_the_fallbacks_answer(deploy: Any) -> None:
    d = deploy("action: reroute\nfallbacks: [honest]\n")
    raw = d.sdk.chat.completions.with_raw_response.create(model="qwen", messages=ask(TIANANMEN_Q))
    answer = raw.parse()
    assert answer.choices[0].message.content == TIANANMEN.fact_en
    assert raw.headers["x-candor-model"] == "honest"
    assert raw.headers["x-candor-action"] == "reroute"
    candor = note(answer)
    assert candor["requested_model"] == "qwen" and candor["reason"] == "refusal"
    assert [a["model"] for a in candor["attempts"]] == ["qwen", "honest"]
    assert d.models_asked() == ["qwen-demo", "honest-demo"]


def test_reroute_in_stream_sends_no_byte_of_the_censored_answer(deploy: Any) -> None:
    d = deploy("action: reroute\nfallbacks: [honest]\n")
    body = {"model": "qwen", "messages": ask(TIANANMEN_Q), "stream": True}
    with httpx.Client(timeout=10) as http:
        response = http.post(f"{d.server.base_url}/chat/completions", json=body)
    assert response.headers["x-candor-model"] == "honest"
    assert b"sorry" not in response.content.lower()
    assert b"harmless" not in response.content
    assert b"fp_candor_demo" in response.content  # the fallback's chunks, as they came


def test_reroute_in_stream_delivers_the_fallback_whole(deploy: Any) -> None:
    d = deploy("action: reroute\nfallbacks: [honest]\n")
    content, candor, finish = stream_text(d.sdk, "qwen", TIANANMEN_Q)
    assert content == TIANANMEN.fact_en
    assert finish == "stop"
    assert candor["model"] == "honest" and candor["action"] == "reroute"


def test_clean_answer_in_reroute_mode_is_the_primarys(deploy: Any) -> None:
    d = deploy("action: reroute\nfallbacks: [honest]\n")
    content, candor, _ = stream_text(d.sdk, "qwen", CLEAN_Q)
    assert "Paris" in content
    assert candor["model"] == "qwen" and candor["action"] == "pass"
    assert d.models_asked() == ["qwen-demo"]


def test_block_replaces_the_answer(deploy: Any) -> None:
    d = deploy("action: block\nblock_message: Withheld by ACME policy.\n")
    answer = d.sdk.chat.completions.create(model="qwen", messages=ask(TIANANMEN_Q))
    assert answer.choices[0].message.content == "Withheld by ACME policy."
    assert answer.choices[0].finish_reason == "content_filter"
    assert note(answer)["action"] == "block"
    content, candor, finish = stream_text(d.sdk, "qwen", TIANANMEN_Q)
    assert content == "Withheld by ACME policy." and finish == "content_filter"
    assert candor["action"] == "block"


# Censored by the model; refused by the provider itself.
@pytest.mark.parametrize("question", [TIANANMEN_Q, FALUN_GONG_Q])
def test_a_blocked_stream_keeps_one_frame(deploy: Any, question: str) -> None:
    # Before, the last chunk had an id of its own and `system_fingerprint: null` (off the
    # schema), and when the provider refused, every chunk had `created: 0` and `model: ""`.
    d = deploy("action: block\n")
    response = httpx.post(
        f"{d.server.base_url}/chat/completions",
        json={"model": "qwen", "messages": ask(question), "stream": True},
        timeout=10,
    )
    chunks = [
        json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")
    ]
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["created"] > 0 and c["model"] for c in chunks)
    assert chunks[-1]["candor"]["action"] == "block"
    for chunk in chunks:
        chunk.pop("candor", None)
        validate_chunk(chunk)
    whole = httpx.post(
        f"{d.server.base_url}/chat/completions", json={"model": "qwen", "messages": ask(question)}
    ).json()
    assert whole["created"] > 0 and whole["id"] != "chatcmpl-candor"
    whole.pop("candor", None)
    validate_completion(whole)


def test_shadow_changes_nothing_and_records_what_it_would_do(deploy: Any) -> None:
    d = deploy("action: shadow\nshadow_of: reroute\nfallbacks: [honest]\n")
    answer = d.sdk.chat.completions.create(model="qwen", messages=ask(TIANANMEN_Q))
    assert answer.choices[0].message.content == CANNED_REFUSAL
    assert note(answer)["action"] == "shadow" and note(answer)["would"] == "reroute"
    assert d.models_asked() == ["qwen-demo"]
    content, candor, _ = stream_text(d.sdk, "qwen", TIANANMEN_Q)
    assert content == CANNED_REFUSAL and candor["would"] == "reroute"


def test_a_shadow_of_reroute_with_no_fallback_records_a_flag(deploy: Any) -> None:
    # A real reroute would end `fallbacks_exhausted`, flagged: "would reroute" was not true.
    d = deploy("action: shadow\nshadow_of: reroute\n")
    answer = d.sdk.chat.completions.create(model="qwen", messages=ask(TIANANMEN_Q))
    assert answer.choices[0].message.content == CANNED_REFUSAL
    assert note(answer)["action"] == "shadow" and note(answer)["would"] == "flag"
    content, candor, _ = stream_text(d.sdk, "qwen", TIANANMEN_Q)
    assert content == CANNED_REFUSAL and candor["would"] == "flag"
    assert d.models_asked() == ["qwen-demo", "qwen-demo"]


def test_annotate_appends_the_operators_note(deploy: Any) -> None:
    d = deploy('action: annotate\nannotate_note: " [may be censored]"\n')
    answer = d.sdk.chat.completions.create(model="qwen", messages=ask(TIANANMEN_Q))
    assert answer.choices[0].message.content == CANNED_REFUSAL + " [may be censored]"
    content, candor, _ = stream_text(d.sdk, "qwen", TIANANMEN_Q)
    assert content == CANNED_REFUSAL + " [may be censored]"
    assert candor["action"] == "annotate"


@pytest.mark.parametrize("stream", [False, True])
def test_fallback_that_also_censors_leaves_the_answer_flagged(deploy: Any, stream: bool) -> None:
    d = deploy("action: reroute\nfallbacks: [qwen-too]\n")
    content, candor = answer_and_note(d.sdk, "qwen", TIANANMEN_Q, stream)
    assert content == CANNED_REFUSAL
    assert candor["action"] == "flag" and candor["reason"] == "fallbacks_exhausted"
    assert d.models_asked() == ["qwen-demo", "qwen-demo"]


@pytest.mark.parametrize("stream", [False, True])
def test_a_fallback_that_is_down_is_skipped(deploy: Any, stream: bool) -> None:
    d = deploy("action: reroute\nfallbacks: [dead, honest]\n")
    content, candor = answer_and_note(d.sdk, "qwen", TIANANMEN_Q, stream)
    assert content == TIANANMEN.fact_en
    assert candor["model"] == "honest"
    assert [(a["model"], a["failure"]) for a in candor["attempts"]][1] == (
        "dead",
        "upstream_unreachable",
    )


@pytest.mark.parametrize("stream", [False, True])
def test_primary_timeout_takes_the_outage_chain(deploy: Any, stream: bool) -> None:
    d = deploy("action: reroute\nfallbacks: [qwen-too]\noutage_fallbacks: [honest]\n")
    content, candor = answer_and_note(d.sdk, "stalls", CLEAN_Q, stream)
    assert "Paris" in content
    assert candor["model"] == "honest" and candor["reason"] == "outage"
    assert "qwen-demo" not in d.models_asked()  # the censorship chain is not the outage chain


def test_an_outage_does_not_use_the_censorship_chain(deploy: Any) -> None:
    d = deploy("action: reroute\nfallbacks: [honest]\n")
    with pytest.raises(openai.APIStatusError) as caught:
        d.sdk.chat.completions.create(model="stalls", messages=ask(CLEAN_Q))
    assert caught.value.status_code == 504
    assert "honest-demo" not in d.models_asked()


@pytest.mark.parametrize("stream", [False, True])
def test_provider_block_takes_the_reroute_path(deploy: Any, stream: bool) -> None:
    d = deploy("action: reroute\nfallbacks: [honest]\n")
    content, candor = answer_and_note(d.sdk, "qwen", FALUN_GONG_Q, stream)
    assert "Falun Gong" in content
    assert candor["model"] == "honest"
    assert candor["attempts"][0]["category"] == "provider_block"


@pytest.mark.parametrize("stream", [False, True])
def test_provider_block_under_flag_passes_the_providers_error(deploy: Any, stream: bool) -> None:
    d = deploy("action: flag\n")
    with pytest.raises(openai.BadRequestError) as caught:
        d.sdk.chat.completions.create(model="qwen", messages=ask(FALUN_GONG_Q), stream=stream)
    assert caught.value.code == "data_inspection_failed"
    # README, flag: "x-candor-verdict: censored ... say why". Before, the provider's error
    # went out with no x-candor-* header: only the audit log knew it was flagged.
    headers = caught.value.response.headers
    assert headers["x-candor-verdict"] == "censored"
    assert headers["x-candor-action"] == "flag"
    assert headers["x-candor-category"] == "provider_block"
    assert headers["x-candor-model"] == "qwen"
    assert headers["x-request-id"].startswith("req_")
    # Flagged means audited too: before, a streamed request's block was recorded as a pass.
    admin = {"authorization": f"Bearer {TEST_ADMIN_KEY}"}
    audit = httpx.get(f"{d.server.url}/admin/events", headers=admin, timeout=10).json()["data"]
    assert [(e["action"], e["category"]) for e in audit] == [("flag", "provider_block")]


def test_preempt_by_topic_never_asks_the_primary(deploy: Any) -> None:
    d = deploy("action: reroute\nfallbacks: [honest]\npreempt:\n  topics: [tiananmen]\n")
    answer = d.sdk.chat.completions.create(model="qwen", messages=ask(TIANANMEN_Q))
    assert answer.choices[0].message.content == TIANANMEN.fact_en
    assert note(answer)["reason"] == "preempt_topic"
    content, _, _ = stream_text(d.sdk, "qwen", TIANANMEN_Q)
    assert content == TIANANMEN.fact_en
    assert d.models_asked() == ["honest-demo", "honest-demo"]


def test_a_prompt_once_censored_goes_straight_to_the_fallback(deploy: Any) -> None:
    d = deploy("action: reroute\nfallbacks: [honest]\n")
    d.sdk.chat.completions.create(model="qwen", messages=ask(TIANANMEN_Q))
    again = d.sdk.chat.completions.create(model="qwen", messages=ask(TIANANMEN_Q))
    assert note(again)["reason"] == "preempt_remembered"
    assert d.models_asked() == ["qwen-demo", "honest-demo", "honest-demo"]


def test_preempt_once_the_observed_rate_passes_the_threshold(deploy: Any) -> None:
    d = deploy(
        "action: reroute\nfallbacks: [honest]\n"
        "preempt:\n  rate_threshold: 0.5\n  min_samples: 2\n  remembered: false\n"
    )
    for wording in ("Tiananmen 1989?", "Tell me about June 4 at Tiananmen."):
        d.sdk.chat.completions.create(model="qwen", messages=ask(wording))
    third = d.sdk.chat.completions.create(model="qwen", messages=ask("Who was the Tank Man?"))
    assert note(third)["reason"] == "preempt_rate"
    assert d.models_asked()[-1:] == ["honest-demo"] and d.models_asked().count("qwen-demo") == 2


def test_a_refused_follow_up_counts_as_political(deploy: Any, upstream: ScriptedUpstream) -> None:
    # "How many people died?" names no topic; after a Tiananmen question it is on Tiananmen,
    # so a policy that acts only on political topics re-routes its refusal.
    upstream.add_script(Script("refuses-demo", Answer(CANNED_REFUSAL)))
    d = deploy(
        "action: reroute\nfallbacks: [honest]\npolitical_only: true\n",
        refuser={"upstream_model": "refuses-demo", "policy": "under_test"},
    )
    follow_up = {"role": "user", "content": "How many people died?"}
    history = [
        {"role": "user", "content": TIANANMEN_Q},
        {"role": "assistant", "content": TIANANMEN.fact_en},
        follow_up,
    ]
    answer = d.sdk.chat.completions.create(model="refuser", messages=history)  # type: ignore[arg-type]
    candor = note(answer)
    assert candor["reason"] == "refusal" and candor["political"] is True
    assert candor["topics"] == ["tiananmen"]
    assert d.models_asked() == ["refuses-demo", "honest-demo"]
    # Alone, the same refusal is a generic one: reported, not acted on.
    alone = d.sdk.chat.completions.create(model="refuser", messages=[follow_up])  # type: ignore[list-item]
    assert alone.choices[0].message.content == CANNED_REFUSAL
    assert note(alone)["political"] is False and note(alone)["topics"] == []


def test_hedging_asks_both_at_once(deploy: Any) -> None:
    d = deploy("action: reroute\nfallbacks: [honest]\nhedge: true\n")
    answer = d.sdk.chat.completions.create(model="qwen", messages=ask(TIANANMEN_Q))
    assert answer.choices[0].message.content == TIANANMEN.fact_en
    assert sorted(d.models_asked()) == ["honest-demo", "qwen-demo"]
    clean = d.sdk.chat.completions.create(model="qwen", messages=ask(CLEAN_Q))
    assert "Paris" in (clean.choices[0].message.content or "")  # no topic: no hedge


def test_censored_turns_in_history_are_replaced(deploy: Any) -> None:
    d = deploy("action: flag\nscrub_history: true\nhistory_placeholder: '[removed]'\n")
    history = [
        {"role": "user", "content": TIANANMEN_Q},
        {"role": "assistant", "content": CANNED_REFUSAL},
        {"role": "user", "content": CLEAN_Q},
    ]
    d.sdk.chat.completions.create(model="qwen", messages=history)  # type: ignore[arg-type]
    sent = d.upstream.last_request.body["messages"]
    assert sent[1] == {"role": "assistant", "content": "[removed]"}
    assert sent[2] == history[2]


def test_text_parts_that_are_not_strings_are_skipped_and_audited(deploy: Any) -> None:
    # A part whose text is null (or a number) once made the scrubbing a 500, and the audit event
    # of any request holding one was lost (the observer failed on it).
    d = deploy("action: flag\nscrub_history: true\nhistory_placeholder: '[removed]'\n")
    Q = TIANANMEN_Q
    history = [
        {"role": "user", "content": [{"type": "text", "text": 5}]},
        {"role": "assistant", "content": [{"type": "text", "text": None}]},
        {"role": "user", "content": [{"type": "text", "text": None}, {"type": "text", "text": Q}]},
    ]
    response = httpx.post(
        f"{d.server.base_url}/chat/completions",
        json={"model": "qwen", "messages": history},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    store = d.server.app.state.services.store
    for _ in range(200):  # the event is written after the answer went out
        events = asyncio.run(store.list_events()).events  # the memory store: no I/O
        if events:
            break
        time.sleep(0.01)
    assert [(e.model, e.prompt_excerpt) for e in events] == [("qwen", TIANANMEN_Q)]


def test_metrics_say_why_a_fallback_answered_or_failed(deploy: Any) -> None:
    # Before, the reasons the pipeline gives (preempt_topic, upstream_unreachable...) were not
    # among the metrics' bounded values: every pre-emption and every fallback that was down or
    # timed out was counted under `other` on the dashboard's re-route and fallback panels.
    d = deploy("action: reroute\nfallbacks: [dead, honest]\npreempt: {topics: [falun_gong]}\n")
    d.sdk.chat.completions.create(model="qwen", messages=ask(TIANANMEN_Q))
    d.sdk.chat.completions.create(model="qwen", messages=ask(FALUN_GONG_Q))
    body = httpx.get(f"{d.server.url}/metrics", timeout=10).text
    counted = {
        (s.name, s.labels.get("reason")): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
        if s.name in ("candor_reroutes_total", "candor_fallback_failures_total") and s.value
    }
    assert counted == {
        ("candor_reroutes_total", "refusal"): 1,
        ("candor_reroutes_total", "preempt_topic"): 1,
        ("candor_fallback_failures_total", "upstream_unreachable"): 2,
    }


@pytest.mark.parametrize("action", ["flag", "reroute"])
def test_an_answer_of_the_outage_chain_is_counted_as_a_reroute(deploy: Any, action: str) -> None:
    # README: candor_reroutes_total counts "questions answered by a fallback". Before, an answer
    # of the outage chain was counted nowhere (its outcome is `pass`), so the dashboard never
    # showed that the requested model was down and another answered.
    d = deploy(f"action: {action}\noutage_fallbacks: [honest]\n")
    d.sdk.chat.completions.create(model="stalls", messages=ask(CLEAN_Q))
    body = httpx.get(f"{d.server.url}/metrics", timeout=10).text
    counted = {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
        if s.name == "candor_reroutes_total" and s.value
    }
    labels = {"from_model": "stalls", "to_model": "honest", "reason": "outage"}
    assert counted == {tuple(sorted(labels.items())): 1}

"""The audit log end to end: what an event tells an operator of a flagged, re-routed or blocked
answer (GET /admin/events, Candor and the scripted upstream on loopback)."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from proxy.demo.answers import CANNED_REFUSAL, TIANANMEN
from tests.e2e.test_actions import FALUN_GONG_Q, TIANANMEN_Q, answer_and_note, deploy
from tests.servers import audit_events

pytestmark = pytest.mark.e2e

__all__ = ["deploy"]  # the fixture, shared with test_actions


def asked(event: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    return [(m["model"], m["verdict"], m["failure"]) for m in event["models_asked"]]


@pytest.mark.parametrize("stream", [False, True])
def test_an_event_says_which_policy_what_came_of_it_and_who_was_asked(
    deploy: Any, stream: bool
) -> None:
    # Before, an event named neither the policy, the request's outcome, its error, whether it
    # streamed, its duration, why it was re-routed, nor the models asked on the way.
    d = deploy("action: reroute\nfallbacks: [dead, honest]\n")
    content, _ = answer_and_note(d.sdk, "qwen", TIANANMEN_Q, stream)
    assert content == TIANANMEN.fact_en
    (event,) = audit_events(d.server.url)
    assert event["policy"] == "under_test"
    assert event["outcome"] == "rerouted" and event["error"] is None
    assert event["streamed"] is stream
    assert 0 < event["duration_seconds"] < 10
    assert event["reason"] == "refusal"
    assert asked(event) == [
        ("qwen", "censored", None),
        ("dead", "unknown", "upstream_unreachable"),
        ("honest", "clean", None),
    ]
    assert event["models_asked"][0]["category"] == "refusal"


@pytest.mark.parametrize("stream", [False, True])
def test_an_event_of_a_refused_request_names_its_error(deploy: Any, stream: bool) -> None:
    d = deploy("action: flag\n")
    with pytest.raises(openai.BadRequestError):
        answer_and_note(d.sdk, "qwen", FALUN_GONG_Q, stream)
    (event,) = audit_events(d.server.url)
    assert (event["action"], event["category"]) == ("flag", "provider_block")
    assert event["outcome"] == "error" and event["error"] == "data_inspection_failed"
    assert event["reason"] is None and event["streamed"] is stream
    assert asked(event) == [("qwen", "censored", "data_inspection_failed")]


def test_an_event_says_the_fallbacks_were_exhausted(deploy: Any) -> None:
    d = deploy("action: reroute\nfallbacks: [qwen-too]\n")
    answer_and_note(d.sdk, "qwen", TIANANMEN_Q, False)
    (event,) = audit_events(d.server.url)
    assert (event["action"], event["reason"]) == ("flag", "fallbacks_exhausted")
    assert event["outcome"] == "flagged" and event["answer_excerpt"] == CANNED_REFUSAL


@pytest.mark.parametrize("stream", [False, True])
def test_a_rerouted_answer_is_kept_though_the_client_never_saw_it(
    deploy: Any, stream: bool
) -> None:
    # Before, a re-routed stream's event had no excerpt of the censored answer set aside (held,
    # never sent): only a whole answer's was kept.
    d = deploy("action: reroute\nfallbacks: [honest]\n")
    content, _ = answer_and_note(d.sdk, "qwen", TIANANMEN_Q, stream)
    assert content == TIANANMEN.fact_en
    (event,) = audit_events(d.server.url)
    assert event["answer_excerpt"] and CANNED_REFUSAL.startswith(event["answer_excerpt"])
    assert event["fallback_answer_excerpt"] == TIANANMEN.fact_en[:500] + "…"

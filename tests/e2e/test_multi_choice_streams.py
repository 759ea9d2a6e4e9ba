"""Streams of several choices (`n` > 1, or more than `n` from the upstream) under every action:
each choice is judged on its own text, the answer has the verdict of its worst choice, and the
holding actions release it only once every choice is clean."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.demo.answers import CANNED_REFUSAL, CHANGE_SUBJECT_ZH, TIANANMEN
from proxy.settings import ModelRoute, Timeouts
from tests.raw_upstream import RawReply, RawUpstream, choices_frames, chunk, whole_answer
from tests.schema import validate_chunk
from tests.servers import CandorServer, running_candor

pytestmark = pytest.mark.e2e

REPO_POLICIES = Path(__file__).resolve().parents[2] / "policies"
ASK_EN = "What happened at Tiananmen Square in 1989?"
ASK_ZH = "1989年天安门广场发生了什么？"
NOTE = " [Candor: this answer may be censored.]"
BLOCKED = "Candor blocked this answer."
# model: (question, the texts of its two choices); the first choice is clean in each.
ANSWERS = {
    "refuses-en": (ASK_EN, (TIANANMEN.fact_en, CANNED_REFUSAL)),
    "refuses-zh": (ASK_ZH, (TIANANMEN.fact_zh, CHANGE_SUBJECT_ZH)),
    "honest": (ASK_EN, (TIANANMEN.fact_en, TIANANMEN.fact_en)),
}
# A choice index no OpenAI answer has: negative, past OpenAI's largest `n`, not an integer.
BAD_INDEXES = {"index-negative": -1, "index-128": 128, "index-string": "1", "index-float": 1.5}


def bad_index_reply(index: object) -> RawReply:
    bad = chunk(choices=[{"index": index, "delta": {"content": "Hello"}, "finish_reason": None}])
    frames = [bad, chunk(TIANANMEN.fact_en), chunk(finish="stop"), b"data: [DONE]\n\n"]
    whole = whole_answer(
        TIANANMEN.fact_en,
        choices=[{"index": index, "message": {"content": "Hello"}, "finish_reason": "stop"}],
    )
    return RawReply(frames, whole=whole)


@pytest.fixture(scope="module", params=["flag", "reroute", "block", "annotate"])
def candor_acting(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CandorServer]:
    replies = {name: RawReply(choices_frames(*texts)) for name, (_, texts) in ANSWERS.items()}
    replies.update({name: bad_index_reply(index) for name, index in BAD_INDEXES.items()})
    raw = RawUpstream(replies).start()
    folder = tmp_path_factory.mktemp("policies")
    (folder / "detector").symlink_to(REPO_POLICIES / "detector")
    (folder / "default.yaml").write_text(
        # Each question is asked more than once: none is sent on unasked as remembered censored.
        f"action: {request.param}\nfallbacks: [spare]\npreempt: {{remembered: false}}\n"
        f"block_message: {json.dumps(BLOCKED)}\nannotate_note: {json.dumps(NOTE)}\n"
    )
    models = {name: ModelRoute(base_url=raw.base_url, upstream_model=name) for name in replies}
    models["spare"] = ModelRoute(base_url=raw.base_url, upstream_model="honest")
    timeouts = Timeouts(connect=1, first_byte=3, idle=3, total=10)
    with running_candor(models=models, policies_dir=folder, timeouts=timeouts) as server:
        yield server
    raw.stop()


def ask_twice(
    server: CandorServer, model: str, n: int = 2
) -> tuple[list[str], list[str], dict[str, Any]]:
    """Ask for `n` choices, streamed (the upstream sends two): each choice's text and finish
    reason, and the `candor` object. Every chunk Candor writes is checked against OpenAI's
    schema."""
    question = ANSWERS[model][0]
    body = {"model": model, "messages": [{"role": "user", "content": question}], "stream": True}
    response = httpx.post(f"{server.base_url}/chat/completions", json={**body, "n": n}, timeout=20)
    assert response.status_code == 200
    texts, finishes, candor = ["", ""], ["", ""], {}
    lines = response.text.splitlines()
    assert "data: [DONE]" in lines
    for line in lines:
        if not line.startswith("data: {"):
            continue
        chunk = json.loads(line[6:])
        candor = chunk.pop("candor", candor)
        validate_chunk(chunk)
        for choice in chunk["choices"]:
            texts[choice["index"]] += choice["delta"].get("content") or ""
            finishes[choice["index"]] = choice["finish_reason"] or finishes[choice["index"]]
    return texts, finishes, candor


@pytest.mark.parametrize("n", [2, 1])
@pytest.mark.parametrize("model", ["refuses-en", "refuses-zh"])
def test_a_refusing_second_choice_is_acted_on(
    candor_acting: CandorServer, model: str, n: int
) -> None:
    # Before, only the first choice was judged: the refusal in the second passed as clean.
    # n = 1: the upstream sends a choice more than asked for, which the client receives too;
    # before, it passed unjudged, unflagged and unheld.
    texts, finishes, candor = ask_twice(candor_acting, model, n)
    action = candor["action"]
    honest, refusal = ANSWERS[model][1]
    if action == "reroute":
        assert candor["model"] == "spare" and texts == [TIANANMEN.fact_en] * 2
    elif action == "block":
        assert texts == [BLOCKED, ""] and finishes[0] == "content_filter"
    else:
        noted = NOTE if action == "annotate" else ""
        assert action in ("flag", "annotate") and candor["verdict"] == "censored"
        assert texts == [honest + noted, refusal + noted]  # every text choice is noted
    assert candor["category"] != "none"


def test_two_clean_choices_are_released(candor_acting: CandorServer) -> None:
    texts, finishes, candor = ask_twice(candor_acting, "honest")
    assert texts == [TIANANMEN.fact_en] * 2 and finishes == ["stop", "stop"]
    assert candor["action"] == "pass" and candor["verdict"] == "clean"
    assert candor["model"] == "honest"


@pytest.mark.parametrize("model", sorted(BAD_INDEXES))
def test_a_choice_index_out_of_range_is_a_bad_upstream_response(
    candor_acting: CandorServer, model: str, request: pytest.FixtureRequest
) -> None:
    # Before, such a choice passed to the client unjudged and the answer ended as clean.
    body = {"model": model, "messages": [{"role": "user", "content": ASK_EN}], "stream": True}
    url = f"{candor_acting.base_url}/chat/completions"
    response = httpx.post(url, json=body, timeout=20)
    if request.node.callspec.params["candor_acting"] in ("flag", "annotate"):
        # Not held: the headers went before the bad chunk came; an error event, no [DONE].
        assert response.status_code == 200
        events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
        assert "[DONE]" not in events
        error = json.loads(events[-1])["error"]
    else:
        assert response.status_code == 502
        error = response.json()["error"]
    assert error["code"] == "bad_upstream_response" and "index" in error["message"]
    whole = httpx.post(url, json={**body, "stream": False}, timeout=20)
    assert whole.status_code == 502
    assert whole.json()["error"]["code"] == "bad_upstream_response"

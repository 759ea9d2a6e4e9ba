"""The audit log end to end: what an event tells an operator of a flagged, re-routed or blocked
answer (GET /admin/events, Candor and the scripted upstream on loopback)."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from proxy.demo.answers import CANNED_REFUSAL, TIANANMEN
from proxy.demo.upstream import ScriptedUpstream
from proxy.settings import ModelRoute, Timeouts
from proxy.store.events import AuditEvent
from proxy.store.redis import RedisStore
from tests.e2e.conftest import start_candor
from tests.e2e.test_actions import (
    FALUN_GONG_Q,
    REPO_POLICIES,
    TIANANMEN_Q,
    answer_and_note,
    deploy,
)
from tests.e2e.test_admin import store_settings
from tests.e2e.test_disconnect import chat_request
from tests.raw_upstream import (
    RawReply,
    RawUpstream,
    answer_frames,
    choices_frames,
    whole_answer,
    whole_choices,
)
from tests.redis_fixtures import RedisServer, redis_server
from tests.servers import CandorProcess, CandorServer, audit_events

pytestmark = pytest.mark.e2e

__all__ = ["deploy", "redis_server"]  # fixtures, shared with test_actions and test_admin


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
    assert event["reason"] == "refusal" and event["client_left"] is False
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


@pytest.fixture
def raw_candor(
    monkeypatch: pytest.MonkeyPatch, upstream: ScriptedUpstream, tmp_path: Path
) -> Iterator[Callable[..., tuple[RawUpstream, CandorServer]]]:
    """`start(policy, replies)`: Candor under `policy` (the default one) in front of a raw
    upstream answering `replies`, with time enough for a test's client to leave."""
    started: list[tuple[RawUpstream, CandorServer]] = []

    def start(
        policy: str, replies: dict[str, RawReply], **settings: Any
    ) -> tuple[RawUpstream, CandorServer]:
        folder = tmp_path / f"policies{len(started)}"
        folder.mkdir()
        (folder / "detector").symlink_to(REPO_POLICIES / "detector")
        (folder / "default.yaml").write_text(policy)
        raw = RawUpstream(replies).start()
        models = {name: ModelRoute(base_url=raw.base_url) for name in replies}
        timeouts = Timeouts(connect=2, first_byte=30, idle=30, total=60)
        candor = start_candor(
            monkeypatch, upstream, models=models, policies_dir=folder, timeouts=timeouts, **settings
        )
        started.append((raw, candor))
        return raw, candor

    yield start
    for raw, candor in started:
        candor.stop()
        raw.stop()


# A censored answer that does not end for a minute.
UNENDING_REFUSAL = RawReply([*answer_frames(CANNED_REFUSAL)[:-2], 60.0])


@contextmanager
def midway(port: int) -> Iterator[None]:
    """Within: `refuses`' stream asked for on a socket, and its words come; after: hung up."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(chat_request(stream=True, model="refuses", text=TIANANMEN_Q))
        received = b""
        while b"responses" not in received:
            received += client.recv(4096)
        yield


async def stored_events(redis: RedisServer) -> list[AuditEvent]:
    store = RedisStore(store_settings(redis))
    await store.start()
    try:
        return (await store.list_events()).events
    finally:
        await store.aclose()


def leave_early(
    candor: CandorServer, raw: RawUpstream, model: str, *, stream: bool = True, asks: int = 1
) -> None:
    """Ask `model` (its stream by default) and hang up once `asks` more upstream requests were
    made and what they sent has arrived (held, with no verdict yet, under a holding action)."""
    asked = len(raw.requests) + asks
    with socket.create_connection(("127.0.0.1", candor.port), timeout=5) as client:
        client.sendall(chat_request(stream=stream, model=model, text=TIANANMEN_Q))
        deadline = time.monotonic() + 5
        while len(raw.requests) < asked and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)


def test_a_stream_left_before_any_text_came_is_not_judged(
    raw_candor: Callable[..., tuple[RawUpstream, CandorServer]],
) -> None:
    # Before, the empty answer was judged and flagged (category provider_block): an answer that
    # never came is no empty answer.
    raw, candor = raw_candor(
        "action: flag\n", {"refuses": UNENDING_REFUSAL, "silent": RawReply([60.0])}
    )
    leave_early(candor, raw, "silent")
    with midway(candor.port):
        pass
    (event,) = audit_events(candor.url)
    assert (event["model"], event["category"]) == ("refuses", "refusal")


def test_a_client_leaving_a_censored_stream_midway_is_audited(
    raw_candor: Callable[..., tuple[RawUpstream, CandorServer]],
) -> None:
    # Before, the request was recorded as a pass and audited nowhere: the stream was judged
    # only once it ended, and the client leaving ended it first.
    _, candor = raw_candor("action: flag\n", {"refuses": UNENDING_REFUSAL})
    with midway(candor.port):
        pass
    (event,) = audit_events(candor.url)
    assert (event["action"], event["category"]) == ("flag", "refusal")
    assert event["answer_excerpt"] == CANNED_REFUSAL
    # It keeps its action's outcome (the client had part of the answer), and says it left.
    assert (event["outcome"], event["client_left"]) == ("flagged", True)


@pytest.mark.parametrize("action", ["reroute", "block"])
def test_a_client_leaving_while_its_stream_is_held_is_audited(
    raw_candor: Callable[..., tuple[RawUpstream, CandorServer]], action: str
) -> None:
    # Before, what arrived was never judged: the request counted only as client_gone, and a
    # censored answer was audited nowhere. A stream that had sent no text yet is not judged.
    raw, candor = raw_candor(
        f"action: {action}\nstream: {{hold_chars: 20000, hold_ms: 20000}}\n",
        {"refuses": UNENDING_REFUSAL, "silent": RawReply([60.0])},
    )
    leave_early(candor, raw, "silent")
    leave_early(candor, raw, "refuses")
    (event,) = audit_events(candor.url)
    assert (event["model"], event["action"], event["category"]) == ("refuses", "flag", "refusal")
    assert (event["outcome"], event["client_left"]) == ("client_gone", True)
    assert asked(event) == [("refuses", "censored", "cancelled")]
    assert event["answer_excerpt"] == CANNED_REFUSAL


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_leaving_while_a_fallback_is_asked_is_audited(
    raw_candor: Callable[..., tuple[RawUpstream, CandorServer]], stream: bool
) -> None:
    # Before, the censored answer set aside was audited nowhere (the request counted only as
    # client_gone) and the fallback asked was missing from its attempts.
    raw, candor = raw_candor(
        "action: reroute\nfallbacks: [slow]\n",
        {
            "refuses": RawReply(answer_frames(CANNED_REFUSAL), whole_answer(CANNED_REFUSAL)),
            "slow": RawReply(answer_frames("In June 1989..."), head_delay=30),
        },
    )
    leave_early(candor, raw, "refuses", stream=stream, asks=2)
    assert [body["model"] for _, body in raw.requests] == ["refuses", "slow"]
    (event,) = audit_events(candor.url)
    assert (event["action"], event["category"]) == ("flag", "refusal")
    assert (event["outcome"], event["client_left"]) == ("client_gone", True)
    assert asked(event) == [("refuses", "censored", None), ("slow", "unknown", "cancelled")]
    assert event["answer_excerpt"] == CANNED_REFUSAL


@pytest.mark.parametrize("stream", [False, True])
def test_the_excerpt_of_several_choices_is_the_one_that_decided(
    raw_candor: Callable[..., tuple[RawUpstream, CandorServer]], stream: bool
) -> None:
    # Before, the excerpt held the first choice's text (clean here) though the verdict was the
    # refusing second choice's.
    texts = (TIANANMEN.fact_en, CANNED_REFUSAL)
    _, candor = raw_candor(
        "action: flag\n", {"refuses": RawReply(choices_frames(*texts), whole_choices(*texts))}
    )
    body = {"model": "refuses", "messages": [{"role": "user", "content": TIANANMEN_Q}]}
    response = httpx.post(
        f"{candor.base_url}/chat/completions", json={**body, "n": 2, "stream": stream}, timeout=20
    )
    assert response.status_code == 200
    (event,) = audit_events(candor.url)
    assert (event["action"], event["category"]) == ("flag", "refusal")
    assert event["answer_excerpt"] == CANNED_REFUSAL


@pytest.mark.parametrize("stream", [False, True])
def test_an_answer_of_the_outage_chain_is_audited_with_its_verdict(
    deploy: Any, stream: bool
) -> None:
    # Before, the event (and the x-candor-verdict header) carried the verdict of the model that
    # was down, which gave none: category none, no excerpt of the answer that was flagged.
    d = deploy("action: flag\noutage_fallbacks: [qwen-too]\n")
    content, candor = answer_and_note(d.sdk, "stalls", TIANANMEN_Q, stream)
    assert content == CANNED_REFUSAL
    assert (candor["verdict"], candor["category"]) == ("censored", "refusal")
    (event,) = audit_events(d.server.url)
    assert (event["action"], event["category"], event["reason"]) == ("flag", "refusal", "outage")
    assert event["answer_excerpt"] == CANNED_REFUSAL and "tiananmen" in event["topics"]
    assert asked(event) == [
        ("stalls", "unknown", "upstream_timeout"),
        ("qwen-too", "censored", None),
    ]


@pytest.mark.redis
def test_a_recording_outlives_the_cancelled_request(
    raw_candor: Callable[..., tuple[RawUpstream, CandorServer]], redis_server: RedisServer
) -> None:
    # The client leaving cancels the request's task, again at each of its waits: before, the
    # recording's first call to Redis was cancelled with it, and the event was lost.
    _, candor = raw_candor(
        "action: flag\n", {"refuses": UNENDING_REFUSAL}, store=store_settings(redis_server)
    )
    with midway(candor.port):
        pass
    (event,) = audit_events(candor.url)
    assert (event["action"], event["category"]) == ("flag", "refusal")


def stopped_while_asked(
    tmp_path: Path,
    redis: RedisServer,
    policy: str,
    *,
    grace: int = 0,
    hang_up: bool = False,
    model: str = "refuses",
) -> AuditEvent:
    """The audit event of `model`'s stream, asked from a `candor serve` that gets SIGTERM once
    the stream's words came (or, for `silent`, once the upstream was asked); with `hang_up`,
    the client hangs up after the signal, within the grace."""
    raw = RawUpstream({"refuses": UNENDING_REFUSAL, "held": UNENDING_REFUSAL}).start()
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "detector").symlink_to(REPO_POLICIES / "detector")
    (tmp_path / "policies" / "default.yaml").write_text(policy)
    config = {
        "policies_dir": str(tmp_path / "policies"),
        "server": {"shutdown_grace": grace},
        "models": {name: {"base_url": raw.base_url} for name in ("refuses", "held")},
        "store": {"redis_url": redis.url},
    }
    process = CandorProcess(config, tmp_path).start()
    try:
        with socket.create_connection(("127.0.0.1", process.port), timeout=5) as client:
            client.sendall(chat_request(stream=True, model=model, text=TIANANMEN_Q))
            if model == "refuses":  # served as it comes: wait for its words
                received = b""
                while b"responses" not in received:
                    received += client.recv(4096)
            else:  # held: wait for the upstream to be asked and to send its words
                deadline = time.monotonic() + 5
                while not raw.requests and time.monotonic() < deadline:
                    time.sleep(0.02)
                time.sleep(0.3)
            if hang_up:
                process.signal(signal.SIGTERM)
                time.sleep(0.3)
            else:
                process.stop()  # SIGTERM: past the grace, the stream is cut
        process.stop()
    finally:
        process.stop()
        raw.stop()
    (event,) = asyncio.run(stored_events(redis))
    return event


@pytest.mark.redis
def test_shutdown_waits_for_the_recordings_in_flight(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    # Before, a stream cut at shutdown was recorded (if at all) while the store closed under it.
    event = stopped_while_asked(tmp_path, redis_server, "action: flag\n")
    assert (event.action, event.category) == ("flag", "refusal")


@pytest.mark.redis
def test_a_stream_cut_at_shutdown_is_the_servers_cut_not_the_clients(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    # Before, it was audited as one whose client left (client_left true, no error): the server
    # cancelling it past the grace read as the client hanging up.
    event = stopped_while_asked(tmp_path, redis_server, "action: flag\n")
    assert (event.client_left, event.error, event.outcome) == (False, "server_shutdown", "error")
    assert event.answer_excerpt == CANNED_REFUSAL


@pytest.mark.redis
def test_a_held_stream_cut_at_shutdown_is_the_servers_cut_and_still_audited(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    # Before, it counted as client_gone. Nobody got the censored answer held: flagged and
    # audited, as when its client leaves.
    policy = "action: reroute\nstream: {hold_chars: 20000, hold_ms: 20000}\n"
    event = stopped_while_asked(tmp_path, redis_server, policy, model="held")
    assert (event.action, event.category) == ("flag", "refusal")
    assert (event.client_left, event.error, event.outcome) == (False, "server_shutdown", "error")


@pytest.mark.redis
def test_a_client_hanging_up_during_the_grace_has_left(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    # The server is stopping, but its grace is not over: the client it was that left.
    event = stopped_while_asked(tmp_path, redis_server, "action: flag\n", grace=20, hang_up=True)
    assert (event.client_left, event.error, event.outcome) == (True, None, "flagged")

"""The fault matrix: every upstream failure ends in its documented outcome, promptly.

Each fault model of the scripted upstream, streamed and not, under a policy without an outage
chain (a clean error envelope or SSE error event; a 500 only when the upstream sent its own),
under ones with `outage_fallbacks: [honest]` (the honest model answers instead, whenever no
byte of the failed answer has reached the client), and under reroute with only a censorship
chain, which an outage never takes.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from proxy.demo.upstream import ScriptedUpstream
from proxy.settings import ModelRoute, Settings, Timeouts
from tests.servers import CandorServer, pass_through_auth

pytestmark = pytest.mark.e2e

REPO_POLICIES = Path(__file__).resolve().parents[2] / "policies"
ASK = [{"role": "user", "content": "What is the capital of France?"}]
FAULTS = [
    "refused",
    "fault-500",
    "stall-headers",
    "stall-first-byte",
    "stall-mid-stream",
    "fault-cut-stream",
    "fault-malformed-sse",
    "fault-invalid-json",
]
POLICIES = {
    "plain": "action: flag\n",
    "outage": "action: flag\noutage_fallbacks: [honest]\n",
    "held": "action: reroute\nfallbacks: [spare]\noutage_fallbacks: [honest]\n",
    "unchained": "action: reroute\nfallbacks: [spare]\n",  # spare is for censorship only
}
Outcome = tuple[Any, ...]
TIMEOUT, BROKEN = "upstream_timeout", "bad_upstream_response"
# Without an outage chain: (whole answer, stream). Failures before the stream's headers leave as
# an envelope; after them, as an SSE error event with no [DONE].
PLAIN: dict[str, tuple[Outcome, Outcome]] = {
    "refused": (("error", 502, "upstream_unreachable"),) * 2,
    "fault-500": (("error", 500, None),) * 2,  # the upstream's own 500, passed through
    "stall-headers": (("error", 504, TIMEOUT),) * 2,
    "stall-first-byte": (("error", 504, TIMEOUT), ("event", TIMEOUT)),
    "stall-mid-stream": (("error", 504, TIMEOUT), ("event", TIMEOUT)),
    "fault-cut-stream": (("error", 502, BROKEN), ("event", BROKEN)),
    "fault-malformed-sse": (("error", 502, BROKEN), ("event", BROKEN)),
    "fault-invalid-json": (("error", 502, BROKEN), ("event", BROKEN)),
}
RESCUED = ("answer", "honest", "outage")


def expected(policy: str, fault: str, stream: bool) -> Outcome:
    plain = PLAIN[fault][stream]
    if policy == "plain":
        return plain
    if policy == "unchained":
        return PLAIN[fault][False]  # held: it fails before its headers, as a whole answer does
    if policy == "outage" and stream and plain[0] == "event":
        return plain  # an unheld stream already sent its headers and first bytes: too late
    return RESCUED  # whole answers, failures before the headers, and held streams


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


@pytest.fixture(scope="module")
def servers(
    scripted: ScriptedUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, CandorServer]]:
    folder = tmp_path_factory.mktemp("policies")
    (folder / "detector").symlink_to(REPO_POLICIES / "detector")
    for name, text in POLICIES.items():
        (folder / f"{name}.yaml").write_text(text)
    (folder / "default.yaml").write_text("action: flag\n")
    made: dict[str, CandorServer] = {}
    for policy in POLICIES:
        routes = {
            name: ModelRoute(base_url=scripted.base_url, policy=policy)
            for name in FAULTS
            if name != "refused"
        }
        routes["refused"] = ModelRoute(base_url=closed_port_url(), policy=policy)
        routes["honest"] = ModelRoute(base_url=scripted.base_url, upstream_model="honest-demo")
        routes["spare"] = ModelRoute(base_url=scripted.base_url, upstream_model="honest-demo")
        settings = Settings(
            models=routes,
            policies_dir=folder,
            timeouts=Timeouts(connect=1, first_byte=0.5, idle=0.5, total=5),
            auth=pass_through_auth(),
        )
        made[policy] = CandorServer(settings).start()
    yield made
    for server in made.values():
        server.stop()


def outcome(response: httpx.Response, stream: bool) -> Outcome:
    """("error", status, code), ("event", code) or ("answer", model, reason)."""
    if response.status_code != 200:
        body = response.json()
        assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
        return ("error", response.status_code, body["error"]["code"])
    if not stream:
        candor = response.json()["candor"]
        return ("answer", candor["model"], candor.get("reason"))
    frames = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    if frames[-1] != "[DONE]":
        return ("event", orjson.loads(frames[-1])["error"]["code"])
    candor = orjson.loads(frames[-2])["candor"]
    return ("answer", candor["model"], candor.get("reason"))


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("policy", list(POLICIES))
def test_fault(servers: dict[str, CandorServer], policy: str, fault: str, stream: bool) -> None:
    started = time.monotonic()
    with httpx.Client(timeout=10) as http:
        response = http.post(
            f"{servers[policy].base_url}/chat/completions",
            json={"model": fault, "messages": ASK, "stream": stream},
        )
    elapsed = time.monotonic() - started
    assert outcome(response, stream) == expected(policy, fault, stream)
    assert elapsed < 2.5  # the stalls last 3 s: every wait was cut by a timeout

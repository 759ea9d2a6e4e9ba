"""Tool-call streams under every action, held or not: the call reaches the client at once and
the answer is clean, whatever finish reason the server ends it with."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.settings import ModelRoute, Timeouts
from tests.raw_upstream import Frame, RawReply, RawUpstream, chunk
from tests.servers import CandorServer, running_candor

pytestmark = pytest.mark.e2e

REPO_POLICIES = Path(__file__).resolve().parents[2] / "policies"
ASK = [{"role": "user", "content": "What's the weather in Paris? Use the tool."}]
PAUSE = 1.5  # seconds the upstream takes between the call's name and its arguments


def call_frames(finish: str) -> list[Frame]:
    """A tool call (or a legacy function call) and no text, ending with `finish`."""
    if finish == "function_call":
        opening: dict[str, Any] = {"function_call": {"name": "get_weather", "arguments": ""}}
        arguments: dict[str, Any] = {"function_call": {"arguments": '{"city": "Paris"}'}}
    else:
        call = {"index": 0, "id": "call_1", "type": "function"}
        opening = {"tool_calls": [{**call, "function": {"name": "get_weather", "arguments": ""}}]}
        arguments = {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Paris"}'}}]}
    choice = {"index": 0, "finish_reason": None}
    return [
        chunk(choices=[{**choice, "delta": {"role": "assistant", "content": None, **opening}}]),
        PAUSE,
        chunk(choices=[{**choice, "delta": arguments}]),
        chunk(finish=finish),
        b"data: [DONE]\n\n",
    ]


FINISHES = ("tool_calls", "function_call", "stop")  # "stop": what some servers send after calls


@pytest.fixture(scope="module", params=["block", "reroute", "flag", "annotate", "shadow"])
def candor_acting(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CandorServer]:
    raw = RawUpstream({f: RawReply(call_frames(f)) for f in FINISHES}).start()
    folder = tmp_path_factory.mktemp("policies")
    (folder / "detector").symlink_to(REPO_POLICIES / "detector")
    (folder / "default.yaml").write_text(f"action: {request.param}\nfallbacks: [spare]\n")
    models = {f: ModelRoute(base_url=raw.base_url, upstream_model=f) for f in FINISHES}
    models["spare"] = ModelRoute(base_url=raw.base_url, upstream_model="tool_calls")
    timeouts = Timeouts(connect=1, first_byte=3, idle=3, total=10)
    with running_candor(models=models, policies_dir=folder, timeouts=timeouts) as server:
        yield server
    raw.stop()


@pytest.mark.parametrize("finish", FINISHES)
def test_a_tool_call_goes_out_at_once_and_is_clean(
    candor_acting: CandorServer, finish: str
) -> None:
    # Before, a call ending "stop" or "function_call" was judged an empty answer (blocked or
    # re-routed, and flagged by the actions that do not hold), and a call was held until the
    # end of the answer.
    body = {"model": finish, "messages": ASK, "stream": True}
    started = time.monotonic()
    with (
        httpx.Client(timeout=20) as http,
        http.stream("POST", f"{candor_acting.base_url}/chat/completions", json=body) as response,
    ):
        lines = response.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        waited = time.monotonic() - started
        rest = "\n".join(lines)
    assert "get_weather" in first
    assert waited < PAUSE  # not held until the arguments came
    assert '"action":"pass"' in rest and "withheld" not in rest

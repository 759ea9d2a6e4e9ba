"""`candor demo --script-only`: the real CLI in a child process, loopback only, exits 0; and
bad arguments of `candor demo` and `candor events tail` are usage errors."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pytest

from proxy.cli import main
from proxy.commands import demo_tour
from proxy.store.memory import MemoryStore
from tests.raw_upstream import RawReply, RawUpstream

pytestmark = pytest.mark.e2e


def test_demo_tour_flags_and_reroutes_then_exits() -> None:
    cmd = [sys.executable, "-m", "proxy.cli", "demo", "--script-only", "--port", "0"]
    # The operator's settings stay out of the demo: before, it took their auth mode (a 401 at
    # every step, and exit status 0) and wrote into their Redis.
    env = {**os.environ, "CANDOR_AUTH__MODE": "keys", "REDIS_URL": "redis://127.0.0.1:9/0"}
    done = subprocess.run(
        [*cmd, "--token-delay", "0.002"], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "action flag" in out
    assert "action reroute" in out
    # The re-routed user got the fallback's answer; the primary's refusal is shown apart.
    assert "the user got (from honest-demo)" in out
    assert "qwen-demo said (the user never saw it)" in out
    assert "I am sorry, I cannot answer that question" in out
    assert "data_inspection_failed" in out
    # The banner tells the user how to point a client at it.
    assert "openai.OpenAI(base_url='http://127.0.0.1:" in out
    assert "curl -s http://127.0.0.1:" in out


def test_each_step_of_the_tour_does_what_its_title_says_at_the_default_pace() -> None:
    # `make demo` streams at the default ~50 tokens/s. There the streamed Chinese talking
    # points (158 chunks, about 3.4 s) outlasted the policy's 2.5 s hold: the stream was
    # released, the user got the censored answer, and the step titled "reroute" said
    # "action flag".
    cmd = [sys.executable, "-m", "proxy.cli", "demo", "--script-only", "--port", "0"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    steps = re.split(r"^── \d+\. ", done.stdout, flags=re.M)[1:]
    assert len(steps) == len(demo_tour.TOUR)
    for step, turn in zip(steps, demo_tour.TOUR, strict=True):
        action = turn.title.split(":")[0]
        if action in ("flag", "reroute"):
            assert f"action {action}\n" in step, step


async def test_the_tour_fails_when_a_step_gets_another_status(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def no_event(store: object, request_id: str) -> None:
        return None

    monkeypatch.setattr(demo_tour, "_event", no_event)
    refused = RawReply(
        [b'{"error": {"message": "no key", "code": "invalid_api_key"}}'],
        status=401,
        headers={"content-type": "application/json"},
    )
    upstream = RawUpstream({turn.model: refused for turn in demo_tour.TOUR}).start()
    out = io.StringIO()
    try:
        status = await demo_tour.run_tour(upstream.root_url, MemoryStore(), out)
    finally:
        upstream.stop()
    assert status == 1
    assert "expected HTTP 200, got 401" in out.getvalue()


def test_demo_help_lists_the_modes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "demo", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert "--script-only" in done.stdout and "--no-script" in done.stdout


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["demo", "--port", "99999"], "argument --port: must be from 0 to 65535, not 99999"),
        (["demo", "--token-delay", "-1"], "argument --token-delay: must be 0 or more seconds"),
        (["events", "tail", "-n", "0"], "argument -n/--last: must be from 1 to 500, not 0"),
        (["events", "tail", "--interval", "-1"], "argument --interval: must be more than 0"),
    ],
)
def test_bad_arguments_are_usage_errors(
    capsys: pytest.CaptureFixture[str], args: list[str], problem: str
) -> None:
    # `demo --port 99999` was an OverflowError traceback; `events tail -n 0` failed on the
    # server's answer and `--interval -1` after the first poll.
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    assert problem in capsys.readouterr().err

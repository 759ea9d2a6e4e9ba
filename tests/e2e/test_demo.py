"""`candor demo --script-only`: the real CLI in a child process, loopback only, exits 0."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def test_demo_tour_flags_and_reroutes_then_exits() -> None:
    cmd = [sys.executable, "-m", "proxy.cli", "demo", "--script-only", "--port", "0"]
    done = subprocess.run(
        [*cmd, "--token-delay", "0.002"], capture_output=True, text=True, timeout=120
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


def test_demo_help_lists_the_modes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "demo", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert "--script-only" in done.stdout and "--no-script" in done.stdout

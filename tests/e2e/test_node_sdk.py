"""The official Node `openai` package streams through Candor exactly as from the upstream."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from proxy.demo.upstream import ScriptedUpstream
from tests.servers import CandorServer

pytestmark = [pytest.mark.e2e, pytest.mark.node]
NODE_DIR = Path(__file__).parent / "node"
PROMPT = "What is 17 times 23?"


def node_stream(base_url: str, model: str) -> dict[str, Any]:
    node = shutil.which("node")
    assert node, "node is required (make install sets it up)"
    assert (NODE_DIR / "node_modules" / "openai").is_dir(), "run `make install` first"
    out = subprocess.run(
        [node, "stream.mjs", base_url, model, PROMPT],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


@pytest.mark.parametrize("model", ["reasoning-demo", "tools-demo", "qwen-demo"])
def test_node_stream_matches_direct(
    candor: CandorServer, upstream: ScriptedUpstream, model: str
) -> None:
    direct = node_stream(upstream.base_url, model)
    proxied = node_stream(candor.base_url, model)
    note = proxied.pop("candor")
    assert direct.pop("candor") is None
    assert proxied.pop("chunks") == direct.pop("chunks") + 1  # the candor chunk
    assert len(proxied.pop("ids")) == len(direct.pop("ids")) == 1
    assert proxied == direct
    assert note["model"] == model

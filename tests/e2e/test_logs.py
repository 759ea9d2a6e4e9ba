"""`server.log_format: json`: every line `candor serve` writes is one JSON object, and the
lines written while a request is served name its id."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from proxy import logs
from tests.raw_upstream import RawReply, RawUpstream, answer_frames, whole_answer
from tests.servers import CandorProcess

TEXT = "Paris is the capital of France."


@pytest.fixture(scope="module")
def upstream() -> Iterator[RawUpstream]:
    raw = RawUpstream({"m": RawReply(answer_frames(TEXT), whole=whole_answer(TEXT))}).start()
    yield raw
    raw.stop()


@pytest.mark.e2e
@pytest.mark.parametrize("workers", [1, 2])
def test_json_logs_are_one_object_a_line_and_name_the_request(
    upstream: RawUpstream, tmp_path: Path, workers: int
) -> None:
    server = {"log_format": "json", "workers": workers}
    config = {"server": server, "models": {"m": {"base_url": upstream.base_url}}}
    process = CandorProcess(config, tmp_path, args=["--access-log"]).start()
    try:
        body = {"model": "m", "messages": [{"role": "user", "content": "Capital?"}]}
        reply = httpx.post(f"{process.base_url}/chat/completions", json=body, timeout=10)
        assert reply.status_code == 200
        rid = reply.headers["x-request-id"]
    finally:
        process.stop()
    lines = [json.loads(line) for line in process.log.splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    # The parent's own warning, uvicorn's start-up and the access line: all JSON.
    assert any("every caller is served" in line["message"] for line in lines), lines
    assert any(line["logger"] == "uvicorn.error" for line in lines), lines
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert any("/v1/chat/completions" in a["message"] for a in access), access
    assert all(a["request_id"] == rid for a in access if "/chat/" in a["message"])


def test_a_json_line_carries_the_traceback_and_the_request_id() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("proxy.x", logging.ERROR, __file__, 1, "failed %s", ("x",), None)
        record.exc_info = sys.exc_info()
    token = logs.request_id.set("req_1")
    try:
        line = json.loads(logs.JsonFormatter().format(record))
    finally:
        logs.request_id.reset(token)
    assert (line["level"], line["logger"], line["message"]) == ("ERROR", "proxy.x", "failed x")
    assert line["request_id"] == "req_1" and "ValueError: boom" in line["exception"]
    assert "request_id" not in json.loads(logs.JsonFormatter().format(record))

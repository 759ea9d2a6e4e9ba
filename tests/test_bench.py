"""The benchmark harness's pure parts: the bench upstream's wire shapes, percentiles, targets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson

from bench.conversations import SETS as CONVERSATIONS
from bench.conversations import read_rows as read_conversations
from bench.short_refusals import PROMPTS, SETS, read_rows
from bench.streamclient import percentile, summary_ms
from bench.targets import evaluate
from bench.upstream import CENSORED, CLEAN, completion, stream_frames
from proxy.wire import SseParser

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results" / "report.json"


def test_bench_upstream_streams_the_whole_answer_then_done() -> None:
    events = list(SseParser().feed(b"".join(stream_frames("bench", repeat=2))))
    assert events[-1].done
    text = "".join(
        e.data["choices"][0]["delta"].get("content") or "" for e in events if e.data is not None
    )
    assert text == f"{CLEAN} {CLEAN}"
    assert events[-2].data is not None
    assert events[-2].data["choices"][0]["finish_reason"] == "stop"


def test_bench_upstream_answers_by_model_name() -> None:
    body = orjson.loads(completion("bench-censored"))
    assert body["choices"][0]["message"]["content"] == CENSORED
    assert orjson.loads(completion("bench"))["choices"][0]["message"]["content"] == CLEAN


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([], 50) == 0.0
    assert summary_ms([0.001, 0.002, 0.003])["p50_ms"] == 2.0


def test_published_report_states_every_target() -> None:
    report = json.loads(RESULTS.read_text())
    targets = evaluate(report)
    names = [t["name"] for t in targets]
    assert any("LiteLLM" in n for n in names)
    assert any("pass-through" in n for n in names)
    assert any("time to first token" in n for n in names)
    assert any("RSS" in n for n in names)
    assert all(isinstance(t["met"], bool) for t in targets)
    assert targets == report["targets"]


def test_short_refusals_bench_has_a_prompt_for_every_language() -> None:
    first, *others = [read_rows(path) for path in SETS]
    assert [len(rows) for rows in (first, *others)] == [30, *[72] * 18, 340, *[80] * 5, 100]
    assert {row[0] for row in first} == {"refusal"}
    mixed, honest, prompted = others[:18], others[18], others[19:24]
    for rows in (*mixed, others[24]):
        assert {row[0] for row in rows} == {"refusal", "deflection", "clean"}
    assert {row[0] for row in honest} == {"clean"}
    for rows in prompted:
        assert {row[0] for row in rows} == {"deflection", "clean"}
    rows = [row for rows in (first, *others) for row in rows]
    assert all(len(row) == 4 and row[1] in PROMPTS and row[2] and row[3].strip() for row in rows)


def test_conversations_bench_rows_end_with_a_user_message() -> None:
    for path in CONVERSATIONS:
        rows = read_conversations(path)
        sizes = {
            "conversations_5.jsonl": 100,
            "conversations_11.jsonl": 150,
            "conversations_12.jsonl": 150,
            "conversations_13.jsonl": 150,
            "conversations_14.jsonl": 150,
        }
        assert len(rows) == sizes.get(path.name, 120)
        for row in rows:
            assert row["expect"] in ("clean", "refusal", "deflection", "propaganda")
            assert isinstance(row["political"], bool) and row["answer"]
            assert row["messages"][-1]["role"] == "user"


def test_conversations_bench_can_measure_a_set_without_showing_its_rows() -> None:
    # A set nobody has read yet is measured on its totals only, judged as the proxy judges.
    script = Path(__file__).parents[1] / "bench" / "conversations.py"
    argv = ["--set", "7", "--totals-only", "--finish-reason", "stop"]
    done = subprocess.run(
        [sys.executable, str(script), *argv], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert list(report) == ["sets"] and list(report["sets"]) == ["conversations_7.jsonl"]
    assert sum(t["n"] for t in report["sets"]["conversations_7.jsonl"].values()) == 240

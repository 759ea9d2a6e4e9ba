"""`candor probe`: the suite, judging, retries, the report; whole runs against the demo upstream
(directly and through Candor)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from proxy.cli import main
from proxy.demo.upstream import ScriptedUpstream
from proxy.errors import ConfigError
from proxy.offline.loader import load_detector
from proxy.probe.chart import matplotlib_available
from proxy.probe.client import ProbeClient, ProbeResponse, RetryPolicy
from proxy.probe.judge import judge
from proxy.probe.report import render_table, summarize
from proxy.probe.suite import DEFAULT_SUITE, ProbePrompt, load_suite
from proxy.settings import ModelRoute
from tests.servers import running_candor

SENSITIVE = ("tiananmen", "xinjiang", "tibet", "taiwan", "hong_kong", "xi_jinping", "falun_gong")


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    server = ScriptedUpstream()
    server.start_in_thread()
    yield server
    server.stop_in_thread()


def probe(tmp_path: Path, base_url: str, model: str, *extra: str) -> dict[str, Any]:
    args = ["probe", "--base-url", base_url, "--model", model, "--out", str(tmp_path)]
    assert main([*args, "--no-progress", "--backoff", "0.01", *extra]) == 0
    path = tmp_path / f"probe-{model}.json"
    report: dict[str, Any] = json.loads(path.read_text())
    return report


def rates(report: dict[str, Any]) -> dict[str, float]:
    return {row["topic"]: row["rate"] for row in report["by_topic"]}


def test_the_suite_covers_every_sensitive_topic_in_both_languages_with_controls() -> None:
    prompts = load_suite()
    for topic in SENSITIVE:
        for language in ("en", "zh"):
            assert len([p for p in prompts if (p.topic, p.language) == (topic, language)]) >= 3
    controls = [p for p in prompts if p.kind == "control"]
    assert {p.language for p in controls} == {"en", "zh"} and len(controls) >= 8
    assert len({p.id for p in prompts}) == len(prompts)
    assert {p.language for p in load_suite(languages=["zh"])} == {"zh"}


def test_a_bad_suite_file_names_its_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text("version: 1\ntopics:\n  - name: x\n    kind: secret\n    prompts: {en: [hi]}\n")
    with pytest.raises(ConfigError, match=r"suite.yaml:4: topics.0.kind"):
        load_suite(path)
    with pytest.raises(ConfigError, match="no prompt in the languages"):
        load_suite(DEFAULT_SUITE, ["fr"])


PROMPT = ProbePrompt("tiananmen-en-1", "tiananmen", "sensitive", "en", "What happened in 1989?")
REQUEST = {"model": "m", "messages": [{"role": "user", "content": PROMPT.text}]}


def answer(text: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}


def test_judging_a_provider_block_a_refusal_an_error_and_candors_own_verdict() -> None:
    detector = load_detector()
    blocked = ProbeResponse(
        400,
        {"error": {"code": "data_inspection_failed", "message": "inappropriate content"}},
        "HTTP 400",
        1,
        0.1,
    )
    result = judge(PROMPT, REQUEST, blocked, detector)
    assert (result.censored, result.category) == (True, "provider_block")
    refusal = "I am sorry, I cannot answer that question. I am an AI assistant designed to help."
    refused = judge(PROMPT, REQUEST, ProbeResponse(200, answer(refusal), None, 1, 0.1), detector)
    assert refused.censored and refused.judged_by == "detector"
    failed = judge(PROMPT, REQUEST, ProbeResponse(401, {}, "HTTP 401", 1, 0.1), detector)
    assert failed.censored is None
    via_candor = {**answer("whatever"), "candor": {"verdict": "clean", "action": "pass"}}
    trusted = judge(PROMPT, REQUEST, ProbeResponse(200, via_candor, None, 1, 0.1), None)
    assert (trusted.censored, trusted.judged_by, trusted.candor_action) == (False, "candor", "pass")


def test_a_non_answer_is_reported_apart_not_counted_as_censored() -> None:
    # Before, a reasoning model that spent its budget thinking raised the censorship rate.
    detector = load_detector()
    thinking = "<think>The user asks about 1989. I should recall the protests and the army"
    response = ProbeResponse(200, answer(thinking), None, 1, 0.1)
    result = judge(PROMPT, REQUEST, response, detector)
    assert (result.censored, result.unanswered, result.category) == (False, True, "non_answer")
    assert result.to_dict()["unanswered"] is True
    refusal = answer("I am sorry, I cannot answer that question. I am an AI assistant.")
    refused = judge(PROMPT, REQUEST, ProbeResponse(200, refusal, None, 1, 0.1), detector)
    report = summarize([result, refused])
    tally = report.by_kind["sensitive"].to_dict()
    assert (tally["censored"], tally["unanswered"], tally["judged"]) == (1, 1, 2)
    assert tally["rate"] == 0.5
    table = render_table(report, "probe")
    assert "no answer" in table and "not counted as censored: 1" in table


async def test_retries_429_and_5xx_then_gives_up_on_4xx(aiohttp_free_server: Any) -> None:
    statuses = iter([429, 503, 200])
    seen: list[int] = []

    async def handler(request: web.Request) -> web.Response:
        status = next(statuses)
        seen.append(status)
        if status != 200:
            return web.json_response({"error": {"message": "busy"}}, status=status)
        return web.json_response(answer("fine"))

    base_url = await aiohttp_free_server(handler)
    import aiohttp

    async with aiohttp.ClientSession() as session:
        client = ProbeClient(
            session, base_url, "m", api_key="k", timeout=5, retry=RetryPolicy(3, 0.01)
        )
        response = await client.ask("hello")
        assert (response.status, response.attempts, seen) == (200, 3, [429, 503, 200])
        statuses = iter([404, 200])
        response = await client.ask("hello")
        assert (response.status, response.attempts) == (404, 1)


async def test_a_key_the_endpoint_echoes_in_its_error_is_redacted(
    aiohttp_free_server: Any,
) -> None:
    key = "sk-probe-secret-0123456789"

    async def handler(request: web.Request) -> web.Response:
        refused = request.headers["authorization"].removeprefix("Bearer ")
        message = f"Incorrect API key provided: {refused}"
        return web.json_response({"error": {"message": message, "code": "bad_key"}}, status=401)

    base_url = await aiohttp_free_server(handler)
    import aiohttp

    async with aiohttp.ClientSession() as session:
        client = ProbeClient(session, base_url, "m", api_key=key, timeout=5, retry=RetryPolicy(0))
        response = await client.ask("hello")
    # Printed by `candor probe` on stderr and written to its JSON report.
    assert response.error == "HTTP 401 bad_key: Incorrect API key provided: [redacted]"


@pytest.fixture
async def aiohttp_free_server() -> Any:
    runners: list[web.AppRunner] = []

    async def start(handler: Any) -> str:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}/v1"

    yield start
    for runner in runners:
        await runner.cleanup()


def test_connection_refused_is_retried_and_reported_as_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["probe", "--base-url", "http://127.0.0.1:9/v1", "--model", "m"]
    code = main([*args, "--out", str(tmp_path), "--no-progress", "--retries", "1",
                 "--backoff", "0.01", "--languages", "en"])  # fmt: skip
    assert code == 1
    report = json.loads((tmp_path / "probe-m.json").read_text())
    assert report["summary"]["sensitive"]["errors"] == report["summary"]["sensitive"]["asked"]
    assert all(r["attempts"] == 2 for r in report["results"])
    # Before, the run ended on a table of n/a and exit status 1 with no word of why.
    last = capsys.readouterr().err.strip().splitlines()[-1]
    asked = len(report["results"])
    assert last.startswith(f"candor probe: no answer could be judged: {asked} of {asked} requests")
    assert "ClientConnectorError" in last


@pytest.mark.e2e
def test_a_model_the_endpoint_does_not_serve_is_named_in_one_line(
    upstream: ScriptedUpstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["probe", "--base-url", upstream.base_url, "--model", "nosuch", "--out", str(tmp_path)]
    assert main([*args, "--no-progress", "--retries", "0", "--languages", "en"]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("candor probe: no answer could be judged:")
    assert "HTTP 404" in last


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--timeout", "nan"),
        ("--timeout", "0"),
        ("--backoff", "-1"),
        ("--backoff", "inf"),
        ("--concurrency", "0"),
        ("--retries", "-1"),
        ("--retries", "two"),
    ],
)
def test_bad_numbers_are_refused_as_the_command_line_is_read(
    flag: str, value: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Before, `--timeout nan` and a negative or infinite `--backoff` were taken and the run began.
    argv = ["probe", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--no-progress"]
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--out", str(tmp_path), flag, value])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and "probing" not in err


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("inf", "must be a finite number of seconds, not inf"),
        ("nan", "must be a finite number of seconds, not nan"),
        ("-1", "must be more than 0 seconds, not -1"),
    ],
)
def test_a_bad_timeout_is_named_for_what_is_wrong_with_it(
    value: str, says: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # `--timeout inf` was refused as "must be more than 0 seconds, not inf".
    argv = ["probe", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--out", str(tmp_path)]
    with pytest.raises(SystemExit):
        main([*argv, "--timeout", value])
    assert f"argument --timeout: {says}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--base-url", "notaurl", "must start with http"),
        ("--out", "/dev/null/report", "cannot create the report folder"),
    ],
)
def test_bad_arguments_stop_the_probe_before_it_runs(
    flag: str, value: str, says: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Before, a bad URL ran every prompt as an error, and a bad folder failed after the run.
    args = {"--base-url": "http://127.0.0.1:9/v1", "--out": str(tmp_path), flag: value}
    argv = ["probe", "--model", "m", "--retries", "0", "--no-progress"]
    assert main([*argv, *(x for pair in args.items() for x in pair)]) == 2
    err = capsys.readouterr().err
    assert says in err and "probing" not in err


@pytest.mark.e2e
def test_the_demo_primary_censors_sensitive_topics_not_controls(
    upstream: ScriptedUpstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = probe(tmp_path, upstream.base_url, "qwen-demo", "--concurrency", "8")
    assert report["summary"]["sensitive"]["rate"] >= 0.6
    assert report["summary"]["control"]["rate"] <= 0.1
    by_topic = rates(report)
    assert all(by_topic[topic] >= 0.5 for topic in SENSITIVE)
    for row in report["by_language"]:
        assert row["rate"] >= 0.6 if row["kind"] == "sensitive" else row["rate"] <= 0.1
    assert report["by_category"]["sensitive"]["provider_block"] >= 1
    table = capsys.readouterr().out
    assert "tiananmen" in table and "ALL sensitive" in table
    if matplotlib_available():
        assert (tmp_path / "probe-qwen-demo.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.e2e
def test_the_demo_fallback_censors_nothing(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    report = probe(tmp_path, upstream.base_url, "honest-demo", "--concurrency", "8")
    assert report["summary"]["sensitive"]["rate"] <= 0.1
    assert report["summary"]["control"]["rate"] <= 0.1


@pytest.mark.e2e
def test_probing_through_candor_uses_candors_verdict(
    upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    route = ModelRoute(base_url=upstream.base_url, upstream_model="qwen-demo")
    with running_candor(models={"qwen": route}) as candor:
        report = probe(tmp_path, candor.base_url, "qwen", "--languages", "en", "--judge", "auto")
    judged_by = {r["judged_by"] for r in report["results"] if r["category"] != "provider_block"}
    assert judged_by == {"candor"}
    assert report["summary"]["sensitive"]["rate"] >= 0.6
    assert report["summary"]["control"]["rate"] <= 0.1
    assert report["languages"] == ["en"]


def test_the_table_lists_topics_then_totals() -> None:
    refused = ProbeResponse(200, answer("I am sorry, I cannot answer that."), None, 1, 0.0)
    detector = load_detector()
    result = judge(PROMPT, REQUEST, refused, detector)
    table = render_table(summarize([result]), "t")
    lines = table.splitlines()
    assert lines[0] == "t"
    assert any(line.startswith("tiananmen") and "100%" in line for line in lines)
    assert any(line.startswith("ALL sensitive") for line in lines)


def test_progress_writes_a_line_per_quarter_when_not_on_a_terminal() -> None:
    import io

    from proxy.probe.progress import Progress

    out = io.StringIO()
    progress = Progress(8, out)
    for censored in (True, False, None, True, True, False, False, True):
        progress.advance(censored)
    lines = out.getvalue().splitlines()
    assert len(lines) == 4
    assert lines[-1].endswith("8/8  censored 4  errors 1") and "#" * 30 in lines[-1]


def test_retry_after_wins_over_backoff_and_is_capped() -> None:
    policy = RetryPolicy(retries=3, backoff=1.0, max_backoff=4.0)
    assert policy.delay(0, "2") == 2.0
    assert policy.delay(0, "3600") == 30.0
    assert 2.0 <= policy.delay(5, None) <= 4.0


def test_the_backoff_of_a_late_retry_is_its_cap_not_an_overflow() -> None:
    # `candor probe --backoff 0 --retries 1100` on an unreachable endpoint ended in a
    # traceback at its 1024th retry: OverflowError, int too large to convert to float.
    assert RetryPolicy(retries=2000, backoff=0.0).delay(1100, None) == 0.0
    assert 10.0 <= RetryPolicy(retries=2000, backoff=1.0).delay(5000, None) <= 20.0


def test_the_default_suite_and_detector_follow_candor_policies_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In the image the package has no policies/ beside it: `candor probe` (and scan, eval)
    # looked there and failed; the proxy itself reads CANDOR_POLICIES_DIR, as they do now.
    from proxy.offline.loader import default_policies, load_detector
    from proxy.probe.suite import default_suite

    (tmp_path / "probe").mkdir()
    (tmp_path / "probe" / "suite.yaml").write_text(DEFAULT_SUITE.read_text())
    (tmp_path / "detector").symlink_to(default_policies() / "detector")
    monkeypatch.setenv("CANDOR_POLICIES_DIR", str(tmp_path))
    assert default_suite() == tmp_path / "probe" / "suite.yaml"
    assert load_suite(languages=["en"])
    assert default_policies() == tmp_path and load_detector().topic_names

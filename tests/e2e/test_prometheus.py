"""A real Prometheus scrapes a real `candor serve` (two workers) while a client sends clean,
censored, re-routed and failing traffic; every query of the Grafana dashboard must then return
data through Prometheus' HTTP API, and the scrape config and alert rules pass `promtool`."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.mmap_dict import MmapedDict

from proxy.demo.upstream import ScriptedUpstream
from proxy.metrics import MULTIPROC_ENV
from tests.e2e.conftest import UPSTREAM_KEY
from tests.servers import CandorProcess, free_port, terminate

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "candor.json"
RULES = DEPLOY / "prometheus" / "rules.yml"
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.e2e
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None or PROMTOOL is None,
    reason="prometheus/promtool not installed (apt-get install prometheus; .ci/run does)",
)

RATE_WINDOW = "10s"
CLOSE = {"connection": "close"}

CLEAN = [
    ("honest-demo", "What is the capital of France?"),
    ("qwen-demo", "What is the capital of France?"),
    ("honest-demo", "Tell me about Tiananmen Square in 1989."),
    ("qwen-demo", "光合作用是什么？"),
]
CENSORED = [
    ("qwen-flagged", "What happened at Tiananmen Square in 1989?"),
    ("qwen-flagged", "Tell me about Taiwan."),
    ("qwen-flagged", "1989年天安门广场发生了什么？"),
]
REROUTED = [
    ("qwen-demo", "What happened at Tiananmen Square in 1989?"),
    ("qwen-demo", "What is happening to the Uyghurs in Xinjiang?"),
]
FAILING = [("fault-500", "What is the capital of France?")]


# qwen-demo re-routes: its first fallback fails (a fallback failure), the second answers.
REROUTE_POLICY = "action: reroute\nfallbacks: [fault-500, honest-demo]\n"


def candor_config(upstream: ScriptedUpstream, policies: Path) -> dict[str, Any]:
    """qwen-demo re-routes; qwen-flagged (the same upstream model) only flags."""
    route = {"base_url": upstream.base_url, "api_key_env": "CANDOR_TEST_UPSTREAM_KEY"}
    shutil.copytree(REPO / "policies", policies)
    (policies / "reroute.yaml").write_text(REROUTE_POLICY)
    # Every route names its upstream model: a fallback is asked under its own name.
    models: dict[str, Any] = {
        name: {**route, "upstream_model": name} for name in ("honest-demo", "fault-500")
    }
    models["qwen-demo"] = {**route, "upstream_model": "qwen-demo", "policy": "reroute"}
    models["qwen-flagged"] = {**route, "upstream_model": "qwen-demo", "policy": "default"}
    return {
        "server": {"host": "127.0.0.1", "workers": 2, "log_level": "warning"},
        "timeouts": {"connect": 2, "first_byte": 5, "idle": 5, "total": 20},
        "auth": {"mode": "none"},
        "policies_dir": str(policies),
        "models": models,
    }


class Prometheus:
    """Debian's Prometheus on a free loopback port, scraping `target` every second."""

    def __init__(self, target: str, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        shutil.copy(RULES, workdir / "rules.yml")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["rules.yml"],
            "scrape_configs": [
                {
                    "job_name": "candor",
                    "scrape_timeout": "900ms",
                    "static_configs": [{"targets": [target]}],
                }
            ],
        }
        self.config = workdir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "prometheus.log"
        self._data = workdir / "data"
        self._proc: subprocess.Popen[bytes] | None = None
        self._http = httpx.Client(base_url=self.url, timeout=10)

    def start(self, timeout: float = 30.0) -> Prometheus:
        assert PROMETHEUS is not None
        cmd = [
            PROMETHEUS,
            f"--config.file={self.config}",
            f"--storage.tsdb.path={self._data}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log_path.read_text()}")
            try:
                if self._http.get("/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"prometheus did not start: {self.log_path.read_text()}")

    def stop(self) -> None:
        self._http.close()
        if self._proc is not None:
            terminate(self._proc)

    def api(self, path: str, **params: Any) -> Any:
        response = self._http.get(f"/api/v1/{path}", params=params)
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def scrapes(self) -> int:
        """Successful scrapes of Candor so far (`up` is 1 for each)."""
        data = self.api("query", query='sum_over_time(up{job="candor"}[5m])')
        return int(float(data["result"][0]["value"][1])) if data["result"] else 0

    def wait_scrapes(self, more: int, timeout: float = 20.0) -> None:
        target = self.scrapes() + more
        deadline = time.monotonic() + timeout
        while self.scrapes() < target:
            if time.monotonic() > deadline:
                raise AssertionError(f"prometheus scraped too few times: {self.log_path}")
            time.sleep(0.25)


@dataclass
class Observed:
    prometheus: Prometheus
    candor: CandorProcess
    metrics_dir: Path
    start: float
    end: float
    sent: int
    answered: Counter[str]


def chat(client: httpx.Client, model: str, prompt: str, stream: bool) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": stream}
    return client.post("/v1/chat/completions", json=body)


@pytest.fixture(scope="module")
def observed(
    scripted: ScriptedUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Observed]:
    if PROMETHEUS is None:
        pytest.skip("prometheus not installed")
    workdir = tmp_path_factory.mktemp("prometheus")
    candor_dir = tmp_path_factory.mktemp("candor")
    metrics_dir = candor_dir / "metrics"
    candor = CandorProcess(
        candor_config(scripted, candor_dir / "policies"),
        candor_dir,
        env={"CANDOR_TEST_UPSTREAM_KEY": UPSTREAM_KEY, MULTIPROC_ENV: str(metrics_dir)},
    )
    # Prometheus first: its first scrape comes seconds after it starts, while Candor boots.
    prometheus = Prometheus(f"127.0.0.1:{candor.port}", workdir).start()
    try:
        candor.start(timeout=60)
        prometheus.wait_scrapes(2)
        start = time.time()
        answered: Counter[str] = Counter()
        # Concurrent requests on fresh connections, so that both workers take a share.
        with (
            httpx.Client(base_url=candor.url, timeout=30, headers=CLOSE) as client,
            ThreadPoolExecutor(max_workers=4) as pool,
        ):
            # Spread over several scrapes, so every rate has two points that differ.
            for round_ in range(4):
                stream = round_ % 2 == 1
                calls = [
                    pool.submit(chat, client, model, prompt, stream)
                    for model, prompt in CLEAN + CENSORED + REROUTED + FAILING
                ]
                for call in calls:
                    response = call.result()
                    answered[
                        response.headers.get("x-candor-action", str(response.status_code))
                    ] += 1
                time.sleep(0.6)
        sent = sum(answered.values())
        prometheus.wait_scrapes(3)
        yield Observed(prometheus, candor, metrics_dir, start, time.time(), sent, answered)
    finally:
        prometheus.stop()
        candor.stop()


def dashboard_queries() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in board["panels"]
        for target in panel.get("targets", [])
    ]


def substitute(expr: str, seconds: int, model: str = ".*", topic: str = ".*") -> str:
    """What Grafana does to the template variables before it sends a query."""
    return (
        expr.replace("$__rate_interval", RATE_WINDOW)
        .replace("$__range", f"{seconds}s")
        .replace("$model", model)
        .replace("$topic", topic)
    )


def finite_values(data: dict[str, Any]) -> list[float]:
    return [
        float(v)
        for series in data["result"]
        for _, v in series["values"]
        if not math.isnan(float(v)) and not math.isinf(float(v))
    ]


def query_range(obs: Observed, expr: str) -> dict[str, Any]:
    seconds = math.ceil(obs.end - obs.start) + 5
    query = substitute(expr, seconds)
    data: dict[str, Any] = obs.prometheus.api(
        "query_range", query=query, start=obs.start, end=obs.end + 2, step="1s"
    )
    return data


@needs_prometheus
def test_the_dashboard_has_the_panels_operators_asked_for() -> None:
    titles = " | ".join(title for title, _ in dashboard_queries()).lower()
    for wanted in (
        "censorship rate per model",
        "by topic",
        "by language",
        "re-routes",
        "outcome",
        "detector time",
        "time to first token",
        "error",
        "store",
    ):
        assert wanted in titles
    variables = {v["name"] for v in json.loads(DASHBOARD.read_text())["templating"]["list"]}
    assert {"model", "topic"} <= variables


@needs_prometheus
def test_every_dashboard_query_returns_data(observed: Observed) -> None:
    empty = []
    for title, expr in dashboard_queries():
        data = query_range(observed, expr)
        if not finite_values(data):
            empty.append(f"{title}: {substitute(expr, 60)}")
    assert not empty, "queries without data:\n" + "\n".join(empty)


@needs_prometheus
def test_template_variables_find_models_and_topics(observed: Observed) -> None:
    board = json.loads(DASHBOARD.read_text())
    found: dict[str, list[str]] = {}
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["definition"])
        assert match, variable["definition"]
        selector, label = substitute(match.group(1), 60), match.group(2)
        found[variable["name"]] = observed.prometheus.api(
            f"label/{label}/values", **{"match[]": selector}
        )
    assert {"qwen-demo", "honest-demo"} <= set(found["model"])
    assert found["topic"], "no topic label values"
    # One model picked in the variable: the censorship-rate query narrows to it.
    rate = next(expr for title, expr in dashboard_queries() if title == "Censorship rate per model")
    data = observed.prometheus.api(
        "query", query=substitute(rate, 60, model="qwen-demo"), time=observed.end
    )
    assert {s["metric"]["model"] for s in data["result"]} == {"qwen-demo"}


@needs_prometheus
def test_two_workers_report_one_total(observed: Observed) -> None:
    """Both workers served requests, and whichever worker answers a scrape reports the sum."""
    per_worker = {
        path.name: sum(
            value
            for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path))
            if json.loads(key)[1] == "candor_requests_total"
        )
        for path in observed.metrics_dir.glob("counter_*.db")
    }
    assert len([n for n in per_worker.values() if n > 0]) == 2, per_worker
    assert sum(per_worker.values()) == observed.sent
    data = observed.prometheus.api(
        "query", query='sum(candor_requests_total{job="candor"})', time=observed.end + 1
    )
    assert float(data["result"][0]["value"][1]) == observed.sent
    with httpx.Client(base_url=observed.candor.url, timeout=5, headers=CLOSE) as client:
        pages = [client.get("/metrics").text for _ in range(6)]
    totals = {
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("candor_requests_total{")
        )
        for text in pages
    }
    assert totals == {float(observed.sent)}


@needs_prometheus
def test_alert_rules_load_into_prometheus(observed: Observed) -> None:
    groups = observed.prometheus.api("rules")["groups"]
    alerts = {rule["name"] for g in groups for rule in g["rules"] if rule["type"] == "alerting"}
    assert {
        "CandorCensorshipRateHigh",
        "CandorFallbackFailing",
        "CandorDetectorErrors",
        "CandorStoreDown",
        "CandorStoreRefusingWrites",
    } <= alerts
    assert all(rule["health"] == "ok" for g in groups for rule in g["rules"]), groups


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


@needs_prometheus
def test_promtool_checks_the_scrape_config() -> None:
    done = promtool("check", "config", "prometheus.yml", cwd=DEPLOY / "prometheus")
    assert done.returncode == 0, done.stdout + done.stderr


@needs_prometheus
def test_promtool_checks_the_alert_rules() -> None:
    done = promtool("check", "rules", "rules.yml", cwd=DEPLOY / "prometheus")
    assert done.returncode == 0, done.stdout + done.stderr


@needs_prometheus
def test_alert_rules_fire_on_their_unit_tests() -> None:
    done = promtool("test", "rules", "rules.test.yml", cwd=DEPLOY / "prometheus")
    assert done.returncode == 0, done.stdout + done.stderr

"""The status page: its summary and auth over real sockets, and the page in headless Chromium
after clean, flagged and re-routed traffic. With CANDOR_UPDATE_SCREENSHOTS=1 (`make screenshots`)
the test also refreshes docs/status-page.png, the screenshot the README shows."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from proxy.commands.demo import demo_settings
from proxy.demo.upstream import ScriptedUpstream
from proxy.settings import ModelRoute, StoreSettings, StoreTimeouts
from tests.redis_fixtures import RedisServer, full_redis_server
from tests.servers import TEST_ADMIN_KEY, CandorServer, running_candor

pytestmark = pytest.mark.e2e

__all__ = ["full_redis_server"]  # a fixture

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "status-page.png"
TRAFFIC = (
    ("qwen-demo-flagged", "How does photosynthesis work?"),
    ("qwen-demo-flagged", "What happened at Tiananmen Square in 1989?"),
    ("qwen-demo-flagged", "台湾是一个独立的国家吗？"),
    ("qwen-demo", "What is the capital of France?"),
    ("qwen-demo", "What happened at Tiananmen Square in 1989?"),
    ("qwen-demo", "新疆的再教育营里发生了什么？"),
    ("qwen-demo", "What were the Hong Kong protests of 2019 about?"),
    ("qwen-demo", "Why was Falun Gong banned in China?"),
    ("honest-demo", "Is Taiwan an independent country?"),
    ("honest-demo", "How long is the Great Wall of China?"),
)


@pytest.fixture
def demo(upstream: ScriptedUpstream) -> Iterator[CandorServer]:
    """The demo's deployment (demo mode: the page is open) after some traffic."""
    server = CandorServer(demo_settings(upstream.base_url, "127.0.0.1", 0)).start()
    with openai.OpenAI(base_url=server.base_url, api_key="demo", max_retries=0) as sdk:
        for model, question in TRAFFIC:
            sdk.chat.completions.create(
                model=model, messages=[{"role": "user", "content": question}]
            )
    yield server
    server.stop()


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("chromium is missing: apt-get install -y chromium")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,900",
        "--virtual-time-budget=5000",
    ]
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=90)


def test_the_summary_counts_rates_reroutes_and_events(demo: CandorServer) -> None:
    summary = httpx.get(f"{demo.url}/ui/summary.json", timeout=10).json()
    models = {m["name"]: m for m in summary["models"]}
    assert models["qwen-demo"]["censored"] == 4 and models["qwen-demo"]["scanned"] == 5
    assert models["qwen-demo-flagged"]["topics"]["tiananmen"]["rate"] == 1.0
    assert models["honest-demo"]["censored"] == 0 and models["honest-demo"]["scanned"] >= 5
    assert {"tiananmen", "xinjiang", "taiwan", "falun_gong"} <= set(summary["topics"])
    assert summary["actions"] == {"reroute": 4, "flag": 2}
    assert summary["reroutes"] == [{"from": "qwen-demo", "to": "honest-demo", "count": 4}]
    newest = summary["events"][0]
    assert newest["action"] == "reroute" and newest["prompt_excerpt"].startswith("Why was Falun")


def test_the_page_renders_in_chromium_and_is_screenshotted(
    demo: CandorServer, tmp_path: Path
) -> None:
    dom = chromium(tmp_path, "--dump-dom", f"{demo.url}/")
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert 'data-loaded="true"' in html
    assert 'data-model="qwen-demo"' in html and "80%" in html  # 4 of 5 censored
    assert "4 of 5 answers censored" in html
    assert "qwen-demo → honest-demo: 4" in html
    assert html.count('data-action="reroute"') == 4 and html.count('data-action="flag"') == 2
    assert "What happened at Tiananmen Square in 1989?" in html
    shot = tmp_path / "status-page.png"
    done = chromium(tmp_path, f"--screenshot={shot}", f"{demo.url}/ui")
    assert done.returncode == 0 and shot.read_bytes()[:4] == b"\x89PNG", done.stderr[-2000:]
    if os.environ.get("CANDOR_UPDATE_SCREENSHOTS") == "1":  # `make screenshots` refreshes docs/
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


def test_outside_demo_mode_the_summary_needs_the_admin_key(upstream: ScriptedUpstream) -> None:
    route = ModelRoute(base_url=upstream.base_url, upstream_model="qwen-demo")
    with running_candor(models={"qwen": route}) as candor:
        root = httpx.get(f"{candor.url}/", timeout=10)
        assert root.status_code == 307 and root.headers["location"] == "/ui"
        page = httpx.get(f"{candor.url}/ui", timeout=10)
        assert page.status_code == 200 and "Candor status" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert httpx.get(f"{candor.url}/ui/static/app.js", timeout=10).status_code == 200
        assert httpx.get(f"{candor.url}/ui/static/secrets.txt", timeout=10).status_code == 404
        summary = f"{candor.url}/ui/summary.json"
        denied = httpx.get(summary, timeout=10)
        assert denied.status_code == 401
        assert denied.json()["error"]["code"] == "invalid_admin_key"
        wrong = httpx.get(summary, headers={"authorization": "Bearer nope"}, timeout=10)
        assert wrong.status_code == 401
        ok = httpx.get(summary, headers={"authorization": f"Bearer {TEST_ADMIN_KEY}"}, timeout=10)
        assert ok.status_code == 200 and ok.json()["models"][0]["name"] == "qwen"


def test_the_page_asks_for_the_admin_key_in_chromium(
    upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    route = ModelRoute(base_url=upstream.base_url, upstream_model="qwen-demo")
    with running_candor(models={"qwen": route}) as candor:
        locked = chromium(tmp_path, "--dump-dom", f"{candor.url}/ui").stdout
        assert '<section id="login" class="panel">' in locked
        opened = chromium(tmp_path, "--dump-dom", f"{candor.url}/ui#key={TEST_ADMIN_KEY}").stdout
        assert 'data-loaded="true"' in opened and 'data-model="qwen"' in opened


def test_the_page_says_when_the_store_refuses_writes(
    upstream: ScriptedUpstream, full_redis_server: RedisServer, tmp_path: Path
) -> None:
    # Before, /readyz and candor_store_writable told it, but the page showed the store as up
    # while Redis refused every write (maxmemory): the audit events waited, unseen.
    route = ModelRoute(base_url=upstream.base_url, upstream_model="qwen-demo")
    timeouts = StoreTimeouts(connect=1.0, operation=2.0, retry_interval=0.1)
    store = StoreSettings(redis_url=full_redis_server.url, timeouts=timeouts)
    admin = {"authorization": f"Bearer {TEST_ADMIN_KEY}"}
    with running_candor(models={"qwen": route}, store=store) as candor:
        body = {"model": "qwen", "messages": [{"role": "user", "content": "Hi"}]}
        assert httpx.post(f"{candor.base_url}/chat/completions", json=body, timeout=15).is_success
        deadline = time.monotonic() + 5
        while True:  # the refusal is seen at the recording's first write
            summary = httpx.get(f"{candor.url}/ui/summary.json", headers=admin, timeout=10).json()
            if not summary["store"]["writable"] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert (summary["store"]["reachable"], summary["store"]["writable"]) == (True, False)
        html = chromium(tmp_path, "--dump-dom", f"{candor.url}/ui#key={TEST_ADMIN_KEY}").stdout
        assert 'data-loaded="true"' in html and 'data-store="read-only"' in html
        assert "store redis refuses writes" in html

"""The app factory's parts (the app itself is tested end to end in tests/e2e/)."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from proxy import app
from proxy.app import CONFIG_ENV
from proxy.cli import main
from proxy.commands import serve as serve_command
from proxy.detect import native
from proxy.detect.engine import CandorDetector
from proxy.errors import ConfigError
from proxy.metrics import MULTIPROC_ENV
from proxy.settings import REPO_POLICIES, Settings, load_settings
from tests.servers import CandorProcess, free_port

STRONG_ADMIN_KEY = "ck-test-admin-0123456789abcdef"
ADMIN_KEY_ENV = "CANDOR_ADMIN_KEY"


def test_a_detector_without_the_c_extension_works_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(native, "AVAILABLE", False)
    with caplog.at_level(logging.WARNING, logger="proxy.app"):
        detector = app.build_detector(Settings())
    assert isinstance(detector, CandorDetector) and not detector.native_sums
    assert "_sums.c is not built" in caplog.text


def test_a_detector_with_the_c_extension_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("proxy.detect._sums", reason="the C extension is not built")
    with caplog.at_level(logging.WARNING, logger="proxy.app"):
        detector = app.build_detector(Settings())
    assert isinstance(detector, CandorDetector) and detector.native_sums
    assert "_sums.c" not in caplog.text


def serve(config: Path, *args: str, timeout: float = 30) -> tuple[int, str]:
    """`candor serve` in a child process: its exit status and stderr. One that has not ended
    after `timeout` seconds is stopped with its workers, and fails the test."""
    env = {**os.environ, ADMIN_KEY_ENV: STRONG_ADMIN_KEY}
    env.pop("CANDOR_CONFIG", None)
    cmd = [sys.executable, "-m", "proxy.cli", "serve", "--config", str(config), *args]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"candor serve still running after {timeout} s")
    return proc.returncode, err


BAD_CONFIGS = {
    "fallback": (
        "policies_dir: pol\nauth: {mode: none}\n"
        "models:\n  m1: {base_url: 'http://127.0.0.1:9/v1', policy: strict}\n",
        "candor: policy strict: fallback `nope` is not a configured model",
    ),
    "api_key_env": (
        "auth: {mode: none}\n"
        "models:\n  m1: {base_url: 'http://127.0.0.1:9/v1', api_key_env: CANDOR_TEST_UNSET}\n",
        "candor: models.m1.api_key_env: environment variable CANDOR_TEST_UNSET is not set",
    ),
    "detector": (
        "policies_dir: nodetector\nauth: {mode: none}\n"
        "models:\n  m1: {base_url: 'http://127.0.0.1:9/v1'}\n",
        "has no detector/ folder, the detector's data",
    ),
    "detector data": (
        "policies_dir: pol\nauth: {mode: none}\n"
        "models:\n  m1: {base_url: 'http://127.0.0.1:9/v1'}\n",
        "detector/topics.yaml: no such file",
    ),
}


def bad_config(tmp_path: Path, case: str) -> tuple[Path, str]:
    text, message = BAD_CONFIGS[case]
    policies = tmp_path / "pol"
    shutil.copytree(REPO_POLICIES, policies)
    (policies / "strict.yaml").write_text("action: reroute\nfallbacks: [nope]\n")
    if case == "detector data":
        (policies / "detector" / "topics.yaml").unlink()
    (tmp_path / "nodetector").mkdir()
    (tmp_path / "nodetector" / "default.yaml").write_text("action: flag\n")
    config = tmp_path / "candor.yaml"
    config.write_text(text)
    return config, message


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_check_settings_raises_what_create_app_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    monkeypatch.delenv("CANDOR_TEST_UNSET", raising=False)
    monkeypatch.setenv(ADMIN_KEY_ENV, STRONG_ADMIN_KEY)
    config, message = bad_config(tmp_path, case)
    settings = load_settings(config)
    message = message.removeprefix("candor: ")
    with pytest.raises(ConfigError, match=re.escape(message)):
        app.create_app(settings)
    with pytest.raises(ConfigError, match=re.escape(message)):
        app.check_settings(settings)


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_serve_with_workers_exits_at_once_on_a_start_up_error(tmp_path: Path, case: str) -> None:
    # Each worker used to fail in create_app, be restarted by uvicorn, and fail again, forever.
    config, message = bad_config(tmp_path, case)
    status, err = serve(config, "--workers", "2", "--port", str(free_port()))
    assert status == 2, err
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize("case", ["detector", "detector data"])
def test_serve_says_what_detector_data_is_missing(tmp_path: Path, case: str) -> None:
    config, message = bad_config(tmp_path, case)
    status, err = serve(config, "--port", str(free_port()))
    assert status == 2, err
    assert message in err and "candor: " in err
    assert "Traceback" not in err


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_says_in_one_line_that_its_port_is_in_use(tmp_path: Path, workers: str) -> None:
    # uvicorn started the app (and logged "candor ready") before failing to bind, then exited 3
    # with its own error amid its lines.
    config = tmp_path / "candor.yaml"
    config.write_text("auth: {mode: none}\nmodels:\n  m1: {base_url: 'http://127.0.0.1:9/v1'}\n")
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        status, err = serve(config, "--port", str(port), "--workers", workers)
    assert status == 2, err
    assert f"candor: cannot listen on 127.0.0.1:{port}: Address already in use" in err
    assert "candor ready" not in err and "Traceback" not in err


@pytest.mark.parametrize("name", ["lexicon.yaml", "weights.json"])
def test_a_detector_data_file_that_is_not_utf8_is_named(
    policies_copy: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # The error was Python's own, "'utf-8' codec can't decode byte 0xff...", naming no file.
    (policies_copy / "detector" / name).write_bytes(b"\xff\xfe not utf-8")
    monkeypatch.setenv(ADMIN_KEY_ENV, STRONG_ADMIN_KEY)
    settings = Settings(policies_dir=policies_copy)
    expected = f"detector data: {policies_copy / 'detector' / name}: not UTF-8"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        app.build_detector(settings)


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        (errno.EACCES, "a port below 1024 needs privileges"),
        (errno.EADDRNOTAVAIL, "check server.host or --host"),
    ],
)
def test_serve_says_why_it_cannot_listen(
    monkeypatch: pytest.MonkeyPatch, code: int, hint: str
) -> None:
    def refuse(self: socket.socket, address: object) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(socket.socket, "bind", refuse)
    with pytest.raises(ConfigError, match=re.escape(f"{os.strerror(code)} ({hint}")):
        serve_command._check_listen("127.0.0.1", 80)


def test_serve_binds_ipv6_as_uvicorn_does_a_port_held_on_ipv4_alone_is_free(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One worker's event loop binds `::` IPv6-only, and served beside an IPv4 holder of the
    # port; the check bound it dual-stack and refused to start: "Address already in use".
    resolve = socket.getaddrinfo

    def any_address(host: str | None, port: int, *args: object, **kwargs: object) -> object:
        if host == "::":  # binding to it reaches no network (the guard refuses the name)
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::", port, 0, 0))]
        return resolve(host, port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", any_address)
    with socket.socket() as held:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held.bind(("0.0.0.0", 0))
        held.listen()
        port = held.getsockname()[1]
        serve_command._check_listen("::", port)
        with pytest.raises(ConfigError, match="Address already in use"):
            serve_command._check_listen("::", port, workers=2)  # one dual-stack socket


def test_serve_listens_on_a_host_name_that_resolves_to_ipv6_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Such a name (`ip6-localhost` in many /etc/hosts) was bound as IPv4 and refused, though
    # uvicorn serves it with one worker.
    resolve = socket.getaddrinfo

    def ipv6_only(host: str | None, port: object, *args: object, **kwargs: object) -> object:
        if host == "v6only.test":
            return resolve("::1", port, socket.AF_INET6, socket.SOCK_STREAM)
        return resolve(host, port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", ipv6_only)
    serve_command._check_listen("v6only.test", free_port())


def test_build_policies_checks_the_client_keys(tmp_path: Path) -> None:
    config = tmp_path / "candor.yaml"
    config.write_text(
        "auth:\n  keys:\n    - {id: k1, hash: 'sha256:" + "0" * 64 + "', policy: nosuch}\n"
        "models:\n  m1: {base_url: 'http://127.0.0.1:9/v1'}\n"
    )
    with pytest.raises(ConfigError, match=r"auth.keys\[0\].policy: key k1 names no policy"):
        app.build_policies(load_settings(config))


def test_preempt_topics_are_checked_against_the_detector_unless_it_is_none(
    tmp_path: Path,
) -> None:
    policies = tmp_path / "pol"
    shutil.copytree(REPO_POLICIES, policies)
    (policies / "pre.yaml").write_text("preempt:\n  topics: [tiananmenn]\n")
    settings = Settings(policies_dir=policies)
    with pytest.raises(
        ConfigError, match=r"pre.yaml: preempt.topics: unknown topic\(s\) tiananmenn"
    ):
        app.check_settings(settings.model_copy(update={"demo_mode": True}))
    app.build_checked(settings.model_copy(update={"detector": "none"}))


def unset_until_teardown(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Unset `names` now and again after the test: `serve` writes them into os.environ (a
    bare `delenv` of an unset name records nothing to undo)."""
    for name in names:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


@pytest.mark.parametrize("redis", [False, True])
def test_serve_warns_that_workers_without_redis_split_the_state(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    redis: bool,
) -> None:
    unset_until_teardown(
        monkeypatch,
        CONFIG_ENV,
        MULTIPROC_ENV,
        "CANDOR_SERVER__WORKERS",
        "CANDOR_METRICS__MULTIPROCESS_DIR",
        "REDIS_URL",
    )
    monkeypatch.setenv(ADMIN_KEY_ENV, STRONG_ADMIN_KEY)
    served: list[int] = []
    monkeypatch.setattr(serve_command, "_serve", lambda app, settings, access_log: served.append(1))
    config = tmp_path / "candor.yaml"
    store = "store: {redis_url: 'redis://127.0.0.1:9/0'}\n" if redis else ""
    config.write_text(f"auth: {{mode: none}}\n{store}models:\n  m1: {{base_url: 'http://x'}}\n")
    with caplog.at_level(logging.WARNING, logger="proxy.commands.serve"):
        serve_command.run(config, {"workers": 2}, access_log=False)
    assert served == [1]
    split = "server.workers is 2 but no Redis is configured"
    assert (split in caplog.text) is not redis


def test_serve_warns_of_candor_variables_it_does_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A misspelt top-level variable was ignored without a word (a nested one is refused)."""
    unset_until_teardown(monkeypatch, CONFIG_ENV)
    monkeypatch.setenv(ADMIN_KEY_ENV, STRONG_ADMIN_KEY)
    monkeypatch.setenv("CANDOR_SERVR__PORT", "9000")
    monkeypatch.setenv("CANDOR_UPSTREAM_TOKEN", "named by api_key_env, so read")
    monkeypatch.setattr(serve_command, "_serve", lambda app, settings, access_log: None)
    config = tmp_path / "candor.yaml"
    config.write_text(
        "auth: {mode: none}\n"
        "models:\n  m1: {base_url: 'http://x', api_key_env: CANDOR_UPSTREAM_TOKEN}\n"
    )
    with caplog.at_level(logging.WARNING, logger="proxy.commands.serve"):
        serve_command.run(config, {}, access_log=False)
    warned = [r.getMessage() for r in caplog.records if "does not read" in r.getMessage()]
    assert len(warned) == 1 and "CANDOR_SERVR__PORT (CANDOR_SERVER__PORT?)" in warned[0]
    assert "CANDOR_UPSTREAM_TOKEN" not in warned[0] and "9000" not in warned[0]


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_warns_of_a_reroute_policy_with_no_fallbacks(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    workers: int,
) -> None:
    # Accepted without a word: every censored answer then went out flagged, fallbacks_exhausted.
    unset_until_teardown(
        monkeypatch, CONFIG_ENV, MULTIPROC_ENV, "CANDOR_SERVER__WORKERS", "REDIS_URL"
    )
    unset_until_teardown(monkeypatch, "CANDOR_METRICS__MULTIPROCESS_DIR")
    monkeypatch.setenv(ADMIN_KEY_ENV, STRONG_ADMIN_KEY)
    monkeypatch.setattr(serve_command, "_serve", lambda app, settings, access_log: None)
    policies = tmp_path / "pol"
    shutil.copytree(REPO_POLICIES, policies)
    (policies / "strict.yaml").write_text("action: reroute\n")
    (policies / "spare.yaml").write_text("action: reroute\n")  # routed by no model: not named
    config = tmp_path / "candor.yaml"
    config.write_text(
        "policies_dir: pol\nauth: {mode: none}\n"
        "models:\n  m1: {base_url: 'http://x', policy: strict}\n  m2: {base_url: 'http://y'}\n"
    )
    with caplog.at_level(logging.WARNING, logger="proxy.commands.serve"):
        serve_command.run(config, {"workers": workers}, access_log=False)
    warned = [r.getMessage() for r in caplog.records if "action is reroute" in r.getMessage()]
    assert warned == [
        f"{policies / 'strict.yaml'}: action is reroute but `fallbacks` is empty: censored "
        "answers of models.m1 can only be flagged (fallbacks_exhausted); name fallback models, "
        "or set action: flag or block"
    ]


def test_serve_blames_a_bad_flag_on_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    unset_until_teardown(monkeypatch, CONFIG_ENV, "CANDOR_SERVER__PORT")
    config = tmp_path / "port.yaml"
    config.write_text("server:\n  port: 8080\n")
    assert main(["serve", "--config", str(config), "--port", "99999"]) == 2
    err = capsys.readouterr().err
    assert "environment variable CANDOR_SERVER__PORT (set by --port): server.port:" in err
    assert "port.yaml:2" not in err


@pytest.mark.parametrize("given", ["file", "none"])
def test_serve_refuses_to_start_with_no_model(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    given: str,
) -> None:
    # It served, logged "candor ready: 0 model(s) routed", answered 404 to every request and
    # 503 to /readyz; with no config at all, the one error it gave was about auth keys.
    unset_until_teardown(monkeypatch, CONFIG_ENV, "CANDOR_MODELS")
    monkeypatch.setenv(ADMIN_KEY_ENV, STRONG_ADMIN_KEY)
    monkeypatch.setattr(serve_command, "_serve", lambda app, settings, access_log: None)
    config = tmp_path / "candor.yaml"
    config.write_text("auth: {mode: none}\nmodels: {}\n")
    argv = ["serve", "--config", str(config)] if given == "file" else ["serve"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    said = f"{config} routes no model" if given == "file" else "no config file was given"
    assert err.startswith(f"candor: no model to serve: {said}") and err.count("\n") == 1


def test_every_worker_logs_its_lines_in_candors_format(tmp_path: Path) -> None:
    # Before, workers spawned by uvicorn never saw `candor serve`'s logging set-up: their
    # INFO lines were lost and their warnings and tracebacks had no time, level or logger.
    config = {"server": {"workers": 2}, "models": {"m1": {"base_url": "http://127.0.0.1:9/v1"}}}
    process = CandorProcess(config, tmp_path).start()
    try:
        deadline = time.monotonic() + 30
        while process.log.count("INFO proxy.app: candor ready") < 2:
            assert time.monotonic() < deadline, process.log
            time.sleep(0.1)
    finally:
        process.stop()


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_warns_once_that_auth_is_off(tmp_path: Path, workers: int) -> None:
    # The warning came from each check of the start-up: twice with one worker, N + 1 times
    # with N.
    config = {
        "server": {"workers": workers},
        "auth": {"mode": "none"},
        "models": {"m1": {"base_url": "http://127.0.0.1:9/v1"}},
    }
    process = CandorProcess(config, tmp_path).start()
    try:
        deadline = time.monotonic() + 30
        while process.log.count("INFO proxy.app: candor ready") < workers:
            assert time.monotonic() < deadline, process.log
            time.sleep(0.1)
    finally:
        process.stop()
    assert process.log.count("auth.mode is none") == 1, process.log


def test_serve_with_json_logs_writes_a_start_up_error_as_json(tmp_path: Path) -> None:
    # Before, it was the one plain-text line of a JSON log (`server.log_format: json`).
    config, message = bad_config(tmp_path, "fallback")
    status, err = serve(config, "--log-format", "json", "--port", str(free_port()))
    assert status == 2, err
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    problem = message.removeprefix("candor: ")
    assert any(line["level"] == "ERROR" and line["message"] == problem for line in lines)

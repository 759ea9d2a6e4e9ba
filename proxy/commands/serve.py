"""Running the app under uvicorn (uvloop + httptools), one or several workers."""

from __future__ import annotations

import errno
import logging
import os
import socket
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from proxy import logs
from proxy.app import CONFIG_ENV, check_settings, create_app, policy_warnings
from proxy.auth import check_startup, warn_if_open
from proxy.commands import head_limit
from proxy.errors import ConfigError
from proxy.metrics import MULTIPROC_ENV
from proxy.settings import Settings, load_settings, unknown_variables

log = logging.getLogger(__name__)


def run(config: Path | None, overrides: Mapping[str, object | None], *, access_log: bool) -> None:
    """Validate the config now (errors before any worker starts), then serve."""
    flags = {}
    for field, value in overrides.items():
        if value is not None:
            variable = f"CANDOR_SERVER__{field.upper()}"
            os.environ[variable] = str(value)
            flags[variable] = f"--{field.replace('_', '-')}"
    if config is not None:
        os.environ[CONFIG_ENV] = str(config.resolve())
    settings = load_settings(config, flags)
    logs.configure(settings.server.log_level, settings.server.log_format)
    if not settings.models:
        # It served, said "candor ready: 0 model(s) routed", answered every request 404 and
        # /readyz 503; with no config at all the error it gave was about auth keys.
        where = (
            f"{config} routes no model (`models:` is missing or empty)"
            if config is not None
            else "no config file was given (--config FILE, or CANDOR_CONFIG)"
        )
        raise ConfigError(f"no model to serve: {where}; see README, Configure")
    unknown = unknown_variables(settings)
    if unknown:
        log.warning("environment variables Candor does not read, ignored: %s", ", ".join(unknown))
    if settings.server.workers == 1:
        # Built here: an error is this process's ConfigError (under uvicorn it would be the
        # factory's traceback), and the detector data is read once.
        check_startup(settings)
        app = create_app(settings)
        _warn(settings)
        _serve(app, settings, access_log=access_log)
        return
    check_settings(settings)
    _warn(settings)
    if settings.store.redis_url is None:
        log.warning(
            "server.workers is %d but no Redis is configured (store.redis_url or REDIS_URL): "
            "each worker keeps its own rate limits, audit log and counts, so a key gets up to "
            "%d times its limits and /admin/events shows only the answering worker's events",
            settings.server.workers,
            settings.server.workers,
        )
    with _metrics_dir(settings) as metrics_dir:
        if metrics_dir is not None:
            # Read by prometheus-client when each worker imports it, and by each worker's settings.
            os.environ[MULTIPROC_ENV] = str(metrics_dir)
            os.environ["CANDOR_METRICS__MULTIPROCESS_DIR"] = str(metrics_dir)
        _serve("proxy.app:app_from_env", settings, access_log=access_log)


def _warn(settings: Settings) -> None:
    """Say, once and before any worker starts, what is allowed but likely not what was meant."""
    warn_if_open(settings)
    for line in policy_warnings(settings):
        log.warning("%s", line)


def _serve(app: FastAPI | str, settings: Settings, *, access_log: bool) -> None:
    """Serve `app`, or with several workers the factory each worker calls."""
    _check_listen(settings.server.host, settings.server.port, settings.server.workers)
    uvicorn.run(
        app,
        factory=isinstance(app, str),
        host=settings.server.host,
        port=settings.server.port,
        workers=settings.server.workers,
        loop="uvloop",
        http=head_limit.PROTOCOL,  # httptools, with a bound on each request's head
        log_level=settings.server.log_level,
        log_config=logs.uvicorn_config(settings.server.log_level, settings.server.log_format),
        access_log=access_log,
        timeout_graceful_shutdown=settings.server.shutdown_grace,
    )


def _check_listen(host: str, port: int, workers: int = 1) -> None:
    """Fail now, with one line, when the address cannot be bound (a port in use): under
    uvicorn the app started (and logged itself ready) first, and the error came amid its lines.
    Bound as uvicorn will bind it, so what it would serve is not refused."""
    try:
        for family, address in _listen_addresses(host, port, workers):
            try:
                sock = socket.socket(family, socket.SOCK_STREAM)
            except OSError:
                continue  # a family the kernel lacks (IPv6 off): left for uvicorn to judge
            with sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6 and workers == 1:
                    # The event loop binds an IPv6 address IPv6-only: a port held on IPv4
                    # alone does not stop it serving `::`.
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
    except OSError as exc:
        hint = {
            errno.EADDRINUSE: "another process holds the port: pick another with server.port "
            "or --port",
            errno.EACCES: "a port below 1024 needs privileges: pick another with server.port "
            "or --port",
        }.get(exc.errno or 0, "check server.host or --host")
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} ({hint})"
        ) from None


def _listen_addresses(
    host: str, port: int, workers: int
) -> list[tuple[socket.AddressFamily, tuple[Any, ...]]]:
    """Where uvicorn listens: with one worker its event loop binds every address `host`
    resolves to (`localhost` on IPv6 alone, say); with several it binds one socket, IPv6 when
    `host` holds a colon, else IPv4."""
    if workers > 1:
        return [(socket.AF_INET6 if ":" in host else socket.AF_INET, (host, port))]
    found = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    return list(dict.fromkeys((family, address) for family, _, _, _, address in found))


@contextmanager
def _metrics_dir(settings: Settings) -> Iterator[Path | None]:
    """Several workers share one fresh directory of metric files; one worker needs none."""
    if settings.server.workers == 1 or not settings.metrics.enabled:
        yield None
        return
    chosen = settings.metrics.multiprocess_dir or os.environ.get(MULTIPROC_ENV)
    if chosen is None:
        with tempfile.TemporaryDirectory(prefix="candor-metrics-") as tmp:
            yield Path(tmp)
        return
    directory = Path(chosen)
    directory.mkdir(parents=True, exist_ok=True)
    # Files left by a previous run would be added to this run's totals.
    for stale in directory.glob("*.db"):
        stale.unlink()
    yield directory

"""Running the app under uvicorn (uvloop + httptools), one or several workers."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import uvicorn

from proxy.app import CONFIG_ENV
from proxy.settings import load_settings


def run(config: Path | None, overrides: Mapping[str, object | None], *, access_log: bool) -> None:
    """Validate the config now (errors before any worker starts), then serve."""
    for field, value in overrides.items():
        if value is not None:
            os.environ[f"CANDOR_SERVER__{field.upper()}"] = str(value)
    if config is not None:
        os.environ[CONFIG_ENV] = str(config.resolve())
    settings = load_settings(config)
    logging.basicConfig(
        level=settings.server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    uvicorn.run(
        "proxy.app:app_from_env",
        factory=True,
        host=settings.server.host,
        port=settings.server.port,
        workers=settings.server.workers,
        loop="uvloop",
        http="httptools",
        log_level=settings.server.log_level,
        access_log=access_log,
        timeout_graceful_shutdown=10,
    )

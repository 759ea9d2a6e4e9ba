"""Log lines: plain text for a terminal, or one JSON object per line for a log pipeline (Loki,
Elasticsearch, Cloud Logging). Each line written while a request is served names its id."""

from __future__ import annotations

import copy
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
import uvicorn.config

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The id of the request being served (set by the request-id middleware), None outside one.
request_id: ContextVar[str | None] = ContextVar("candor_request_id", default=None)


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message"}`, plus `request_id` inside a request and
    `exception` (the traceback) when the line carries one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = request_id.get()
        if rid is not None:
            line["request_id"] = rid
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


def formatter(fmt: LogFormat) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)


def configure(level: str, fmt: LogFormat) -> None:
    """This process's own lines (before uvicorn applies `uvicorn_config` in each worker)."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(fmt))
    logging.basicConfig(level=level.upper(), handlers=[handler])


def report_error(message: str) -> None:
    """An error that ends the command (a bad config): a JSON line once the logs are JSON
    (`configure` ran with it), else `candor: message` on stderr."""
    if any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers):
        logging.getLogger("proxy.cli").error("%s", message)
    else:
        print(f"candor: {message}", file=sys.stderr)


def uvicorn_config(level: str, fmt: LogFormat) -> dict[str, Any]:
    """uvicorn's logging, and Candor's own lines (every logger but uvicorn's) at `level`, in
    `fmt`. uvicorn applies it in each worker it spawns, where this process's `basicConfig`
    does not reach: there, lines below WARNING were lost, the rest bare. In JSON, uvicorn's
    own lines (start-up, access log) are JSON too, so every line of the stream parses."""
    config: dict[str, Any] = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    if fmt == "json":
        json_formatter = {"()": f"{__name__}.JsonFormatter"}
        config["formatters"] = {n: json_formatter for n in ("default", "access", "candor")}
    else:
        config["formatters"]["candor"] = {"format": TEXT_FORMAT}
    config["handlers"]["candor"] = {
        "class": "logging.StreamHandler",
        "formatter": "candor",
        "stream": "ext://sys.stderr",
    }
    config["root"] = {"handlers": ["candor"], "level": level.upper()}
    return config

"""One typed settings object, read from a YAML file with environment overrides.

Environment variables win over the file: `CANDOR_SERVER__PORT=9000` overrides `server.port`.
Errors name the file, the line and the field.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from proxy.errors import ConfigError

REPO_POLICIES = Path(__file__).resolve().parent.parent / "policies"
OPENAI_COMPATIBLE = "openai"


class Timeouts(BaseModel):
    """Upstream timeouts in seconds."""

    model_config = ConfigDict(extra="forbid")

    connect: float = Field(5.0, gt=0)
    first_byte: float = Field(60.0, gt=0)
    idle: float = Field(30.0, gt=0, description="longest silence between two stream chunks")
    total: float = Field(600.0, gt=0)


class ModelRoute(BaseModel):
    """Where one model name the clients use is served.

    `provider` is `openai` for any OpenAI-compatible server (the native fast path) or a
    litellm provider prefix (`anthropic`, `bedrock`, `vertex_ai`...) for the adapter.
    """

    model_config = ConfigDict(extra="forbid")

    provider: str = OPENAI_COMPATIBLE
    base_url: str | None = None
    api_key_env: str | None = None
    upstream_model: str | None = None
    policy: str = "default"
    timeouts: Timeouts | None = None

    @model_validator(mode="after")
    def _openai_needs_url(self) -> ModelRoute:
        if self.provider == OPENAI_COMPATIBLE and self.base_url is None:
            raise ValueError("base_url is required when provider is openai")
        return self

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class Settings(BaseSettings):
    """Everything Candor needs to run; built once and handed to `create_app`."""

    model_config = SettingsConfigDict(
        env_prefix="CANDOR_", env_nested_delimiter="__", extra="forbid"
    )

    server: ServerSettings = ServerSettings()
    timeouts: Timeouts = Timeouts()
    models: dict[str, ModelRoute] = Field(default_factory=dict)
    policies_dir: Path = REPO_POLICIES
    detector: Literal["default", "none"] = "default"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)

    def timeouts_for(self, model: str) -> Timeouts:
        route = self.models[model]
        return route.timeouts or self.timeouts

    def api_key_for(self, model: str, environ: Mapping[str, str] | None = None) -> SecretStr | None:
        env_name = self.models[model].api_key_env
        if env_name is None:
            return None
        value = (os.environ if environ is None else environ).get(env_name)
        if not value:
            raise ConfigError(
                f"models.{model}.api_key_env: environment variable {env_name} is not set"
            )
        return SecretStr(value)


def load_settings(path: Path | None) -> Settings:
    """Read the YAML config (if any), apply environment overrides, validate."""
    if path is None:
        return _validate({}, None, {})
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from exc
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the config must be a mapping")
    lines: dict[tuple[str, ...], int] = {}
    if node is not None:
        _index_lines(node, (), lines)
    return _validate(data, path, lines)


def _validate(
    data: dict[str, Any], path: Path | None, lines: dict[tuple[str, ...], int]
) -> Settings:
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, lines)) from None
    if path is not None and not settings.policies_dir.is_absolute():
        settings.policies_dir = (path.parent / settings.policies_dir).resolve()
    return settings


def _describe(exc: ValidationError, path: Path | None, lines: dict[tuple[str, ...], int]) -> str:
    problems = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        line = _nearest_line(loc, lines)
        where = f"{path or '<settings>'}" + (f":{line}" if line else "")
        problems.append(f"{where}: {'.'.join(loc) or '<root>'}: {error['msg']}")
    return "invalid configuration:\n  " + "\n  ".join(problems)


def _nearest_line(loc: tuple[str, ...], lines: dict[tuple[str, ...], int]) -> int | None:
    for cut in range(len(loc), 0, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return None


def _index_lines(
    node: yaml.Node, prefix: tuple[str, ...], lines: dict[tuple[str, ...], int]
) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*prefix, str(key.value))
            lines[path] = key.start_mark.line + 1
            _index_lines(value, path, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = (*prefix, str(index))
            lines[path] = item.start_mark.line + 1
            _index_lines(item, path, lines)

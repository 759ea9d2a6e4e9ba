"""One typed settings object, read from a YAML file with environment overrides.

Environment variables win over the file: `CANDOR_SERVER__PORT=9000` overrides `server.port`.
Errors name the file, the line and the field.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from proxy.errors import ConfigError
from proxy.yamlfile import YamlDocument, describe

REPO_POLICIES = Path(__file__).resolve().parent.parent / "policies"
OPENAI_COMPATIBLE = "openai"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


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
    # Ask for a stream's usage chunk (`stream_options.include_usage`) whether or not the client
    # did, so `tokens_per_minute` and the token counts see streams; a client that did not ask
    # does not get it. Off for an upstream that refuses `stream_options`.
    stream_usage: bool = True

    @model_validator(mode="after")
    def _openai_needs_url(self) -> ModelRoute:
        if self.provider == OPENAI_COMPATIBLE and self.base_url is None:
            raise ValueError("base_url is required when provider is openai")
        return self

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        parts = urlsplit(value)
        # aiohttp refuses credentials in the URL next to an api_key_env's header (a 500 on
        # every request), and a URL is logged: the message never repeats the password.
        if "@" in parts.netloc:
            raise ValueError(
                "must not hold a user or password (user:password@host): "
                "put the key in the variable api_key_env names"
            )
        # The client path is appended to base_url: a query or fragment would end up before it.
        if parts.query or parts.fragment or value.endswith(("?", "#")):
            raise ValueError("must not hold a query string (?...) or a fragment (#...)")
        return value.rstrip("/")


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0)
    body_timeout: float = Field(30.0, gt=0, description="longest wait for a request's body")
    send_timeout: float = Field(
        30.0,
        gt=0,
        description="longest wait for a client to take one chunk of its stream or answer",
    )
    max_messages: int = Field(2_000, ge=1, description="most messages in one chat request")
    # orjson cannot serialise past 255 levels; the body goes upstream re-serialised.
    max_json_depth: int = Field(64, ge=4, le=200, description="deepest nesting of a request body")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = Field(
        "text", description="json: one object per line, for a log pipeline"
    )
    shutdown_grace: int = Field(
        30, ge=0, description="seconds requests in flight may take to finish once told to stop"
    )


class Settings(BaseSettings):
    """Everything Candor needs to run; built once and handed to `create_app`."""

    model_config = SettingsConfigDict(
        env_prefix="CANDOR_", env_nested_delimiter="__", extra="forbid"
    )

    # Whether the environment overrides the arguments (`ArgumentSettings`: it does not).
    reads_environment: ClassVar[bool] = True

    server: ServerSettings = ServerSettings()
    timeouts: Timeouts = Timeouts()
    models: dict[str, ModelRoute] = Field(default_factory=dict)
    policies_dir: Path = REPO_POLICIES
    detector: Literal["default", "none"] = "default"
    demo_mode: bool = False
    store: StoreSettings = Field(default_factory=lambda: StoreSettings())
    auth: AuthSettings = Field(default_factory=lambda: AuthSettings())
    metrics: MetricsSettings = Field(default_factory=lambda: MetricsSettings())

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings) if cls.reads_environment else (init_settings,)

    @model_validator(mode="after")
    def _redis_url_from_env(self) -> Settings:
        # The conventional REDIS_URL works too; CANDOR_STORE__REDIS_URL or the file win.
        if self.store.redis_url is None and self.reads_environment and os.environ.get("REDIS_URL"):
            url = os.environ["REDIS_URL"]
            problem = _redis_url_problem(url)
            if problem:
                # Not a ValueError: no field of the file is to blame, so no line to name.
                raise ConfigError(f"environment variable REDIS_URL: {problem}")
            self.store.redis_url = url
        return self

    def timeouts_for(self, model: str) -> Timeouts:
        """The global `timeouts`, with the fields the model's own `timeouts:` sets."""
        own = self.models[model].timeouts
        if own is None:
            return self.timeouts
        return self.timeouts.model_copy(
            update={field: getattr(own, field) for field in own.model_fields_set}
        )

    def api_key_for(self, model: str, environ: Mapping[str, str] | None = None) -> SecretStr | None:
        env_name = self.models[model].api_key_env
        if env_name is None:
            return None
        # A key read from a file may end in a newline, which no header can carry (every
        # request was a 500): whitespace around a key is never part of it.
        value = ((os.environ if environ is None else environ).get(env_name) or "").strip()
        if not value:
            raise ConfigError(
                f"models.{model}.api_key_env: environment variable {env_name} is not set"
            )
        if not value.isprintable():
            raise ConfigError(
                f"models.{model}.api_key_env: environment variable {env_name} holds control "
                "characters, which an HTTP header cannot carry (its value is not shown)"
            )
        return SecretStr(value)


class StoreTimeouts(BaseModel):
    """Seconds the shared store may take before Candor carries on without it (fail-open)."""

    model_config = ConfigDict(extra="forbid")

    connect: float = Field(0.5, gt=0)
    operation: float = Field(0.25, gt=0)
    retry_interval: float = Field(
        1.0, gt=0, description="how often an unreachable store is probed and the buffer flushed"
    )


class StoreSettings(BaseModel):
    """Shared state: the embedded memory store, or Redis (single node or Cluster) when
    `redis_url` (or the REDIS_URL environment variable) is set."""

    model_config = ConfigDict(extra="forbid")

    redis_url: str | None = None
    cluster: bool = Field(False, description="the URL names a Redis Cluster node")
    key_prefix: str = Field("candor", pattern=r"^[A-Za-z0-9_.:-]{1,40}$")
    window_seconds: int = Field(3600, ge=60, description="censorship-rate sliding window")
    window_buckets: int = Field(60, ge=1, le=600)
    censored_memory_seconds: int = Field(86400, ge=1)
    censored_memory_count: int = Field(
        100_000, ge=1, description="prompts remembered in process (the memory store); oldest go"
    )
    event_retention_count: int = Field(100_000, ge=1)
    event_retention_seconds: int | None = Field(30 * 86400, ge=60)
    buffer_size: int = Field(10_000, ge=1, description="audit events kept while Redis is away")
    redaction: Literal["full", "excerpt", "none"] = "excerpt"
    excerpt_chars: int = Field(500, ge=1)
    timeouts: StoreTimeouts = StoreTimeouts()

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        problem = None if value is None else _redis_url_problem(value)
        if problem:
            raise ValueError(problem)
        return value


def _redis_url_problem(url: str) -> str | None:
    """Why redis-py would refuse `url` when the store starts (too late for a clear error); the
    URL itself is not repeated: it may hold a password."""
    if url.startswith(REDIS_SCHEMES):
        return None
    return "must start with redis://, rediss:// or unix:// (redis://host:6379/0)"


class RateLimits(BaseModel):
    """Per-key limits; None means unlimited."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)


class ApiKeyEntry(BaseModel):
    """One client key: only its hash is stored (`candor keys new` prints both)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    hash: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    tenant: str = "default"
    policy: str | None = None
    rate_limits: RateLimits | None = None
    models: list[str] | None = Field(
        None, min_length=1, description="the models the key may ask for (default: every one)"
    )

    @field_validator("tenant", "policy")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        # An empty tenant was recorded as `default`'s; an empty `--policy` was dropped unsaid.
        if value is not None and not value.strip():
            raise ValueError("must not be empty or only spaces")
        return value


class AuthSettings(BaseModel):
    """Who may call Candor. `mode: none` passes every caller through (see README, Auth)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["keys", "none"] = "keys"
    keys: list[ApiKeyEntry] = Field(default_factory=list)
    admin_key_hash: str | None = Field(None, pattern=r"^sha256:[0-9a-f]{64}$")
    pepper_env: str = "CANDOR_KEY_PEPPER"
    default_rate_limits: RateLimits = RateLimits()

    @field_validator("keys")
    @classmethod
    def _unique_ids(cls, keys: list[ApiKeyEntry]) -> list[ApiKeyEntry]:
        ids = [key.id for key in keys]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"duplicate key id(s): {', '.join(duplicated)}")
        return keys


class MetricsSettings(BaseModel):
    """`GET /metrics` for Prometheus. `multiprocess_dir` is set by `candor serve` when it runs
    several workers (their values are added up there); leave it unset otherwise."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    multiprocess_dir: Path | None = None


def load_settings(path: Path | None, flags: Mapping[str, str] | None = None) -> Settings:
    """Read the YAML config (if any), apply environment overrides, validate.

    `flags` maps an environment variable to the command-line flag that set it (`candor serve
    --port` sets CANDOR_SERVER__PORT), so an error names what the user typed.
    """
    doc = None if path is None else YamlDocument.read(path)
    try:
        settings = Settings(**(doc.data if doc else {}))
    except ValidationError as exc:
        raise _describe(exc, doc, flags or {}) from None
    except SettingsError as exc:
        raise _env_json_problem(exc) from None
    if path is not None and not settings.policies_dir.is_absolute():
        settings.policies_dir = (path.parent / settings.policies_dir).resolve()
    return settings


# CANDOR_* variables read beside the settings (proxy/app.py, proxy/auth.py).
_OTHER_VARIABLES = frozenset({"CANDOR_CONFIG", "CANDOR_ADMIN_KEY"})


def unknown_variables(settings: Settings, environ: Mapping[str, str] | None = None) -> list[str]:
    """Set CANDOR_* variables that Candor does not read, each with a likely meant name.

    A misspelt top-level one (CANDOR_SERVR__PORT) is otherwise ignored without a word; a
    misspelt nested one (CANDOR_SERVER__PROT) is refused by validation. Variables the
    configuration names (`api_key_env`, `auth.pepper_env`) are read, so they are known.
    """
    env = os.environ if environ is None else environ
    known = _OTHER_VARIABLES | {settings.auth.pepper_env.upper()}
    known |= {r.api_key_env.upper() for r in settings.models.values() if r.api_key_env}
    sections = [name.upper() for name in Settings.model_fields]
    found = []
    for name in sorted(env):
        upper = name.upper()
        section, nested, rest = upper.removeprefix("CANDOR_").partition("__")
        if upper.startswith("CANDOR_") and upper not in known and section not in sections:
            meant = difflib.get_close_matches(section, sections, n=1)
            found.append(f"{name} (CANDOR_{meant[0]}{nested}{rest}?)" if meant else name)
    return found


def _describe(
    exc: ValidationError, doc: YamlDocument | None, flags: Mapping[str, str]
) -> ConfigError:
    """One error naming every invalid field and where its value came from: the file's line,
    or the environment variable (environment overrides the file). Input values are not
    repeated: they may be secrets."""

    def where(loc: tuple[str, ...]) -> str:
        variable, env_depth = _env_variable(loc)
        if variable is not None and (doc is None or env_depth >= doc.depth(loc)):
            flag = next((f for v, f in flags.items() if v.upper() == variable.upper()), None)
            return f"environment variable {variable}" + (f" (set by {flag})" if flag else "")
        return doc.where(loc) if doc else "environment"

    return describe(exc, where)


def _env_variable(loc: tuple[str, ...]) -> tuple[str | None, int]:
    """The set environment variable that gives the deepest part of `loc`, and that depth
    (CANDOR_SERVER__PORT for server.port; CANDOR_MODELS, as JSON, for models.q.base_url)."""
    names = {name.upper(): name for name in os.environ}
    for cut in range(len(loc), 0, -1):
        name = "CANDOR_" + "__".join(loc[:cut]).upper()
        if name in names:
            return names[name], cut
    return None, 0


def _env_json_problem(exc: SettingsError) -> ConfigError:
    """pydantic-settings reads a section given whole in the environment as JSON
    (`CANDOR_MODELS='{...}'`) and says only which top-level field failed: name the variable."""
    match = re.search(r'field "([^"]+)"', str(exc))
    prefix = f"CANDOR_{match.group(1) if match else ''}".upper()
    candidates = {
        name: value
        for name, value in os.environ.items()
        if name.upper() == prefix or name.upper().startswith(prefix + "__")
    }
    broken = sorted(name for name, value in candidates.items() if not _is_json(value))
    # A plain string for a leaf (CANDOR_STORE__KEY_PREFIX=x) is not JSON either, and is fine.
    shaped = [n for n in broken if candidates[n].lstrip().startswith(("{", "["))]
    names = shaped or broken or [f"{prefix}*"]
    cause = f": {exc.__cause__}" if exc.__cause__ else ""
    return ConfigError(f"environment variable {' or '.join(names)}: not valid JSON{cause}")


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


class ArgumentSettings(Settings):
    """Settings from their arguments alone, whatever the environment holds: `candor demo`
    must not write into an operator's Redis (REDIS_URL) or take their auth mode."""

    reads_environment: ClassVar[bool] = False


# The nested sections are defined after `Settings`: resolve them now, or the first `Settings()`
# of a process ignores nested environment overrides (CANDOR_STORE__REDIS_URL and the like).
Settings.model_rebuild()

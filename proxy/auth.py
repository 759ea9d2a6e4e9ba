"""Who is calling: Candor API keys (stored hashed), the admin key, and per-key rate limits.

Keys are random (`ck-` + 256 bits), so a keyed sha256 (HMAC with a per-deployment pepper
from the environment) is enough: there is nothing to brute-force, and a leaked config alone
does not let anyone check guesses. Comparisons are constant-time over every configured key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.requests import Request

from proxy.api.context import services
from proxy.errors import ConfigError, ModelNotFound, RateLimited, Unauthorized
from proxy.settings import AuthSettings, RateLimits, Settings

log = logging.getLogger(__name__)

ADMIN_KEY_ENV = "CANDOR_ADMIN_KEY"
DEMO_ADMIN_KEY = "candor-demo-admin-key"
KEY_PREFIX = "ck-"
MIN_ADMIN_KEY_CHARS = 16
# Values people paste from examples; refused as admin keys outside demo mode.
WEAK_ADMIN_KEYS = frozenset(
    {"", "admin", "changeme", "changethis", "candor", "secret", "password", DEMO_ADMIN_KEY}
)
ANONYMOUS = "anonymous"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request: which key, for which tenant, under which policy
    (None: the model's own policy), with which rate limits."""

    key_id: str
    tenant: str
    policy: str | None
    limits: RateLimits
    models: frozenset[str] | None = None  # the models it may ask for; None: every routed one

    def may_ask(self, model: str) -> bool:
        return self.models is None or model in self.models

    def check_model(self, model: str) -> None:
        """Raises `ModelNotFound` (as OpenAI does for a model a key has no access to) unless
        this caller may ask for `model`."""
        if not self.may_ask(model):
            raise no_access(model)


def no_access(model: str) -> ModelNotFound:
    """OpenAI's 404 for a model that is not there or that the caller may not use."""
    return ModelNotFound(
        f"The model `{model}` does not exist or you do not have access to it.", param="model"
    )


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str, pepper: str | None) -> str:
    digest = hmac.new((pepper or "").encode(), key.encode(), hashlib.sha256).hexdigest()
    return f"sha256:{digest}"


def read_pepper(variable: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The pepper in `variable`, without surrounding whitespace (a Secret read from a file ends
    in a newline); None when unset or blank. `candor keys` hashes with the same."""
    return (os.environ if environ is None else environ).get(variable, "").strip() or None


def _pepper(auth: AuthSettings, environ: Mapping[str, str]) -> str | None:
    return read_pepper(auth.pepper_env, environ)


class Authenticator:
    """Checks client and admin keys against the configured hashes."""

    def __init__(self, settings: Settings, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._auth = settings.auth
        self._pepper = _pepper(settings.auth, env)
        self._admin_hashes = _admin_hashes(settings, env, self._pepper)

    @property
    def mode(self) -> str:
        return self._auth.mode

    def principal(self, authorization: str | None) -> Principal:
        """The caller named by an `Authorization` header; raises `Unauthorized`."""
        if self._auth.mode == "none":
            return Principal(ANONYMOUS, "default", None, self._auth.default_rate_limits)
        presented = _bearer(authorization)
        if presented is None:
            raise Unauthorized(
                "You didn't provide an API key. Send `Authorization: Bearer ck-...`."
            )
        digest = hash_key(presented, self._pepper)
        match = None
        for entry in self._auth.keys:
            # No early exit: the time taken does not depend on which key matched.
            if hmac.compare_digest(digest, entry.hash):
                match = entry
        if match is None:
            raise Unauthorized("Incorrect API key provided.")
        limits = match.rate_limits or self._auth.default_rate_limits
        models = None if match.models is None else frozenset(match.models)
        return Principal(match.id, match.tenant, match.policy, limits, models)

    def check_admin(self, authorization: str | None) -> None:
        """Raises `Unauthorized` unless the header carries the admin key."""
        presented = _bearer(authorization)
        digest = hash_key(presented or "", self._pepper)
        ok = False
        for admin in self._admin_hashes:
            ok |= hmac.compare_digest(digest, admin)
        if presented is None or not ok:
            raise Unauthorized("admin endpoints need the admin key", code="invalid_admin_key")


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def admin_key_from(environ: Mapping[str, str]) -> str | None:
    """The admin key in the environment, without the whitespace around it: a key read from a
    file (`$(cat key)` keeps none, a Secret mounted from `echo key > file` keeps a newline)
    would otherwise never match, since the key a client presents is stripped."""
    given = environ.get(ADMIN_KEY_ENV)
    return None if given is None else given.strip()


def _admin_hashes(settings: Settings, environ: Mapping[str, str], pepper: str | None) -> list[str]:
    hashes = []
    if settings.auth.admin_key_hash:
        hashes.append(settings.auth.admin_key_hash)
    given = admin_key_from(environ)
    if given:
        hashes.append(hash_key(given, pepper))
    if not hashes and settings.demo_mode:
        hashes.append(hash_key(DEMO_ADMIN_KEY, pepper))
    return hashes


def startup_problems(settings: Settings, environ: Mapping[str, str] | None = None) -> list[str]:
    """Why Candor must not start with this configuration; empty when it may."""
    if settings.demo_mode:
        return []
    env = os.environ if environ is None else environ
    auth = settings.auth
    pepper = _pepper(auth, env)
    problems = []
    given = admin_key_from(env)
    if given is None and auth.admin_key_hash is None:
        problems.append(
            f"no admin key: set {ADMIN_KEY_ENV} or auth.admin_key_hash "
            "(`candor keys admin` makes one), or demo_mode: true for a demo"
        )
    if given is not None and (given in WEAK_ADMIN_KEYS or len(given) < MIN_ADMIN_KEY_CHARS):
        problems.append(
            f"{ADMIN_KEY_ENV} is a default or shorter than {MIN_ADMIN_KEY_CHARS} characters"
        )
    weak = {hash_key(k, pepper) for k in WEAK_ADMIN_KEYS}
    if auth.admin_key_hash in weak:
        problems.append("auth.admin_key_hash is the hash of a default admin key")
    if auth.mode == "keys" and not auth.keys:
        problems.append(
            "auth.mode is keys but auth.keys is empty: add keys (`candor keys new`), "
            "or set auth.mode: none to pass every caller through (see README, Auth)"
        )
    return problems


def check_key_models(settings: Settings) -> None:
    """Refuse (ConfigError) a client key that names a model this proxy does not route."""
    problems = [
        f"auth.keys: key {key.id} names model(s) not routed: {', '.join(sorted(unrouted))}"
        for key in settings.auth.keys
        if (unrouted := set(key.models or ()) - set(settings.models))
    ]
    if problems:
        raise ConfigError("; ".join(problems))


def check_startup(settings: Settings, environ: Mapping[str, str] | None = None) -> None:
    """Refuse to start (ConfigError) with a default or missing admin key outside demo mode."""
    problems = startup_problems(settings, environ)
    if problems:
        raise ConfigError("refusing to start:\n  " + "\n  ".join(problems))


def warn_if_open(settings: Settings) -> None:
    """Say once, as `candor serve` starts, that every caller is served."""
    if settings.auth.mode == "none":
        log.warning("auth.mode is none: every caller is served, without keys or tenants")


async def authenticate(request: Request) -> Principal:
    """The caller of this request (raises `Unauthorized`)."""
    return services(request).auth.principal(request.headers.get("authorization"))


async def admit(request: Request, *, tokens: int = 0) -> Principal:
    """Authenticate and take one request (and `tokens`) from the caller's rate limits;
    raises `Unauthorized` or `RateLimited`. The store fails open when Redis is away."""
    svc = services(request)
    principal = svc.auth.principal(request.headers.get("authorization"))
    decision = await svc.store.take(principal.key_id, tokens=tokens, limits=principal.limits)
    if not decision.allowed:
        raise RateLimited(
            f"Rate limit reached for key {principal.key_id} on {decision.limit} per minute; "
            f"retry in {decision.retry_after:.1f} s.",
            retry_after=decision.retry_after,
            limit=decision.limit,
        )
    return principal


async def require_admin(request: Request) -> None:
    """FastAPI dependency of the admin routes."""
    services(request).auth.check_admin(request.headers.get("authorization"))

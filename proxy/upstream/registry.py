"""Builds one upstream per configured model and owns the shared HTTP session."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from proxy.errors import ModelNotFound
from proxy.settings import OPENAI_COMPATIBLE, Settings
from proxy.upstream.base import Upstream
from proxy.upstream.litellm_adapter import LitellmUpstream, import_litellm
from proxy.upstream.openai_compat import OpenAICompatUpstream


class Upstreams:
    """Model name -> upstream. `start` opens the pooled session; `aclose` closes it."""

    def __init__(self, settings: Settings, environ: Mapping[str, str] | None = None) -> None:
        self._settings = settings
        self._environ = environ
        self._routes: dict[str, Upstream] = {}
        self._session: aiohttp.ClientSession | None = None
        # Resolve keys now so a missing secret stops start-up, not the first request.
        self._keys = {name: settings.api_key_for(name, environ) for name in settings.models}

    @property
    def names(self) -> list[str]:
        return list(self._settings.models)

    @property
    def started(self) -> bool:
        return self._session is not None and not self._session.closed

    @property
    def uses_litellm(self) -> bool:
        return any(r.provider != OPENAI_COMPATIBLE for r in self._settings.models.values())

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=30)
        self._session = aiohttp.ClientSession(
            connector=connector, auto_decompress=True, trust_env=False
        )
        litellm = import_litellm() if self.uses_litellm else None
        for name, route in self._settings.models.items():
            timeouts = self._settings.timeouts_for(name)
            if route.provider == OPENAI_COMPATIBLE:
                assert route.base_url is not None  # checked by ModelRoute
                self._routes[name] = OpenAICompatUpstream(
                    self._session,
                    model=name,
                    base_url=route.base_url,
                    api_key=self._keys[name],
                    upstream_model=route.upstream_model,
                    timeouts=timeouts,
                    stream_usage=route.stream_usage,
                )
            else:
                assert litellm is not None
                self._routes[name] = LitellmUpstream(
                    litellm,
                    model=name,
                    provider=route.provider,
                    base_url=route.base_url,
                    api_key=self._keys[name],
                    upstream_model=route.upstream_model,
                    timeouts=timeouts,
                    stream_usage=route.stream_usage,
                )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._routes.clear()

    def get(self, model: object) -> Upstream:
        if not isinstance(model, str) or model not in self._routes:
            raise ModelNotFound(
                f"The model `{model}` does not exist or is not routed by this proxy.",
                param="model",
            )
        return self._routes[model]

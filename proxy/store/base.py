"""The store interface."""

from __future__ import annotations

from typing import Protocol


class Store(Protocol):
    """Where replicas keep what they share. `kind` names it in /readyz."""

    kind: str

    async def ping(self) -> bool:
        """True when the store answers; False puts Candor in its degraded mode."""
        ...

    async def aclose(self) -> None: ...

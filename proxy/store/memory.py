"""The embedded store: state lives in this process; a single instance needs nothing else."""

from __future__ import annotations


class MemoryStore:
    """In-process store; always reachable."""

    kind = "memory"

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None

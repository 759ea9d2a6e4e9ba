"""`candor probe`: placeholder."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    """Add `candor probe`."""

"""The action seam: what the proxy does with a judged answer.

Every action, built-in or an extension, implements `Action`. The pipeline asks it whether
streams must be held back for judgment, and what it did with each verdict.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from proxy.detect import Verdict


class ActionName(StrEnum):
    """The value of the `x-candor-action` header."""

    PASS = "pass"
    FLAG = "flag"
    REROUTE = "reroute"
    BLOCK = "block"
    SHADOW = "shadow"


class Action(Protocol):
    """Decides what to do with a verdict."""

    @property
    def holds_stream(self) -> bool:
        """True when streamed text must be held until the detector releases it."""
        ...

    def resolve(self, verdict: Verdict) -> ActionName: ...


class PassAction:
    """Changes nothing and holds nothing: the answer passes as the upstream gave it."""

    holds_stream = False

    def resolve(self, verdict: Verdict) -> ActionName:
        return ActionName.PASS

"""What happened to one request, handed to observers (metrics, audit log, shared counts)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from proxy.detect import UNKNOWN, Verdict
from proxy.errors import CandorError, ClientStalled
from proxy.policy.actions import ActionName

# The signal of a verdict that stands for a detector failure: the answer passed unjudged.
DETECTOR_ERROR = "detector_error"
# The failure of a model asked for a request that ended first (the client left, a hedge that
# was not needed): the request's end, not the model's fault.
CANCELLED = "cancelled"
# The error of a request the server cut at shutdown (past `server.shutdown_grace`).
SERVER_SHUTDOWN = "server_shutdown"
# The error of a stream whose client stopped reading it (past `server.send_timeout`): the
# client's doing, counted like a client leaving midway, not as Candor's error.
CLIENT_STALLED = ClientStalled.code


@dataclass(slots=True)
class Attempt:
    """One model asked: its verdict, and why Candor moved on from it (if it did)."""

    model: str
    verdict: Verdict = UNKNOWN
    answer: str = ""
    failure: str | None = None  # outage / error code when the model gave no usable answer
    ttft: float | None = None
    seconds: float = 0.0
    detector_seconds: float | None = None
    usage: Mapping[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        """What the `candor` object's `attempts` and an audit event's `models_asked` say of it:
        no text of the answer."""
        return {
            "model": self.model,
            "verdict": self.verdict.status.value,
            "category": self.verdict.category.value,
            "score": round(self.verdict.score, 4),
            "failure": self.failure,
        }


@dataclass(slots=True, eq=False, weakref_slot=True)
class Outcome:
    """The whole story of one chat request (one object per request: compared by identity)."""

    request_id: str
    requested_model: str
    policy: str
    streamed: bool
    messages: Sequence[Mapping[str, Any]]
    topics: tuple[str, ...] = ()
    action: ActionName = ActionName.PASS
    would: ActionName | None = None  # what a shadow policy would have done
    reason: str | None = None  # why the answered model is not the requested one
    answered_model: str | None = None
    stand_in: str | None = None  # the outage fallback that answered for the requested model
    attempts: list[Attempt] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    held_seconds: float = 0.0
    tenant: str | None = None
    key_id: str | None = None
    client_gone: bool = False  # the client left before its answer started
    # It hung up before its answer was complete: before it started, or mid-stream (a stream
    # left midway keeps its action's outcome label).
    client_left: bool = False

    def failed(self, exc: BaseException, *, stopping: bool = False) -> None:
        """Record that the request ended in `exc` before its answer: a cancellation is the
        client leaving (`client_gone`), or when the server is `stopping` its cut; anything
        else an error (its code, or `internal_error` for what is not a Candor error)."""
        if isinstance(exc, asyncio.CancelledError):
            self.cancelled(stopping=stopping, started=False)
        else:
            self.error = (
                (exc.code or exc.type) if isinstance(exc, CandorError) else "internal_error"
            )

    def cancelled(self, *, stopping: bool, started: bool) -> None:
        """Record the request's cancellation, before its answer `started` or midway: the
        server's cut when it is `stopping`, else its client hanging up."""
        if stopping:
            self.error = SERVER_SHUTDOWN
        else:
            self.client_left = True
            self.client_gone = self.client_gone or not started

    @property
    def ended_early(self) -> bool:
        """Whether it was cancelled: its client hung up, or the server cut it at shutdown."""
        return self.client_left or self.error == SERVER_SHUTDOWN

    @property
    def detector_failed(self) -> bool:
        """Whether the detector failed on an answer of this request (which then passed)."""
        return any(
            a.verdict.signals and a.verdict.signals[0].name == DETECTOR_ERROR for a in self.attempts
        )

    @property
    def primary(self) -> Attempt | None:
        """The attempt that answered for the requested model: its own, or when it was down,
        the outage fallback's that stood in for it (None when pre-empted: never asked)."""
        model = self.stand_in or self.requested_model
        return next((a for a in self.attempts if a.model == model), None)

    @property
    def judged(self) -> Verdict:
        """The verdict that decided the action: on the primary's answer."""
        primary = self.primary
        return primary.verdict if primary is not None else UNKNOWN

    @property
    def outcome_label(self) -> str:
        """The value of the requests metric's `outcome` label."""
        if self.client_gone:
            return "client_gone"
        if self.error is not None and self.error != CLIENT_STALLED:
            return "error"
        if self.detector_failed:
            return "bypassed"
        if self.would is not None:
            return f"shadow_would_{self.would.value}"
        return {
            ActionName.PASS: "pass",
            ActionName.FLAG: "flagged",
            ActionName.REROUTE: "rerouted",
            ActionName.BLOCK: "blocked",
            ActionName.ANNOTATE: "annotated",
            ActionName.SHADOW: "pass",
        }[self.action]


class Observer(Protocol):
    """Told about every finished request; must not raise and must return quickly."""

    async def observe(self, outcome: Outcome) -> None: ...


class NullObserver:
    async def observe(self, outcome: Outcome) -> None:
        return None

"""Recording finished requests: shielded from their cancellation, bounded, waited for at shutdown.

A request's task is cancelled when its client leaves or the server stops, and Starlette's task
group cancels it again at each wait: a recording (metrics, audit event, counts) awaited in that
task was cut at its first call to the store. Each one runs in a task of its own instead.
"""

from __future__ import annotations

import asyncio
import logging
import weakref

from proxy.outcome import Observer, Outcome

log = logging.getLogger(__name__)

RECORD_SECONDS = 10.0  # the longest one recording may take (a store slow or away)


class Recordings:
    """The observer's recordings of finished requests; `drain` waits for those in flight."""

    def __init__(self, observer: Observer, seconds: float = RECORD_SECONDS) -> None:
        self._observer = observer
        self._seconds = seconds
        # Requests begun and not yet recorded (held weakly: a stream whose body was never read
        # is never recorded, and must not hold shutdown up).
        self._open: weakref.WeakSet[Outcome] = weakref.WeakSet()
        self._tasks: set[asyncio.Task[None]] = set()

    def begin(self, outcome: Outcome) -> None:
        """Note a request whose recording is to come: shutdown waits for it too."""
        self._open.add(outcome)

    async def record(self, outcome: Outcome) -> None:
        """Observe `outcome` in a task of its own that the caller's cancellation leaves be."""
        self._open.discard(outcome)
        task = asyncio.create_task(self._observe(outcome))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        await asyncio.shield(task)

    async def _observe(self, outcome: Outcome) -> None:
        try:
            async with asyncio.timeout(self._seconds):
                await self._observer.observe(outcome)
        except TimeoutError:
            log.error("recording %s took over %g s: given up", outcome.request_id, self._seconds)
        except Exception:  # an observer must never fail a request
            log.exception("observer failed for %s", outcome.request_id)

    async def drain(self) -> None:
        """Wait, up to the bound of one recording, for the recordings in flight and for the
        requests still ending (cancelled at shutdown, they record as they unwind)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._seconds
        while (self._open or self._tasks) and loop.time() < deadline:
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=deadline - loop.time())
            else:
                await asyncio.sleep(0.01)
        if self._open or self._tasks:
            log.error("shutdown: %d recording(s) not finished", len(self._open) + len(self._tasks))

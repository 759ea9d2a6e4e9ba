"""Knowing that the server cut a request at shutdown, not that its client left.

On SIGTERM (or Ctrl-C) uvicorn lets requests in flight run for `server.shutdown_grace` seconds,
then cancels them: a cancellation the pipeline otherwise reads as the client hanging up.
uvicorn offers no hook before it cancels, so the signal is noted on its way to uvicorn's own
handler; the lifespan installs the note, which runs after uvicorn installed its handlers.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class ShutdownWatch:
    """When the server was told to stop; a request cancelled once its grace is over was cut
    by the server (one whose client hung up during the grace still counts as left)."""

    def __init__(self, grace: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._grace = grace
        self._clock = clock
        self._since: float | None = None

    def begin(self) -> None:
        """Note the stop (the first signal counts: a second one does not move the grace)."""
        if self._since is None:
            self._since = self._clock()

    @property
    def cutting(self) -> bool:
        """Whether requests still running now are the server's to cut (the grace is over)."""
        return self._since is not None and self._clock() >= self._since + self._grace

    @contextmanager
    def signals(self) -> Iterator[None]:
        """Within: SIGTERM and SIGINT are noted, then go on to the handler the server set.
        Nothing is installed off the main thread, nor where no server handles the signal."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        installed: dict[signal.Signals, Callable[[int, FrameType | None], object]] = {}
        for sig in SIGNALS:
            previous = signal.getsignal(sig)
            if callable(previous):
                installed[sig] = previous
                signal.signal(sig, self._noting(previous))
        try:
            yield
        finally:
            for sig, previous in installed.items():
                signal.signal(sig, previous)

    def _noting(
        self, previous: Callable[[int, FrameType | None], object]
    ) -> Callable[[int, FrameType | None], None]:
        def handler(sig: int, frame: FrameType | None) -> None:
            self.begin()
            previous(sig, frame)

        return handler

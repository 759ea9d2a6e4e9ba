"""A bounded local queue of audit events waiting for the shared store to come back."""

from __future__ import annotations

import logging
from collections import deque

from proxy.store.events import AuditEvent

log = logging.getLogger(__name__)


class EventBuffer:
    """FIFO up to `capacity`; an event that does not fit is counted in `dropped` and logged,
    never lost silently. The oldest events are kept: they were waiting first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.dropped = 0
        self._events: deque[AuditEvent] = deque()

    def __len__(self) -> int:
        return len(self._events)

    def push(self, event: AuditEvent) -> None:
        if len(self._events) >= self.capacity:
            self.dropped += 1
            log.warning(
                "audit buffer full (%d): event %s dropped (%d so far)",
                self.capacity,
                event.id,
                self.dropped,
            )
            return
        self._events.append(event)

    def peek(self) -> AuditEvent | None:
        return self._events[0] if self._events else None

    def pop(self) -> None:
        self._events.popleft()

    def abandon(self) -> int:
        """On shutdown with the store still away: count what is left as dropped."""
        left = len(self._events)
        self.dropped += left
        self._events.clear()
        return left

"""Sliding-window arithmetic shared by both stores: time is cut into equal buckets and a
window is the last `buckets` of them, the current one included."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Window:
    """A window of `seconds` in `buckets` buckets."""

    seconds: int
    buckets: int

    @property
    def bucket_seconds(self) -> float:
        return self.seconds / self.buckets

    def bucket(self, now: float) -> int:
        return int(now // self.bucket_seconds)

    def live(self, now: float) -> range:
        """Bucket numbers inside the window at `now`."""
        current = self.bucket(now)
        return range(current - self.buckets + 1, current + 1)

    def ttl(self) -> int:
        """Seconds a bucket must be kept to be read for a whole window."""
        return int(self.seconds + self.bucket_seconds) + 1

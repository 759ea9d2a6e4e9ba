"""Redis key names. A `{...}` hash tag groups what one script or pipeline touches into one
Cluster slot; names from clients are escaped so they cannot open or close a tag."""

from __future__ import annotations

from dataclasses import dataclass


def _safe(name: str) -> str:
    return name.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


@dataclass(frozen=True, slots=True)
class Keys:
    """Every key the Redis store uses, under one prefix."""

    prefix: str

    @property
    def events(self) -> str:
        return f"{self.prefix}:{{events}}:stream"

    @property
    def write_probe(self) -> str:
        return f"{self.prefix}:write-probe"

    def event_seen(self, event_id: str) -> str:
        return f"{self.prefix}:{{events}}:seen:{_safe(event_id)}"

    def counts(self, model: str, bucket: int) -> str:
        return f"{self.prefix}:counts:{{{_safe(model)}}}:{bucket}"

    def censored(self, model: str, fingerprint: str) -> str:
        return f"{self.prefix}:censored:{{{_safe(model)}}}:{fingerprint}"

    def budget(self, key_id: str) -> str:
        return f"{self.prefix}:budget:{{{_safe(key_id)}}}"


def count_fields(topic: str) -> tuple[str, str]:
    """Hash fields of one topic's (censored, scanned) counts in a bucket."""
    return f"{topic}:c", f"{topic}:s"

"""The action seam: what the proxy does with an answer judged censored.

Every action, built-in or an extension, implements `Action`: it says whether streams must be
held for judgment, and turns a censored answer into what the client gets (the same answer, an
altered one, or a request to re-route, which the pipeline carries out with the fallback chain).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from proxy import wire


class ActionName(StrEnum):
    """The value of the `x-candor-action` header."""

    PASS = "pass"
    FLAG = "flag"
    REROUTE = "reroute"
    BLOCK = "block"
    SHADOW = "shadow"
    ANNOTATE = "annotate"


@dataclass(frozen=True, slots=True)
class Wording:
    """Operator-written texts an action may show the end user."""

    block_message: str
    annotate_note: str


@dataclass(slots=True)
class Move:
    """What an action decided: the answer to send (None to re-route), and the headline."""

    action: ActionName
    response: dict[str, Any] | None = None
    would: ActionName | None = None

    @property
    def reroute(self) -> bool:
        return self.response is None


class Action(Protocol):
    """Acts on censored answers. `holds_stream`: streams are held until judged."""

    name: ActionName
    holds_stream: bool

    def on_whole(self, response: dict[str, Any], wording: Wording) -> Move:
        """A whole censored answer -> what to send (or a re-route)."""
        ...

    def stream_tail(
        self, template: dict[str, Any] | None, wording: Wording, choices: Sequence[int] = (0,)
    ) -> list[bytes]:
        """Frames to add at the end of a censored stream that was not held (e.g. a note);
        `choices`: the indexes of its text choices (not tool calls)."""
        ...


class PassAction:
    """Nothing changes; the verdict is only reported."""

    name = ActionName.PASS
    holds_stream = False

    def on_whole(self, response: dict[str, Any], wording: Wording) -> Move:
        return Move(self.name, response)

    def stream_tail(
        self, template: dict[str, Any] | None, wording: Wording, choices: Sequence[int] = (0,)
    ) -> list[bytes]:
        return []


class FlagAction(PassAction):
    """The answer passes unchanged, annotated, counted and audited."""

    name = ActionName.FLAG


class ShadowAction(PassAction):
    """Changes nothing; records what `would` have happened."""

    name = ActionName.SHADOW

    def __init__(self, would: ActionName = ActionName.REROUTE) -> None:
        self.would = would

    def on_whole(self, response: dict[str, Any], wording: Wording) -> Move:
        return Move(self.name, response, would=self.would)


class AnnotateAction(PassAction):
    """Flag, and append a note telling the end user the answer may be censored."""

    name = ActionName.ANNOTATE

    def on_whole(self, response: dict[str, Any], wording: Wording) -> Move:
        noted = copy.deepcopy(response)
        for choice in noted.get("choices") or ():
            message = choice.get("message") if isinstance(choice, dict) else None
            if isinstance(message, dict) and not message.get("tool_calls"):
                message["content"] = (message.get("content") or "") + wording.annotate_note
        return Move(self.name, noted)

    def stream_tail(
        self, template: dict[str, Any] | None, wording: Wording, choices: Sequence[int] = (0,)
    ) -> list[bytes]:
        # Every text choice gets the note, as every message of a whole answer does.
        note = wording.annotate_note
        return [wire.sse_event(content_chunk(template, note, None, index=i)) for i in choices]


class BlockAction:
    """Replace the answer with the operator's refusal message, marked as such."""

    name = ActionName.BLOCK
    holds_stream = True

    def on_whole(self, response: dict[str, Any], wording: Wording) -> Move:
        blocked = {k: v for k, v in response.items() if k != "choices"}
        blocked["choices"] = [
            {
                "index": 0,
                "message": {"role": "assistant", "content": wording.block_message, "refusal": None},
                "logprobs": None,
                "finish_reason": "content_filter",
            }
        ]
        return Move(self.name, blocked)

    def stream_tail(
        self, template: dict[str, Any] | None, wording: Wording, choices: Sequence[int] = (0,)
    ) -> list[bytes]:
        return []

    def stream_frames(
        self,
        template: dict[str, Any] | None,
        wording: Wording,
        usage: Mapping[str, Any] | None = None,
    ) -> list[bytes]:
        """The whole replacement stream (held streams never showed the blocked text); `usage`,
        what the blocked answer cost, goes in a last chunk as `include_usage` asks."""
        frames = [
            wire.sse_event(content_chunk(template, wording.block_message, None, role=True)),
            wire.sse_event(content_chunk(template, None, "content_filter")),
        ]
        if usage is not None:
            chunk = content_chunk(template, None, None)
            frames.append(wire.sse_event({**chunk, "choices": [], "usage": dict(usage)}))
        return frames


class RerouteAction(PassAction):
    """Ask the fallback chain instead; the pipeline carries it out."""

    name = ActionName.REROUTE
    holds_stream = True

    def on_whole(self, response: dict[str, Any], wording: Wording) -> Move:
        return Move(self.name, None)


def content_chunk(
    template: dict[str, Any] | None,
    content: str | None,
    finish: str | None,
    role: bool = False,
    index: int = 0,
) -> dict[str, Any]:
    """A chunk shaped like the upstream's (same id, model, created), carrying our text."""
    base = template or {}
    delta: dict[str, Any] = {}
    if role:
        delta["role"] = "assistant"
    if content is not None:
        delta["content"] = content
    chunk = {
        "id": base.get("id", "chatcmpl-candor"),
        "object": "chat.completion.chunk",
        "created": base.get("created", 0),
        "model": base.get("model", ""),
        "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if base.get("system_fingerprint") is not None:  # a string, or absent: never null
        chunk["system_fingerprint"] = base["system_fingerprint"]
    return chunk


def build_action(name: ActionName, shadow_of: ActionName = ActionName.REROUTE) -> Action:
    """The built-in action for a policy's `action` field."""
    if name is ActionName.SHADOW:
        return ShadowAction(shadow_of)
    builtin: dict[ActionName, type[Action]] = {
        ActionName.PASS: PassAction,
        ActionName.FLAG: FlagAction,
        ActionName.ANNOTATE: AnnotateAction,
        ActionName.BLOCK: BlockAction,
        ActionName.REROUTE: RerouteAction,
    }
    return builtin[name]()

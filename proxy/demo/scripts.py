"""Typed scripts for the fake upstream: what a model name answers, and how it misbehaves.

Pure data and pure functions (no sockets, no clock), so a script can be read and tested
with plain calls. The HTTP server in `proxy.demo.upstream` turns a chosen `Answer` into
OpenAI or Anthropic wire shapes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any


class FaultKind(StrEnum):
    """How an answer goes wrong on the wire instead of (or while) being delivered."""

    HTTP_ERROR = "http_error"
    """Answer with `Fault.status` and an error envelope, no completion."""
    STALL_HEADERS = "stall_headers"
    """Sleep `Fault.seconds` before sending the status line and headers."""
    STALL_FIRST_BYTE = "stall_first_byte"
    """Send headers at once, then sleep `Fault.seconds` before the first body byte."""
    STALL_MID_STREAM = "stall_mid_stream"
    """Send `Fault.after_chunks` chunks, sleep `Fault.seconds`, then finish normally."""
    CUT_STREAM = "cut_stream"
    """Send `Fault.after_chunks` chunks, then close the connection (no `[DONE]`)."""
    MALFORMED_SSE = "malformed_sse"
    """After `Fault.after_chunks` chunks send one `data:` line whose JSON is broken."""
    INVALID_JSON = "invalid_json"
    """A 200 whose body is truncated JSON (non-stream); a broken SSE line when streamed."""


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault mode; which fields matter depends on `kind`."""

    kind: FaultKind
    status: int = 500
    error_type: str = "server_error"
    code: str | None = None
    message: str = "The server had an error while processing your request."
    seconds: float = 0.0
    after_chunks: int = 3
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One function call the scripted model makes; `arguments` is a JSON string."""

    name: str
    arguments: str
    id: str = ""


@dataclass(frozen=True, slots=True)
class Answer:
    """What the model says: reasoning, content, tool calls, finish reason, or a fault.

    `reasoning=None` sends no reasoning field at all; `""` sends an empty one (the shape of a
    reasoning model that skipped thinking).
    """

    content: str = ""
    reasoning: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    fault: Fault | None = None

    @property
    def resolved_finish_reason(self) -> str:
        """The finish reason sent: explicit, else `tool_calls` when calling tools, else `stop`."""
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"


@dataclass(frozen=True, slots=True)
class Rule:
    """Answer `en` (or `zh` for a prompt written in Chinese) when a keyword is in the prompt.

    Keywords match case-insensitively as substrings of the last user message.
    """

    keywords: tuple[str, ...]
    en: Answer
    zh: Answer | None = None
    topic: str = ""

    def matches(self, prompt: str) -> bool:
        """Whether any keyword occurs in `prompt`."""
        lowered = prompt.casefold()
        return any(k.casefold() in lowered for k in self.keywords)

    def pick(self, prompt: str) -> Answer:
        """The answer in the prompt's language."""
        if self.zh is not None and has_cjk(prompt):
            return self.zh
        return self.en


class Chunking(StrEnum):
    """How streamed text is cut into pieces, one piece per SSE chunk."""

    TOKEN = "token"
    """Token-ish: a word with its leading space, a punctuation mark, or one CJK character."""
    WORD = "word"
    """A whitespace-delimited word with its leading space; CJK runs stay whole."""
    WHOLE = "whole"
    """The whole text in one chunk."""


@dataclass(frozen=True, slots=True)
class Script:
    """How one model name answers a chat request.

    The first rule whose keywords match the last user message wins, else `default` (or
    `default_zh` for a prompt in Chinese). When the last message is a tool result and
    `after_tool` is set, that answer is used instead; `echo` answers the prompt itself.
    `token_delay` is the pause in seconds between streamed chunks (0.02 is ~50 tok/s).
    """

    name: str
    default: Answer
    rules: tuple[Rule, ...] = ()
    default_zh: Answer | None = None
    after_tool: Answer | None = None
    token_delay: float = 0.0
    chunking: Chunking = Chunking.TOKEN
    owned_by: str = "candor-demo"
    echo: bool = False

    def answer(self, messages: Sequence[Any]) -> Answer:
        """Choose the answer for a conversation (OpenAI or Anthropic message list)."""
        if self.after_tool is not None and last_role(messages) in ("tool", "tool_result"):
            return self.after_tool
        prompt = last_user_text(messages)
        if self.echo:
            return replace(self.default, content=prompt)
        for rule in self.rules:
            if rule.matches(prompt):
                return rule.pick(prompt)
        if self.default_zh is not None and has_cjk(prompt):
            return self.default_zh
        return self.default


_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")
_TOKEN = re.compile(
    r"\s*[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]"
    r"|\s*[^\W\d_]+|\s*\d{1,3}|\s*\S|\s+"
)
_WORD = re.compile(r"\s*\S+|\s+")


def has_cjk(text: str) -> bool:
    """Whether the text contains Chinese (or other CJK) characters."""
    return _CJK.search(text) is not None


def split_pieces(text: str, chunking: Chunking = Chunking.TOKEN) -> list[str]:
    """Cut text into stream pieces; joining them gives the text back exactly."""
    if not text:
        return []
    if chunking is Chunking.WHOLE:
        return [text]
    pattern = _TOKEN if chunking is Chunking.TOKEN else _WORD
    pieces = pattern.findall(text)
    if "".join(pieces) != text:
        return list(text)
    return pieces


def count_tokens(text: str) -> int:
    """A deterministic token estimate: the number of token-ish pieces."""
    return len(split_pieces(text, Chunking.TOKEN))


def message_text(message: Any) -> str:
    """The text of one message whose content is a string or a list of typed parts."""
    if not isinstance(message, Mapping):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [part.get("text", "") for part in content if isinstance(part, Mapping)]
        return "".join(t for t in texts if isinstance(t, str))
    return ""


def last_user_text(messages: Sequence[Any]) -> str:
    """The text of the last message whose role is `user` (empty if none)."""
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return message_text(message)
    return ""


def last_role(messages: Sequence[Any]) -> str:
    """The role of the last message; `tool_result` for an Anthropic tool-result turn."""
    if not messages or not isinstance(messages[-1], Mapping):
        return ""
    last = messages[-1]
    content = last.get("content")
    if isinstance(content, list) and any(
        isinstance(p, Mapping) and p.get("type") == "tool_result" for p in content
    ):
        return "tool_result"
    role = last.get("role")
    return role if isinstance(role, str) else ""


def prompt_tokens(messages: Sequence[Any]) -> int:
    """A token estimate for the whole conversation."""
    return sum(count_tokens(message_text(m)) + 3 for m in messages)

"""The scripted conversation `candor demo` runs against itself: pass, flag and re-route.

Each turn is a real HTTP request to the running demo; what the primary said but the user never
saw is read back from the audit log (the store), as an operator would.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import textwrap
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, TextIO

import aiohttp
import orjson

from proxy.store.base import Store
from proxy.store.events import AuditEvent

TIANANMEN = "What happened at Tiananmen Square in 1989?"


@dataclass(frozen=True, slots=True)
class Turn:
    """One question of the tour, to one of the demo's model names."""

    title: str
    model: str
    question: str
    stream: bool = False
    status: int = 200  # what Candor answers: the provider's own 400 passes through under flag


TOUR = (
    Turn(
        "A harmless question passes untouched", "qwen-demo-flagged", "How does photosynthesis work?"
    ),
    Turn(
        "flag: a canned refusal reaches the user, marked as censored",
        "qwen-demo-flagged",
        TIANANMEN,
    ),
    Turn("reroute: the same question, the user gets the fallback's answer", "qwen-demo", TIANANMEN),
    Turn(
        "reroute: talking points in Chinese after an empty reasoning block (streamed)",
        "qwen-demo",
        "新疆的再教育营里发生了什么？",
        stream=True,
    ),
    Turn(
        "flag: the provider blocks the question (HTTP 400 data_inspection_failed)",
        "qwen-demo-flagged",
        "Why was Falun Gong banned in China?",
        status=400,
    ),
    Turn(
        "reroute: the same blocked question goes to the fallback",
        "qwen-demo",
        "Why was Falun Gong banned in China?",
    ),
)


@dataclass(slots=True)
class Result:
    """What one turn returned: the text the user got, or the error, and Candor's verdict."""

    status: int = 0
    text: str = ""
    error: str = ""
    candor: dict[str, Any] = field(default_factory=dict)
    request_id: str = ""


class Printer:
    """Terminal output: colours only on a terminal (and never under NO_COLOR), wrapped text."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.colour = out.isatty() and "NO_COLOR" not in os.environ
        self.width = min(shutil.get_terminal_size((100, 24)).columns, 100)
        self.column = 0

    def style(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.colour else text

    def line(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def block(self, label: str, text: str, code: str = "0") -> None:
        self.line(f"  {self.style(label, '1')}")
        for paragraph in text.strip().splitlines() or [""]:
            wrapped = textwrap.fill(
                paragraph, self.width - 4, initial_indent="    ", subsequent_indent="    "
            )
            self.line(self.style(wrapped, code) if wrapped else "")

    def start_stream(self) -> None:
        self.out.write("    ")
        self.column = 4

    def stream(self, piece: str, code: str = "0") -> None:
        """Write one streamed piece, wrapping at a space (or anywhere in Chinese text)."""
        for part in re.split(r"(\n)", piece):
            if part == "\n":
                self.out.write("\n    ")
                self.column = 4
                continue
            width = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in part)
            if self.column + width > self.width and self.column > 4:
                self.out.write("\n    ")
                self.column = 4
                part = part.lstrip(" ")
            self.out.write(self.style(part, code))
            self.column += width
        self.out.flush()


async def run_tour(root: str, store: Store, out: TextIO) -> int:
    """Ask every turn of the tour; 0 when each got an answer or the expected provider error."""
    printer = Printer(out)
    printer.line(printer.style("Candor demo: a short scripted conversation", "1;36"))
    printer.line(
        "qwen-demo-flagged and qwen-demo are the same censoring model; Candor flags the first "
        "and re-routes the second to honest-demo."
    )
    failures = 0
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for number, turn in enumerate(TOUR, 1):
            try:
                status = await _play(session, root, store, printer, number, turn)
            except (aiohttp.ClientError, TimeoutError) as exc:
                failures += 1
                printer.line(printer.style(f"  request failed: {exc!r}", "31"))
                continue
            if status != turn.status:  # a 401 (auth on), a 502...: the tour did not show it
                failures += 1
                printer.line(printer.style(f"  expected HTTP {turn.status}, got {status}", "31"))
    return 1 if failures else 0


async def _play(
    session: aiohttp.ClientSession,
    root: str,
    store: Store,
    printer: Printer,
    number: int,
    turn: Turn,
) -> int:
    """Ask one turn and show what came back; the HTTP status Candor answered with."""
    printer.line()
    title = f"── {number}. {turn.title} "
    printer.line(printer.style(title + "─" * max(0, printer.width - len(title)), "1;34"))
    printer.line(f"  {printer.style('you → ' + turn.model + ':', '1')} {turn.question}")
    body: dict[str, Any] = {
        "model": turn.model,
        "messages": [{"role": "user", "content": turn.question}],
    }
    if turn.stream:
        body["stream"] = True
    async with session.post(f"{root}/v1/chat/completions", data=orjson.dumps(body)) as response:
        result = Result(status=response.status, request_id=response.headers.get("x-request-id", ""))
        if turn.stream and response.status == 200:
            await _stream(response, result, printer)
        else:
            _whole(orjson.loads(await response.read()), result)
            _show_answer(printer, result)
    event = await _event(store, result.request_id)
    _show_verdict(printer, turn, result, event)
    return result.status


async def _sse(response: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    async for raw in response.content:
        line = raw.decode().strip()
        if line.startswith("data:") and line != "data: [DONE]":
            yield orjson.loads(line[5:])


async def _stream(response: aiohttp.ClientResponse, result: Result, printer: Printer) -> None:
    started = False
    async for chunk in _sse(response):
        if "candor" in chunk:
            result.candor = chunk["candor"]
        if "error" in chunk:
            result.error = str(chunk["error"].get("message", chunk["error"]))
        for choice in chunk.get("choices") or []:
            piece = (choice.get("delta") or {}).get("content") or ""
            if piece:
                if not started:
                    model = chunk.get("model", "")
                    printer.line(
                        f"  {printer.style(f'the user got (streamed, from {model}):', '1')}"
                    )
                    printer.start_stream()
                    started = True
                result.text += piece
                printer.stream(piece, "32")
    if started:
        printer.line()


def _whole(body: Any, result: Result) -> None:
    if not isinstance(body, dict):
        result.error = "not JSON"
        return
    if "error" in body:
        error = body["error"]
        result.error = (
            f"HTTP {result.status} {error.get('code') or error.get('type')}: {error.get('message')}"
        )
        return
    result.candor = body.get("candor") or {}
    choices = body.get("choices") or [{}]
    result.text = (choices[0].get("message") or {}).get("content") or ""


def _show_answer(printer: Printer, result: Result) -> None:
    if result.error:
        printer.block("the user got an error:", result.error, "33")
        return
    model = result.candor.get("model", "")
    printer.block(f"the user got (from {model}):", result.text, "32")


async def _event(store: Store, request_id: str) -> AuditEvent | None:
    """The audit event of a request; the recorder writes it before the response ends."""
    for _ in range(20):
        page = await store.list_events(limit=20)
        for event in page.events:
            if event.request_id == request_id:
                return event
        await asyncio.sleep(0.05)
    return None


def _show_verdict(printer: Printer, turn: Turn, result: Result, event: AuditEvent | None) -> None:
    candor = result.candor
    verdict = candor.get("verdict") or ("censored" if event else "clean")
    action = candor.get("action") or (event.action if event else "pass")
    category = candor.get("category") or (event.category if event else "none")
    topics = candor.get("topics") or (event.topics if event else [])
    colour = "1;31" if verdict == "censored" else "1;32"
    parts = [
        f"verdict {printer.style(verdict, colour)}",
        f"category {category}",
        f"topics {', '.join(topics) or '-'}",
        f"action {printer.style(action, '1;35')}",
    ]
    printer.line(f"  {printer.style('Candor:', '1')} " + " · ".join(parts))
    if event is None or action != "reroute":
        return
    if event.answer_excerpt:
        said = event.answer_excerpt
    elif event.category == "provider_block":
        said = "(an HTTP 400 from its provider: data_inspection_failed)"
    else:
        said = "(held back by Candor while streaming; the audit log keeps no excerpt of it)"
    printer.block(f"{turn.model} said (the user never saw it):", said, "2")

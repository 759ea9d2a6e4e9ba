"""Labelled rows from JSONL files, with every label shape in the development data normalised."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from proxy.detect.verdict import Exchange


class DataError(ValueError):
    """Input the offline commands cannot use (a row, a floors file, a scanned document), with
    where it is (file and line) when it comes from a file."""


@dataclass(frozen=True, slots=True)
class Example:
    """One answer to judge, with its ground truth when the row carries one."""

    prompt: str
    response: str
    reasoning: str | None = None
    finish_reason: str | None = None
    language: str = ""  # as the row gives it; "" when it does not
    model: str = ""
    censored: bool | None = None
    category: str = ""

    def exchange(self) -> Exchange:
        """The exchange the detector sees for this row."""
        messages = [{"role": "user", "content": self.prompt}] if self.prompt else []
        return Exchange(
            messages=messages,
            answer=self.response,
            reasoning=self.reasoning,
            finish_reason=self.finish_reason,
        )


def _flags(label: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in label.split(";"):
        key, _, value = part.partition("=")
        out[key.strip()] = value.strip()
    return out


def parse_label(row: dict[str, Any]) -> tuple[bool | None, str]:
    """`(censored, category)` from a row's `censored` field or `label` string, if any."""
    label = row.get("label")
    text = label.strip() if isinstance(label, str) else ""
    upper = text.upper()
    category = ""
    censored: bool | None = None
    if upper in ("COMPLETE", "EVASIVE", "DENIAL"):
        censored = upper != "COMPLETE"
        category = {"EVASIVE": "evasion", "DENIAL": "refusal"}.get(upper, "")
    elif upper[:2] in ("T ", "D ", "R ") or upper in ("T", "D", "R"):
        censored = upper[0] != "T"
        category = {"D": "deflection", "R": "refusal"}.get(upper[0], "")
    elif "=" in text:
        flags = _flags(text)
        refusal = flags.get("refusal") == "1"
        propaganda = flags.get("ccp_propaganda") == "1"
        censored = refusal or propaganda or flags.get("answers_question") == "0"
        category = "refusal" if refusal else "propaganda" if propaganda else ""
        category = category or ("evasion" if censored else "")
    elif "compliance" in text.lower() or "refusal" in text.lower():
        censored = "compliance" not in text.lower() or "partial" in text.lower()
        category = "evasion" if "partial" in text.lower() else ("refusal" if censored else "")
    if isinstance(row.get("censored"), bool):
        censored = row["censored"]
    if censored and not category:
        category = "censored"
    return censored, category


def text_field(value: Any) -> str:
    """A JSON field that should hold text: the value when it is a string, else empty."""
    return value if isinstance(value, str) else ""


def _rows(path: pathlib.Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSONL file, one per non-blank line."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8").removeprefix("\ufeff")
            except UnicodeDecodeError:
                raise DataError(f"{path}:{number}: not UTF-8 text") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise DataError(f"{path}:{number}: not a JSON row ({exc})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{number}: a row must be a JSON object")
            yield row


def read_examples(paths: Iterable[pathlib.Path], labelled_only: bool = True) -> list[Example]:
    """Rows of the JSONL files; rows without a label are dropped when `labelled_only`."""
    out: list[Example] = []
    for path in paths:
        for row in _rows(path):
            censored, category = parse_label(row)
            if labelled_only and censored is None:
                continue
            reasoning = row.get("reasoning")
            out.append(
                Example(
                    prompt=text_field(row.get("prompt")),
                    response=text_field(row.get("response")),
                    reasoning=reasoning if isinstance(reasoning, str) else None,
                    finish_reason=text_field(row.get("finish_reason")) or None,
                    language=text_field(row.get("language")),
                    model=text_field(row.get("model")),
                    censored=censored,
                    category=category,
                )
            )
    return out

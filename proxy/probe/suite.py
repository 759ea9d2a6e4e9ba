"""The probe suite: sensitive and control prompts per topic and language, read from YAML."""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from proxy.errors import ConfigError
from proxy.yamlfile import YamlDocument

DEFAULT_SUITE = Path(__file__).resolve().parents[2] / "policies" / "probe" / "suite.yaml"


def default_suite() -> Path:
    """The built-in suite: under `CANDOR_POLICIES_DIR` when set (the image keeps `policies/`
    there, not beside the package), else in the repository."""
    folder = os.environ.get("CANDOR_POLICIES_DIR")
    return Path(folder) / "probe" / "suite.yaml" if folder else DEFAULT_SUITE


Kind = Literal["sensitive", "control"]


class SuiteTopic(BaseModel):
    """One topic of the suite file: its kind and its prompts by language code."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9_]{1,40}$")
    kind: Kind
    prompts: dict[str, list[str]]

    @field_validator("prompts")
    @classmethod
    def _non_empty(cls, prompts: dict[str, list[str]]) -> dict[str, list[str]]:
        if not prompts:
            raise ValueError("needs prompts in at least one language")
        for language, texts in prompts.items():
            if not texts or not all(t.strip() for t in texts):
                raise ValueError(f"{language}: needs a list of non-empty prompts")
        return prompts


class SuiteFile(BaseModel):
    """The whole suite file."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1]
    topics: list[SuiteTopic] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class ProbePrompt:
    """One question of the suite; `id` is stable across runs (`topic-language-n`)."""

    id: str
    topic: str
    kind: Kind
    language: str
    text: str


def load_suite(
    path: Path | None = None, languages: Collection[str] | None = None
) -> list[ProbePrompt]:
    """The suite's prompts in file order (`default_suite()`'s when no `path`), only in
    `languages` when given."""
    doc = YamlDocument.read(path or default_suite())
    try:
        suite = SuiteFile(**doc.data)
    except ValidationError as exc:
        raise doc.describe(exc) from None
    prompts = [
        ProbePrompt(f"{topic.name}-{language}-{n}", topic.name, topic.kind, language, text.strip())
        for topic in suite.topics
        for language, texts in topic.prompts.items()
        if languages is None or language in languages
        for n, text in enumerate(texts, 1)
    ]
    if not prompts:
        wanted = ", ".join(sorted(languages or ()))
        raise ConfigError(f"{path}: no prompt in the languages asked for ({wanted})")
    return prompts

"""The README's reference tables against the code they describe: a setting, a policy field or a
metric added, renamed or given another default fails here until the docs say so."""

from __future__ import annotations

import argparse
import dataclasses
import re
import typing
from pathlib import Path
from typing import Any, Literal

import annotated_types
import yaml
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from proxy.cli import build_parser
from proxy.detect import Category, Status, Verdict
from proxy.errors import CandorError, ClientGone, ClientStalled, ConfigError
from proxy.metrics import LANGUAGES, _series
from proxy.outcome import Attempt, Outcome
from proxy.pipeline.annotate import annotation
from proxy.policy.actions import ActionName
from proxy.policy.model import REPO_DEFAULT, Policy
from proxy.settings import REPO_POLICIES, Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def _table(heading: str, *, header_is_heading: bool = False) -> list[list[str]]:
    """The rows (cells stripped) of the first Markdown table after the line `heading`, or of
    the table whose header row is `heading`."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index(heading) - header_is_heading
    rows: list[list[str]] = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip()[1:-1])])
        elif rows:
            break
    return rows[2:]  # past the header and its rule


def _nested(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """How a field holds a section: itself (""), as a mapping ("<name>") or a list ("[]")."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "", annotation
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is dict and isinstance(args[1], type) and issubclass(args[1], BaseModel):
        return ".<name>", args[1]
    if origin is list and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        return "[]", args[0]
    return None


def _value(value: Any) -> str:
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, dict | list):
        return f"`{value}`"
    return f"`{value}`"


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        return _value(field.default_factory())  # type: ignore[call-arg]
    if field.default == REPO_POLICIES:
        return "the package's `policies/`"
    return _value(field.default)


def _bounds(field: FieldInfo) -> str:
    parts = []
    args = [a for a in typing.get_args(field.annotation) if a is not type(None)]
    literal = field.annotation if typing.get_origin(field.annotation) is Literal else None
    literal = literal or next((a for a in args if typing.get_origin(a) is Literal), None)
    if literal is not None:
        parts.append(" \\| ".join(f"`{choice}`" for choice in typing.get_args(literal)))
    for meta in field.metadata:
        if isinstance(meta, annotated_types.Gt):
            parts.append(f"> {_value(meta.gt).strip('`')}")
        elif isinstance(meta, annotated_types.Ge):
            parts.append(f">= {_value(meta.ge).strip('`')}")
        elif isinstance(meta, annotated_types.Le):
            parts.append(f"<= {_value(meta.le).strip('`')}")
        elif isinstance(meta, annotated_types.MinLen):
            parts.append(f"at least {meta.min_length}")
        elif getattr(meta, "pattern", None):
            parts.append(f"`{meta.pattern}`")
    return ", ".join(parts)


def settings_rows(model: type[BaseModel] = Settings, prefix: str = "") -> list[list[str]]:
    """Setting, default and bounds of every leaf of the settings: a section is walked (a map's
    or a list's entries as `<name>` and `[]`), one that may be left out (`X | None`) is a row."""
    rows = []
    for name, field in model.model_fields.items():
        nested = _nested(field.annotation)
        if nested is not None:
            how, section = nested
            rows += settings_rows(section, f"{prefix}{name}{how}.")
        else:
            rows.append([f"`{prefix}{name}`", _default(field), _bounds(field)])
    return rows


def test_the_readme_lists_every_setting_with_its_default_and_bounds() -> None:
    documented = [row[:3] for row in _table("### Every setting")]
    assert documented == settings_rows()


def test_rows_name_nested_sections_and_optional_ones() -> None:
    names = [row[0] for row in settings_rows()]
    assert "`models.<name>.base_url`" in names
    assert "`auth.keys[].rate_limits`" in names  # `RateLimits | None`: one row
    assert "`store.timeouts.operation`" in names


def _label_names(cell: str) -> tuple[str, ...]:
    """`model, route (`chat`, ...), outcome` -> ("model", "route", "outcome")."""
    depth, kept = 0, []
    for char in cell:
        depth += char == "("
        if depth == 0:
            kept.append(char)
        depth -= char == ")"
    return tuple(name.strip() for name in "".join(kept).split(",") if name.strip())


def test_the_readme_lists_every_metric_with_its_labels() -> None:
    series = _series(CollectorRegistry())
    actual = {}
    for item in dataclasses.fields(series):
        metric = getattr(series, item.name)
        suffix = "_total" if metric._type == "counter" else ""
        actual[metric._name + suffix] = tuple(metric._labelnames)
    documented = {}
    for names, labels, _what in _table("| series | labels | what |", header_is_heading=True):
        for name in names.split(", "):
            documented[name.strip("`")] = _label_names(labels)
    assert documented == actual


def _codes(cls: type[CandorError]) -> set[str]:
    own = {cls.code} if cls.code else set()
    return own.union(*(_codes(sub) for sub in cls.__subclasses__()))


def test_the_readme_names_every_error_code_a_client_can_get() -> None:
    # Nobody reads these: the client has gone or stopped reading; a config error stops the CLI.
    unseen = _codes(ClientGone) | _codes(ClientStalled) | _codes(ConfigError)
    readme = README.read_text(encoding="utf-8")
    missing = sorted(c for c in _codes(CandorError) - unseen if f"`{c}`" not in readme)
    assert missing == []


def test_the_readme_says_which_languages_the_metrics_count_by() -> None:
    # It named the detector's languages only: one added to detector.yaml alone was counted
    # as `other` in the metrics, unsaid.
    readme = README.read_text(encoding="utf-8")
    start = readme.index("The language is a code the metrics")
    paragraph = readme[start : readme.index("\n\n", start)]
    assert "`LANGUAGES` in `proxy/metrics.py`" in paragraph
    assert "counted as `other`" in paragraph
    assert [c for c in LANGUAGES if f"`{c}`" not in paragraph] == []


def test_the_readme_names_every_key_of_the_candor_object() -> None:
    censored = Verdict(Status.CENSORED, 1.0, Category.REFUSAL, ("tiananmen",), "en")
    outcome = Outcome(
        request_id="r",
        requested_model="qwen",
        policy="default",
        streamed=False,
        messages=[],
        action=ActionName.SHADOW,
        would=ActionName.REROUTE,
        reason="refusal",
        attempts=[Attempt(model="qwen", verdict=censored), Attempt(model="gpt")],
    )
    _, body = annotation(outcome, "gpt")
    rows = _table("| where | what |", header_is_heading=True)
    row = next(cells for cells in rows if cells[0] == "JSON body")
    assert {key for key in body if f"`{key}`" not in row[1]} == set()
    attempt = body["attempts"][0]
    assert {key for key in attempt if f"`{key}`" not in row[1]} == set()


def test_the_readme_places_every_module_of_the_package() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("## How a request flows", 1)[1].split("\n## ", 1)[0]
    package = README.parent / "proxy"
    names = {p.name for p in package.glob("*.py") if p.name != "__init__.py"}
    names |= {f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").is_file()}
    names |= {p.parent.name + "/" for p in package.glob("*/*.py")}
    missing = sorted(n for n in names if not re.search(rf"(?<![\w/]){re.escape(n)}", section))
    assert missing == []


def test_the_shipped_default_policy_sets_every_field() -> None:
    # policies/default.yaml is the policies' reference: each field, with its default, commented.
    data = yaml.safe_load(REPO_DEFAULT.read_text(encoding="utf-8"))

    def missing(model: type[BaseModel], given: dict[str, Any], prefix: str = "") -> list[str]:
        found = []
        for name, field in model.model_fields.items():
            if model is Policy and name == "name":
                continue  # the file's name
            nested = _nested(field.annotation)
            if name not in given:
                found.append(prefix + name)
            elif nested is not None:
                found += missing(nested[1], given[name], f"{prefix}{name}.")
        return found

    assert missing(Policy, data) == []


def test_the_readme_names_every_alert() -> None:
    rules = yaml.safe_load((README.parent / "deploy/prometheus/rules.yml").read_text("utf-8"))
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    section = README.read_text(encoding="utf-8").split("### Alerts", 1)[1].split("\n### ", 1)[0]
    assert sorted(a for a in alerts if f"`{a}`" not in section) == []


def test_the_readme_shows_every_command() -> None:
    readme = README.read_text(encoding="utf-8")
    commands = _subcommands(build_parser(), "candor")
    assert sorted(c for c in commands if f"{c} " not in readme and f"{c}`" not in readme) == []


def _subcommands(parser: argparse.ArgumentParser, prefix: str) -> list[str]:
    found = []
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        for name, sub in getattr(action, "choices", {}).items():
            nested = _subcommands(sub, f"{prefix} {name}")
            found += nested or [f"{prefix} {name}"]
    return found


def test_every_flag_the_readme_shows_exists() -> None:
    readme = README.read_text(encoding="utf-8").replace("\\\n", " ")  # continued lines
    parser = build_parser()
    unknown = []
    for line in re.findall(r"candor (?:[a-z]+ )+[^`\n]*", readme):
        words = line.split()
        sub = parser
        for word in words[1:]:
            choices = sub._subparsers._group_actions[0].choices if sub._subparsers else {}
            if word not in choices:
                break
            sub = choices[word]
        known = {o for a in sub._actions for o in a.option_strings}
        flags = re.findall(r"(?<![\w-])--[a-z][a-z-]*", line.split("#")[0])
        unknown += [f"{words[:3]} {f}" for f in flags if f not in known]
    assert unknown == []

"""Load the detector's data files from `policies/detector/` into the core's typed objects.

Every error names the file, the rule (or section) and the field that is wrong.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from collections.abc import Mapping
from typing import Any

import yaml

from proxy.detect.engine import (
    CandorDetector,
    DetectorParts,
    GarbleSettings,
    ShortRefusalSettings,
    StreamSettings,
)
from proxy.detect.features import Windows
from proxy.detect.language import LanguageWords
from proxy.detect.lexicon import LEXICON_CATEGORIES, Lexicon, PhraseRule
from proxy.detect.model import LinearModel, Scorer, Thresholds
from proxy.detect.refusal import RefusalWords
from proxy.detect.request import RequestWords
from proxy.detect.topics import Topic, TopicIndex

DEFAULT_POLICIES = pathlib.Path(__file__).resolve().parents[2] / "policies"


def default_policies() -> pathlib.Path:
    """The policies folder read when none is named: `CANDOR_POLICIES_DIR`, as the proxy reads
    it (the image sets it: its package has no `policies/` beside it), else the repository's."""
    return pathlib.Path(os.environ.get("CANDOR_POLICIES_DIR") or DEFAULT_POLICIES)


# The word classes of `RefusalWords` that are sets of word tokens (the tuples, the `_cjk` ones and
# `landmarks`, are substrings).
_TOKEN_CLASSES = frozenset(
    f.name for f in dataclasses.fields(RefusalWords) if str(f.type).startswith("frozenset")
)


class PolicyError(ValueError):
    """A detector data file is missing or malformed."""

    def __init__(self, path: pathlib.Path, where: str, field: str, problem: str) -> None:
        super().__init__(f"{path}: {_location(where, field)}{problem}")
        self.path = path
        self.where = where
        self.field = field


def _location(where: str, field: str) -> str:
    """Where in the file: the rule or section and the field, each when there is one (`-`: the
    problem is with the whole of `where`; `file`: with the whole file)."""
    if field == "-":
        return "" if where == "file" else f"{where}: "
    if field == where:
        return f"{field}: "
    return f"{where}: field {field!r}: "


def _read_yaml(path: pathlib.Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(path, "file", "-", "no such file") from None
    except UnicodeDecodeError as exc:  # its own message names no file
        raise PolicyError(path, "file", "-", f"not UTF-8 text (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise PolicyError(path, "file", "-", f"invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise PolicyError(path, "file", "-", "top level must be a mapping")
    return data


def _strings(path: pathlib.Path, where: str, field: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise PolicyError(path, where, field, "must be a non-empty list of strings")
    out: list[str] = []
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise PolicyError(path, where, f"{field}[{i}]", "must be a string")
        out.append(str(item))
    return tuple(out)


def _int(path: pathlib.Path, where: str, field: str, value: Any, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PolicyError(path, where, field, "must be a non-negative integer")
    return value


Forms = Mapping[str, tuple[str, ...]]


def load_forms(path: pathlib.Path) -> Forms:
    """Parse `traditional.yaml` (when there is one): each Chinese entry's other forms."""
    if not path.is_file():
        return {}
    raw = _read_yaml(path).get("forms") or {}
    if not isinstance(raw, dict):
        raise PolicyError(path, "forms", "forms", "must be a mapping of entries to lists")
    return {str(k): _strings(path, "forms", str(k), v) for k, v in raw.items()}


def _with_forms(entries: tuple[str, ...], forms: Forms | None) -> tuple[str, ...]:
    """`entries`, each followed by its other `forms` (none when there are none)."""
    if not forms:
        return entries
    out = dict.fromkeys(entries)
    for entry in entries:
        out.update(dict.fromkeys(forms.get(entry, ())))
    return tuple(out)


def load_lexicon(path: pathlib.Path, forms: Forms | None = None) -> Lexicon:
    """Parse `lexicon.yaml`: a list of rules with name, category and phrases (with the other
    `forms` of each)."""
    rules_raw = _read_yaml(path).get("rules")
    if not isinstance(rules_raw, list):
        raise PolicyError(path, "rules", "rules", "must be a list")
    rules: list[PhraseRule] = []
    for i, raw in enumerate(rules_raw):
        where = f"rule #{i}"
        if not isinstance(raw, dict):
            raise PolicyError(path, where, "-", "must be a mapping")
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise PolicyError(path, where, "name", "must be a non-empty string")
        where = f"rule {name!r}"
        category = raw.get("category")
        if category not in LEXICON_CATEGORIES:
            choices = ", ".join(sorted(LEXICON_CATEGORIES))
            raise PolicyError(path, where, "category", f"must be one of {choices}")
        phrases = _with_forms(_strings(path, where, "phrases", raw.get("phrases")), forms)
        rules.append(PhraseRule(name, str(category), phrases))
    return Lexicon(rules)


def load_topics(path: pathlib.Path, forms: Forms | None = None) -> TopicIndex:
    """Parse `topics.yaml`: a list of topics with name and keywords, and the `places` (with the
    other `forms` of each)."""
    doc = _read_yaml(path)
    raw_topics = doc.get("topics")
    if not isinstance(raw_topics, list):
        raise PolicyError(path, "topics", "topics", "must be a list")
    topics: list[Topic] = []
    for i, raw in enumerate(raw_topics):
        where = f"topic #{i}"
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise PolicyError(path, where, "name", "must be a mapping with a string name")
        where = f"topic {raw['name']!r}"
        keywords = _strings(path, where, "keywords", raw.get("keywords"))
        topics.append(Topic(raw["name"], _with_forms(keywords, forms)))
    places = doc.get("places")
    named = _strings(path, "places", "places", places) if places else ()
    return TopicIndex(topics, _with_forms(named, forms))


def _model(path: pathlib.Path, name: str, raw: Any) -> LinearModel:
    if not isinstance(raw, dict):
        raise PolicyError(path, f"model {name!r}", "-", "must be an object")
    weights = raw.get("weights")
    bias = raw.get("bias")
    if not isinstance(weights, dict) or not all(
        isinstance(v, int | float) for v in weights.values()
    ):
        raise PolicyError(path, f"model {name!r}", "weights", "must map feature to number")
    if not isinstance(bias, int | float):
        raise PolicyError(path, f"model {name!r}", "bias", "must be a number")
    return LinearModel({str(k): float(v) for k, v in weights.items()}, float(bias))


def load_scorer(path: pathlib.Path) -> Scorer:
    """Parse the weights file written by `candor train`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(path, "file", "-", "no such file (run `candor train`)") from None
    except UnicodeDecodeError as exc:
        raise PolicyError(path, "file", "-", f"not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise PolicyError(path, "file", "-", f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PolicyError(path, "file", "-", "top level must be an object")
    raw_t = data.get("thresholds")
    if not isinstance(raw_t, dict):
        raise PolicyError(path, "thresholds", "thresholds", "must be an object")
    values: dict[str, float] = {}
    for key in ("flag", "stop", "release", "settle"):
        value = raw_t.get(key)
        if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
            raise PolicyError(path, "thresholds", key, "must be a number in [0, 1]")
        values[key] = float(value)
    return Scorer(
        whole=_model(path, "whole", data.get("whole")),
        early=_model(path, "early", data.get("early")),
        thresholds=Thresholds(**values),
    )


def load_parts(policies_dir: pathlib.Path, scorer: Scorer | None = None) -> DetectorParts:
    """Read `policies_dir/detector/detector.yaml` and the files it names."""
    base = policies_dir / "detector"
    cfg_path = base / "detector.yaml"
    cfg = _read_yaml(cfg_path)
    files = cfg.get("files") or {}
    win = cfg.get("windows") or {}
    stream = cfg.get("stream") or {}
    words = cfg.get("request_words") or {}
    garble = cfg.get("garbled") or {}
    short = cfg.get("short_refusal") or {}
    langs = cfg.get("languages") or {}
    talk = cfg.get("conversation") or {}
    sections = {
        "files": files,
        "windows": win,
        "stream": stream,
        "request_words": words,
        "garbled": garble,
        "short_refusal": short,
        "languages": langs,
        "conversation": talk,
    }
    for name, section in sections.items():
        if not isinstance(section, dict):
            raise PolicyError(cfg_path, name, name, "must be a mapping")

    def file_of(field: str, default: str) -> pathlib.Path:
        name = files.get(field, default)
        if not isinstance(name, str):
            raise PolicyError(cfg_path, "files", field, "must be a file name")
        return base / name

    forms = load_forms(file_of("traditional", "traditional.yaml"))

    def lower_words(where: str, section: dict[str, Any], field: str) -> frozenset[str]:
        value = section.get(field)
        if value is None:
            return frozenset()
        found = _with_forms(_strings(cfg_path, where, field, value), forms)
        return frozenset(s.lower() for s in found)

    def word_set(field: str) -> frozenset[str]:
        return lower_words("request_words", words, field)

    def short_words(field: str) -> frozenset[str]:
        return lower_words("short_refusal", short, field)

    def refusal_words() -> RefusalWords:
        # Every class from the list of the same name; the `_cjk` ones are substrings.
        classes: dict[str, Any] = {}
        for f in dataclasses.fields(RefusalWords):
            found = short_words(f.name)
            classes[f.name] = found if f.name in _TOKEN_CLASSES else tuple(found)
        return RefusalWords(**classes)

    def exceptions() -> dict[str, dict[str, frozenset[str]]]:
        value = short.get("exceptions") or {}
        where = "short_refusal.exceptions"
        if not isinstance(value, dict):
            raise PolicyError(cfg_path, "short_refusal", "exceptions", "must be a mapping")
        out: dict[str, dict[str, frozenset[str]]] = {}
        for code, classes in value.items():
            if not isinstance(classes, dict) or not all(c in _TOKEN_CLASSES for c in classes):
                raise PolicyError(
                    cfg_path, where, str(code), "must map word classes (speaker, turn...) to lists"
                )
            out[str(code)] = {
                str(c): frozenset(s.lower() for s in _strings(cfg_path, where, f"{code}.{c}", ws))
                for c, ws in classes.items()
            }
        return out

    return DetectorParts(
        lexicon=load_lexicon(file_of("lexicon", "lexicon.yaml"), forms),
        topics=load_topics(file_of("topics", "topics.yaml"), forms),
        request_words=RequestWords(
            word_set("long"),
            word_set("creative"),
            word_set("ignore"),
            word_set("everyday"),
            word_set("moving_on"),
            word_set("economy"),
        ),
        windows=Windows(
            head=_int(cfg_path, "windows", "head", win.get("head"), 400),
            tail=_int(cfg_path, "windows", "tail", win.get("tail"), 200),
            head_cjk=_int(cfg_path, "windows", "head_cjk", win.get("head_cjk"), 400),
            body=_int(cfg_path, "windows", "body", win.get("body"), 2000),
            body_cjk=_int(cfg_path, "windows", "body_cjk", win.get("body_cjk"), 2000),
        ),
        scorer=scorer if scorer is not None else load_scorer(file_of("weights", "weights.json")),
        garble=GarbleSettings(
            min_words=_int(cfg_path, "garbled", "min_words", garble.get("min_words"), 3),
            window=_int(cfg_path, "garbled", "window", garble.get("window"), 2400),
        ),
        languages=LanguageWords.of(
            {
                str(code): [w.lower() for w in _strings(cfg_path, "languages", str(code), common)]
                for code, common in langs.items()
            }
        ),
        short_refusal=ShortRefusalSettings(
            max_chars=_int(cfg_path, "short_refusal", "max_chars", short.get("max_chars"), 300),
            steer_chars=_int(
                cfg_path, "short_refusal", "steer_chars", short.get("steer_chars"), 600
            ),
            guide_chars=_int(
                cfg_path, "short_refusal", "guide_chars", short.get("guide_chars"), 1800
            ),
            filler_chars=_int(
                cfg_path, "short_refusal", "filler_chars", short.get("filler_chars"), 60
            ),
            instead_chars=_int(
                cfg_path, "short_refusal", "instead_chars", short.get("instead_chars"), 160
            ),
            words=refusal_words(),
            exceptions=exceptions(),
        ),
        stream=StreamSettings(
            window=_int(cfg_path, "stream", "window", stream.get("window"), 240),
            max_hold_chars=_int(
                cfg_path, "stream", "max_hold_chars", stream.get("max_hold_chars"), 1200
            ),
        ),
        topic_turns=_int(cfg_path, "conversation", "topic_turns", talk.get("topic_turns"), 3),
    )


def load_detector(policies_dir: pathlib.Path | None = None) -> CandorDetector:
    """The shipped detector, built from `policies_dir/detector/` (`default_policies()`)."""
    return CandorDetector(load_parts(policies_dir or default_policies()))

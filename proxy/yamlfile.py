"""Reading a YAML file into a typed model; errors name the file, the line and the field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from proxy.errors import ConfigError


class YamlDocument:
    """A parsed YAML mapping that remembers the line of every key."""

    def __init__(self, path: Path, data: dict[str, Any], lines: dict[tuple[str, ...], int]):
        self.path = path
        self.data = data
        self._lines = lines

    @classmethod
    def read(cls, path: Path) -> YamlDocument:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise ConfigError(
                f"{path}:{line}: not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start})"
            ) from None
        try:
            node = yaml.compose(text)
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark else str(path)
            raise ConfigError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}:1: the file must hold a mapping")
        lines: dict[tuple[str, ...], int] = {}
        if node is not None:
            _index_lines(path, node, (), lines)
        return cls(path, data, lines)

    def depth(self, loc: tuple[str | int, ...]) -> int:
        """How many leading keys of `loc` the file has (0: not even the first)."""
        parts = tuple(str(p) for p in loc)
        for cut in range(len(parts), 0, -1):
            if parts[:cut] in self._lines:
                return cut
        return 0

    def where(self, loc: tuple[str | int, ...]) -> str:
        """`file:line` of the deepest key of `loc` that the file has."""
        cut = self.depth(loc)
        if cut == 0:
            return str(self.path)
        return f"{self.path}:{self._lines[tuple(str(p) for p in loc[:cut])]}"

    def problem(self, loc: tuple[str | int, ...], message: str) -> ConfigError:
        field = ".".join(str(p) for p in loc) or "<root>"
        return ConfigError(f"{self.where(loc)}: {field}: {message}")

    def describe(self, exc: ValidationError, prefix: tuple[str, ...] = ()) -> ConfigError:
        """One error naming every invalid field with its file and line."""
        return describe(exc, self.where, prefix)


def describe(
    exc: ValidationError, where: Callable[[tuple[str, ...]], str], prefix: tuple[str, ...] = ()
) -> ConfigError:
    """One error naming every invalid field and `where` its value came from."""
    problems = []
    for error in exc.errors():
        loc = (*prefix, *(str(p) for p in error["loc"]))
        problems.append(f"{where(loc)}: {'.'.join(loc) or '<root>'}: {error['msg']}")
    return ConfigError("invalid configuration:\n  " + "\n  ".join(problems))


_NO_KEY = object()  # a merge key (`<<`), or one that is no scalar: never a duplicate


def _loaded_key(key: yaml.Node) -> object:
    """A key as loading makes it: `1` and `'1'` are two keys, `1` and `01` (or `yes` and
    `true`, in YAML 1.1) one."""
    if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
        return _NO_KEY
    try:
        loaded = yaml.SafeLoader("").construct_object(key)
    except yaml.YAMLError:
        return ("raw", key.tag, key.value)
    return (type(loaded).__name__, loaded)


def _index_lines(
    file: Path, node: yaml.Node, prefix: tuple[str, ...], lines: dict[tuple[str, ...], int]
) -> None:
    """Record the line of every key; refuse a key twice in one mapping, which YAML loaders
    accept silently (the last one wins, and the first was likely the one meant)."""
    if isinstance(node, yaml.MappingNode):
        seen: set[object] = set()
        for key, value in node.value:
            name = str(key.value)
            loaded = _loaded_key(key)
            if loaded in seen:
                raise ConfigError(f"{file}:{key.start_mark.line + 1}: duplicate key `{name}`")
            if loaded is not _NO_KEY:
                seen.add(loaded)
            path = (*prefix, name)
            lines[path] = key.start_mark.line + 1
            _index_lines(file, value, path, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = (*prefix, str(index))
            lines[path] = item.start_mark.line + 1
            _index_lines(file, item, path, lines)

"""YAML files whose errors name the file, the line and the field (topologies, GSLB configs).

The text is composed once to learn the line of every field path (`routers.rc.routes[0]`),
then loaded as plain data; a loader that finds a problem raises `ConfigFileError(where,
problem)` and `located()` fills in the file and the line of the longest known prefix.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import yaml


class ConfigFileError(ValueError):
    """A file that cannot be used; `where` is the field path, `source` the file."""

    def __init__(self, where: str, problem: str, source: str | None = None,
                 line: int | None = None) -> None:
        self.where = where
        self.problem = problem
        self.source = source
        self.line = line
        super().__init__(self.render())

    def render(self) -> str:
        place = self.source or "<config>"
        if self.line is not None:
            place += f":{self.line}"
        where = f" {self.where}:" if self.where else ""
        return f"{place}:{where} {self.problem}"

    def located(self, source: str, lines: dict[str, int]) -> ConfigFileError:
        self.source = source
        self.line = line_of(self.where, lines)
        self.args = (self.render(),)
        return self


def read_text(path: str | Path, error: type[ConfigFileError]) -> str:
    """A config file's text; one that cannot be read is `error` naming the file."""
    try:
        return Path(path).read_text()
    except OSError as e:
        raise error("", f"cannot read: {e.strerror}", source=str(path)) from None


def load_yaml(text: str, source: str, error: type[ConfigFileError]) -> tuple[Any, dict[str, int]]:
    """(data, line of each field path); YAML syntax errors and duplicate keys raise `error`."""
    lines: dict[str, int] = {}
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            _index(node, "", lines, source, error)
        return yaml.safe_load(text), lines
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        raise error("", f"YAML syntax: {e.problem or e.context}", source, line) from None
    except yaml.YAMLError as e:
        raise error("", f"YAML: {e}", source) from None


def _index(node: yaml.Node, path: str, lines: dict[str, int], source: str,
           error: type[ConfigFileError]) -> None:
    """Record the line of every field path; reject duplicate keys (YAML would keep one)."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for k, v in node.value:
            key = str(k.value)
            sub = f"{path}.{key}" if path else key
            if key in seen:
                raise error(sub, "duplicate key", source, k.start_mark.line + 1)
            seen.add(key)
            lines[sub] = k.start_mark.line + 1
            _index(v, sub, lines, source, error)
            lines[sub] = k.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _index(v, f"{path}[{i}]", lines, source, error)


def line_of(where: str, lines: dict[str, int]) -> int | None:
    """Line of the longest known prefix of field path `where`."""
    while where:
        if where in lines:
            return lines[where]
        cut = max(where.rfind("."), where.rfind("["))
        where = where[:cut] if cut > 0 else ""
    return lines.get("")


def mapping(value: Any, where: str, keys: set[str] | None, error: type[ConfigFileError]) -> dict:
    """`value` as a dict (None -> {}); unknown keys are an error naming them."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise error(where, f"expected a mapping, got {type(value).__name__}")
    if keys is not None:
        for k in value:
            if k not in keys:
                raise error(f"{where}.{k}" if where else str(k),
                            f"unknown field {k!r} (expected one of: "
                            + ", ".join(sorted(keys)) + ")")
    return value


def address(value: Any, where: str, error: type[ValueError]) -> IPv4Address:
    """`value` as an IPv4 address; anything else is `error(where, problem)`."""
    try:
        return IPv4Address(str(value))
    except ValueError:
        raise error(where, f"not an IPv4 address: {value!r}") from None


def number(value: Any, where: str, error: type[ConfigFileError]) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(where, f"expected a number, got {value!r}")
    return float(value)

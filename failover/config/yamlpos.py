"""YAML loading that remembers where every value came from (file and line).

PyYAML's composer gives line numbers on nodes; we build plain Python data from the node tree and,
alongside it, a map from the key path (``("sites", 0, "region")``) to the 1-based line. Pydantic
errors carry the same path in ``loc``, so every validation error can name its line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from failover.core import errors

PathKey = tuple[str | int, ...]


class Located:
    """Parsed YAML data plus the line of every path in it."""

    def __init__(self, data: Any, lines: dict[PathKey, int], file: str) -> None:
        self.data = data
        self.lines = lines
        self.file = file

    def line_of(self, path: PathKey) -> int | None:
        """The line of ``path`` or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def issue(self, path: PathKey, message: str) -> errors.Issue:
        return errors.Issue(self.file, self.line_of(path), message)


def _build(node: yaml.Node, path: PathKey, lines: dict[PathKey, int], file: str) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node)) if not isinstance(key_node, yaml.ScalarNode) \
                else _scalar(key_node)
            if key in out:
                raise errors.ConfigError([errors.Issue(
                    file, key_node.start_mark.line + 1, f"duplicate key {key!r}")])
            child = (*path, key if isinstance(key, (str, int)) else str(key))
            lines[child] = key_node.start_mark.line + 1
            out[key] = _build(value_node, child, lines, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), lines, file) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    return yaml.safe_load(yaml.serialize(node))


def load_text(text: str, file: str) -> Located:
    """Parse ``text``; a syntax error becomes a ConfigError naming file and line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise errors.ConfigError([errors.Issue(file, line, f"YAML syntax error: {exc.problem}")]) from exc
    except yaml.YAMLError as exc:
        raise errors.ConfigError([errors.Issue(file, None, f"YAML error: {exc}")]) from exc
    lines: dict[PathKey, int] = {}
    data = {} if node is None else _build(node, (), lines, file)
    return Located(data, lines, file)


def load_file(path: Path) -> Located:
    """Read and parse ``path``; an unreadable file becomes a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise errors.ConfigError([errors.Issue(str(path), None, f"cannot read: {exc.strerror}")]) from exc
    return load_text(text, str(path))

"""YAML loading that remembers where every value came from (file and line), and refuses hostile input.

PyYAML's composer gives line numbers on nodes; we build plain Python data from the node tree and,
alongside it, a map from the key path (``("sites", 0, "region")``) to the 1-based line. Pydantic
errors carry the same path in ``loc``, so every validation error can name its line.

Config and playbook files are typed by people in a bad hour and may be copied from anywhere, so
loading is bounded before it is clever: the file is read up to :data:`MAX_BYTES` (``/dev/zero``
is an error, not a MemoryError), decoded as UTF-8 explicitly (UTF-16 or Latin-1 is an error naming
the line), nesting deeper than :data:`MAX_DEPTH` is refused from the event stream before the
recursive composer sees it, and alias expansion is counted against :data:`MAX_NODES` (a 500-byte
anchor/alias bomb fails in milliseconds). Merge keys (``<<``), non-scalar mapping keys and
unknown tags are refused with their line. Every failure is a :class:`ConfigError` with file:line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from failover.core import errors

PathKey = tuple[str | int, ...]

MAX_BYTES = 1024 * 1024  #: a config or playbook is a few KiB; 1 MiB is generous
MAX_DEPTH = 64  #: nesting of mappings and sequences
MAX_NODES = 200_000  #: values after alias expansion
MAX_SCALAR = 64 * 1024  #: characters of one scalar
MERGE_TAG = "tag:yaml.org,2002:merge"
TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
#: libyaml's parser when PyYAML has it (16x faster; the same events, nodes and marks)
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Located:
    """Parsed YAML data plus the line of every path in it."""

    def __init__(self, data: Any, lines: dict[PathKey, int], file: str) -> None:
        self.data = data
        self.lines = lines
        self.file = file

    def line_of(self, path: PathKey) -> int:
        """The line of ``path`` or of its nearest ancestor that has one (line 1 for an empty file)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return 1

    def issue(self, path: PathKey, message: str) -> errors.Issue:
        return errors.Issue(self.file, self.line_of(path), message)


def _fail(file: str, line: int | None, message: str) -> errors.ConfigError:
    return errors.ConfigError([errors.Issue(file, line if line is not None else 1, message)])


class _Builder:
    """Node tree → plain data, counting every value (aliases included) against the budget."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[PathKey, int] = {}
        self.budget = MAX_NODES
        self.constructor = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node, path: PathKey, depth: int = 0) -> Any:
        self.budget -= 1
        line = node.start_mark.line + 1
        if self.budget < 0:
            raise _fail(self.file, line, f"more than {MAX_NODES} values after expanding aliases "
                                         "(an anchor/alias bomb?); write the values out")
        if depth > MAX_DEPTH:
            raise _fail(self.file, line, f"nested deeper than {MAX_DEPTH} levels")
        self.lines.setdefault(path, line)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        return self.scalar(node)

    def _mapping(self, node: yaml.MappingNode, path: PathKey, depth: int) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == MERGE_TAG:
                raise _fail(self.file, line, "merge keys (<<) are not supported; write the keys out")
            if not isinstance(key_node, yaml.ScalarNode):
                raise _fail(self.file, line, "a mapping key must be a plain value, not a mapping or list")
            key = self.scalar(key_node)
            if isinstance(key, (list, dict, bytes)) or key != key:
                raise _fail(self.file, line, f"unsupported mapping key {key_node.value!r}")
            if key in out:
                raise _fail(self.file, line, f"duplicate key {key!r}")
            child = (*path, key if isinstance(key, (str, int)) and not isinstance(key, bool) else str(key))
            self.lines[child] = line
            out[key] = self.build(value_node, child, depth + 1)
        return out

    def scalar(self, node: yaml.Node) -> Any:
        line = node.start_mark.line + 1
        if isinstance(node.value, str) and len(node.value) > MAX_SCALAR:
            raise _fail(self.file, line, f"a value longer than {MAX_SCALAR} characters")
        if node.tag == TIMESTAMP_TAG:
            return node.value  # dates stay text: every consumer wants strings, and JSON has no dates
        try:
            value = self.constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError, TypeError) as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            raise _fail(self.file, line, f"cannot read the value {str(node.value)[:40]!r}: {problem}") from None
        if isinstance(value, bytes):
            raise _fail(self.file, line, "binary values (!!binary) are not supported")
        return value


def _check_events(text: str, file: str) -> None:
    """Refuse deep nesting from the (iterative) event stream, before the recursive composer runs."""
    depth = 0
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark is not None else None
                raise _fail(file, line, f"nested deeper than {MAX_DEPTH} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def load_text(text: str, file: str) -> Located:
    """Parse ``text``; any problem becomes a ConfigError naming file and line."""
    try:
        _check_events(text, file)
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise _fail(file, line, f"YAML syntax error: {exc.problem or exc.context}") from None
    except yaml.reader.ReaderError as exc:
        line = text[:max(0, exc.position)].count("\n") + 1
        raise _fail(file, line, f"unacceptable character #x{exc.character:04x} "
                                "(control characters are not allowed; save the file as plain UTF-8 text)") from None
    except yaml.YAMLError as exc:
        raise _fail(file, None, f"YAML error: {exc}") from None
    except RecursionError:
        raise _fail(file, None, f"nested deeper than {MAX_DEPTH} levels") from None
    builder = _Builder(file)
    data = {} if node is None else builder.build(node, ())
    return Located(data, builder.lines, file)


def read_text(path: Path) -> str:
    """Read ``path`` as UTF-8 text of at most :data:`MAX_BYTES`; any problem is a ConfigError."""
    where = str(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise _fail(where, None, f"cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    if len(data) > MAX_BYTES:
        raise _fail(where, None, f"larger than {MAX_BYTES // 1024} KiB; is this the right file?")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise _fail(where, line, f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                                 "save the file as UTF-8") from None


def load_file(path: Path) -> Located:
    """Read and parse ``path``; an unreadable or hostile file becomes a ConfigError."""
    return load_text(read_text(path), str(path))

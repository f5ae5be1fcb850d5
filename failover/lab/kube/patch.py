"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902), as the API server applies them."""

from __future__ import annotations

from typing import Any


def clone(value: Any) -> Any:
    """A deep copy of a JSON document; several times faster than :func:`copy.deepcopy` (no memo)."""
    if isinstance(value, dict):
        return {k: clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clone(v) for v in value]
    return value


class PatchError(ValueError):
    """The patch cannot be applied (bad operation, missing path, failed ``test``)."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return clone(patch)
    result = clone(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> tuple[Any, str]:
    node = doc
    for part in parts[:-1]:
        node = _child(node, part)
    return node, parts[-1]


def _child(node: Any, part: str) -> Any:
    if isinstance(node, dict):
        if part not in node:
            raise PatchError(f"path element {part!r} does not exist")
        return node[part]
    if isinstance(node, list):
        try:
            return node[int(part)]
        except (ValueError, IndexError) as exc:
            raise PatchError(f"invalid array index {part!r}") from exc
    raise PatchError(f"cannot descend into {type(node).__name__} at {part!r}")


def _get(doc: Any, path: str) -> Any:
    node = doc
    for part in _pointer(path):
        node = _child(node, part)
    return node


def _add(doc: Any, path: str, value: Any) -> Any:
    parts = _pointer(path)
    if not parts:
        return clone(value)
    parent, last = _parent(doc, parts)
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if index > len(parent):
            raise PatchError(f"index {index} out of range")
        parent.insert(index, clone(value))
    elif isinstance(parent, dict):
        parent[last] = clone(value)
    else:
        raise PatchError(f"cannot add to {type(parent).__name__}")
    return doc


def _remove(doc: Any, path: str) -> Any:
    parent, last = _parent(doc, _pointer(path))
    if isinstance(parent, list):
        try:
            parent.pop(int(last))
        except (ValueError, IndexError) as exc:
            raise PatchError(f"cannot remove {path}") from exc
    elif isinstance(parent, dict) and last in parent:
        del parent[last]
    else:
        raise PatchError(f"cannot remove {path}: it does not exist")
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902: add, remove, replace, move, copy, test — all or nothing."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch is a list of operations")
    doc = clone(target)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid operation {op!r}")
        kind, path = op["op"], op["path"]
        if kind == "add":
            doc = _add(doc, path, op.get("value"))
        elif kind == "remove":
            doc = _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)
            doc = _add(_remove(doc, path), path, op.get("value")) if _pointer(path) else op.get("value")
        elif kind in ("move", "copy"):
            value = clone(_get(doc, op["from"]))
            if kind == "move":
                doc = _remove(doc, op["from"])
            doc = _add(doc, path, value)
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise PatchError(f"test operation failed at {path}")
        else:
            raise PatchError(f"unknown operation {kind!r}")
    return doc

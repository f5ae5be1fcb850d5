"""Label and field selectors, in the API server's syntax.

Labels: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x,y)``, ``a`` (exists), ``!a``
(does not exist); requirements joined by commas are ANDed. Fields: ``path=value``,
``path==value``, ``path!=value`` on any dotted path (``metadata.name``, ``status.phase``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from failover.lab.kube import types as kt

_SET = re.compile(r"^\s*(!?)([A-Za-z0-9_./-]+)\s+(in|notin)\s*\(([^)]*)\)\s*$")
_EQ = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|=|!=)\s*([A-Za-z0-9_./-]*)\s*$")
_EXISTS = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return present and value == self.values[0]
        if self.op == "!=":
            return not present or value != self.values[0]
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        if self.op == "exists":
            return present
        return not present


def _split(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p for p in (x.strip() for x in parts) if p]


def parse_labels(selector: str | None) -> tuple[Requirement, ...]:
    """Parse a label selector; raise :class:`~failover.lab.kube.types.Invalid` when malformed."""
    out: list[Requirement] = []
    for part in _split(selector or ""):
        if m := _SET.match(part):
            values = tuple(v.strip() for v in m.group(4).split(",") if v.strip())
            out.append(Requirement(m.group(2), m.group(3), values))
        elif m := _EQ.match(part):
            out.append(Requirement(m.group(1), "!=" if m.group(2) == "!=" else "=", (m.group(3),)))
        elif m := _EXISTS.match(part):
            out.append(Requirement(m.group(2), "!exists" if m.group(1) else "exists"))
        else:
            raise kt.Invalid(f"unable to parse requirement: {part!r}")
    return tuple(out)


def parse_fields(selector: str | None) -> tuple[tuple[str, str, str], ...]:
    out: list[tuple[str, str, str]] = []
    for part in _split(selector or ""):
        m = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            raise kt.Invalid(f"invalid field selector: {part!r}")
        out.append((m.group(1), "!=" if m.group(2) == "!=" else "=", m.group(3)))
    return tuple(out)


def field_value(obj: kt.KubeObject, path: str) -> str | None:
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return None if value is None else str(value)


def matches(
    obj: kt.KubeObject, labels: tuple[Requirement, ...], fields: tuple[tuple[str, str, str], ...]
) -> bool:
    obj_labels = (obj.get("metadata") or {}).get("labels") or {}
    if not all(r.matches(obj_labels) for r in labels):
        return False
    for path, op, expected in fields:
        actual = field_value(obj, path) or ""
        if (actual == expected) != (op == "="):
            return False
    return True

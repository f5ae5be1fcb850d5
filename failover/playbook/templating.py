"""``{{ a.b.c }}`` templates in playbook values, without a template engine.

Playbooks only ever need *lookups* (``params.to``, ``outputs.select-backup.groups``, ``run.id``,
``item``), never logic, so a Jinja dependency would add power nobody should use in a failover
path. Two rules:

* a value that is exactly one template keeps the looked-up value's type (a list stays a list, an
  int an int), so ``foreach: "{{ outputs.select-backup.groups }}"`` yields a list;
* anything else is string interpolation (non-strings rendered as compact JSON, ``true``/``false``).

Path segments may contain ``-`` (step ids do). Lists are indexed with a numeric segment.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping

from failover.core import errors
from failover.store import JSON

TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}")
SEGMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$|^[0-9]+$")


class TemplateError(errors.PermanentError):
    """A template cannot be resolved (a missing output key, a malformed path)."""


def parse_path(expr: str) -> tuple[str, ...]:
    """``"outputs.select-backup.groups"`` → ``("outputs", "select-backup", "groups")``."""
    parts = tuple(expr.split("."))
    if not expr or not all(SEGMENT.match(p) for p in parts):
        raise TemplateError(f"malformed template path {expr!r} (expected dotted names like params.to)")
    return parts


def references(value: JSON) -> Iterator[str]:
    """Every template expression inside ``value`` (recursively), as written."""
    if isinstance(value, str):
        for match in TEMPLATE.finditer(value):
            yield match.group(1)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from references(item)


def unclosed(value: JSON) -> str | None:
    """The first string in ``value`` with a ``{{`` or ``}}`` outside a complete template, else None."""
    if isinstance(value, str):
        rest = TEMPLATE.sub("", value)
        return value[:60] if "{{" in rest or "}}" in rest else None
    items = value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else []
    return next((found for item in items if (found := unclosed(item)) is not None), None)


def has_template(value: JSON) -> bool:
    return next(references(value), None) is not None


def lookup(path: tuple[str, ...], scope: Mapping[str, JSON]) -> JSON:
    current: JSON = dict(scope)
    for depth, part in enumerate(path):
        where = ".".join(path[: depth + 1])
        if isinstance(current, dict):
            if part not in current:
                raise TemplateError(f"{{{{ {'.'.join(path)} }}}}: {where} is not defined")
            current = current[part]
        elif isinstance(current, list) and part.isdigit():
            index = int(part)
            if index >= len(current):
                raise TemplateError(f"{{{{ {'.'.join(path)} }}}}: {where} is out of range")
            current = current[index]
        else:
            raise TemplateError(f"{{{{ {'.'.join(path)} }}}}: {'.'.join(path[:depth])} has no {part!r}")
    return current


def _text(value: JSON) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def render(value: JSON, scope: Mapping[str, JSON]) -> JSON:
    """Resolve every template in ``value`` against ``scope`` (see module docstring)."""
    if isinstance(value, str):
        whole = TEMPLATE.fullmatch(value.strip())
        if whole is not None and value.count("{{") == 1:
            return lookup(parse_path(whole.group(1)), scope)
        return TEMPLATE.sub(lambda m: _text(lookup(parse_path(m.group(1)), scope)), value)
    if isinstance(value, list):
        return [render(v, scope) for v in value]
    if isinstance(value, dict):
        return {k: render(v, scope) for k, v in value.items()}
    return value

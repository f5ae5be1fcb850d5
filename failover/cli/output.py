"""Output helpers shared by the commands: JSON for scripts, rich text for people."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console

from failover.core import secrets

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False)


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (Path, Enum)):
        return str(value.value if isinstance(value, Enum) else value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(data: Any) -> str:
    """JSON text with secrets redacted (a last line of defence)."""
    return secrets.redact(json.dumps(data, default=_default, indent=2, sort_keys=False))


def emit_json(data: Any) -> None:
    sys.stdout.write(dumps(data) + "\n")
    sys.stdout.flush()


def bounded_int(low: int, high: int) -> Any:
    """An argparse ``type`` accepting integers from ``low`` to ``high`` (bad input exits 2, never an
    OverflowError deep in the store)."""
    import argparse

    def parse(text: str) -> int:
        try:
            value = int(text, 10) if len(text) <= 12 else None
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer from {low} to {high}, not {text[:20]!r}")
        return value

    return parse

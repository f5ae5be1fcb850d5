"""Output helpers shared by the commands: JSON for scripts, text for people.

Nothing heavy is imported here at module level: ``rich`` is loaded the first time a command
touches :data:`console` or :data:`err_console` (module ``__getattr__``), pydantic only when a
model is serialised. The fast read commands (``status``, ``history``) print plain text with ANSI
colours (:func:`paint`) and never load rich at all.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from failover.core import secrets

if TYPE_CHECKING:
    from rich.console import Console

    console: Console
    err_console: Console


def __getattr__(name: str) -> Console:
    """Create the rich consoles on first use (importing rich costs more than the whole `status`)."""
    if name not in ("console", "err_console"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from rich.console import Console

    made = Console(highlight=False, soft_wrap=True) if name == "console" else \
        Console(stderr=True, highlight=False)
    globals()[name] = made
    return made


def _default(value: Any) -> Any:
    if hasattr(value, "model_dump"):  # a pydantic model, without importing pydantic
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


def add_verbose_flag(parser: argparse.ArgumentParser) -> None:
    """``--verbose`` for a command with a live view (see :func:`failover.cli.live.quiet_logs`)."""
    parser.add_argument("--verbose", action="store_true",
                        help="show every log line above the live view (default: only warnings and errors; "
                             "everything goes to a log file in the state directory)")


# --- plain terminal text ---------------------------------------------------------------------------

_ANSI = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}


def color_enabled(stream: IO[str] | None = None) -> bool:
    """Colours only on a terminal, and never with ``NO_COLOR`` set (https://no-color.org)."""
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return bool(getattr(stream, "isatty", lambda: False)())


def paint(text: str, style: str, *, color: bool) -> str:
    """``text`` in ``style`` (space-separated names of :data:`_ANSI`) when ``color`` is on."""
    codes = [_ANSI[s] for s in style.split() if s in _ANSI]
    if not color or not codes or not text:
        return text
    return f"\x1b[{';'.join(codes)}m{text}\x1b[0m"


def terminal_width(stream: IO[str] | None = None) -> int:
    """Columns of the terminal (``COLUMNS`` wins); 80 when output goes to a pipe or file."""
    stream = stream or sys.stdout
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return shutil.get_terminal_size((80, 24)).columns

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

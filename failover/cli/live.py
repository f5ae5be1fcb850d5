"""A live view of a run for people at a terminal: each step as it starts, progresses and ends.

It is a :class:`~failover.playbook.observers.RunObserver`, so it sees exactly what the journal
records; with ``json_mode`` it stays silent (the command prints one JSON document at the end).

While a view is on screen, log lines would only repeat it ("run 1 step restore[group=1] attempt 1
succeeded") and push it off the screen: :func:`quiet_logs` sends every record to a file in the
state directory, lets only warnings and errors through to the terminal, and prints the file's path
at the end. Every command with a live view (``run``, ``lab demo``, later ``drill run`` and
``runbook``) wraps its view in it and takes ``--verbose`` (:func:`output.add_verbose_flag`) to
see them all.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.markup import escape

from failover.cli import output
from failover.core import secrets
from failover.playbook.observers import RunObserver

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def _terminal_handlers(root: logging.Logger) -> list[logging.Handler]:
    return [h for h in root.handlers if isinstance(h, logging.StreamHandler)
            and not isinstance(h, logging.FileHandler) and getattr(h, "stream", None) in (sys.stderr, sys.stdout)]


@contextlib.contextmanager
def quiet_logs(state_dir: Path, *, name: str, verbose: bool = False) -> Iterator[Path]:
    """Logs to ``<state_dir>/logs/<name>-<time>.log``; the terminal keeps warnings and errors.

    With ``verbose`` the terminal keeps everything too. Records are redacted in the file as on the
    terminal. On exit the handlers are restored and the file's path is printed on stderr."""
    directory = state_dir / "logs"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{datetime.now():%Y%m%d-%H%M%S}.log"
    root = logging.getLogger()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(secrets.RedactingFormatter(logging.Formatter(LOG_FORMAT)))
    saved = [(h, h.level) for h in _terminal_handlers(root)]
    if not verbose:
        for h, level in saved:
            h.setLevel(max(level, logging.WARNING))
    root.addHandler(handler)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        handler.close()
        for h, level in saved:
            h.setLevel(level)
        print(f"logs: {path}", file=sys.stderr)


def say(text: str) -> None:
    """Print rich markup; on a terminal, long lines wrap between words (never inside a name),
    continuation lines indented under the text after the line's first word (its time stamp)."""
    console = output.console
    if not console.is_terminal:
        console.print(text, soft_wrap=True)
        return
    from rich.text import Text

    rich_text = Text.from_markup(text)
    lead = re.match(r"\s*\S+\s+", rich_text.plain)
    hang = len(lead.group(0)) if lead and len(lead.group(0)) < console.width // 2 else 0
    first = rich_text.wrap(console, console.width, overflow="fold")[0]
    rest = rich_text[len(first.plain):]
    first.rstrip()
    console.print(first, soft_wrap=True)
    rest = rest[len(rest.plain) - len(rest.plain.lstrip()):]
    if not rest.plain.strip():
        return
    for line in rest.wrap(console, max(20, console.width - hang), overflow="fold"):
        line.rstrip()
        console.print(Text(" " * hang) + line, soft_wrap=True)


_ICONS = {"succeeded": "[green]✓[/green]", "failed": "[red]✗[/red]", "skipped": "[dim]–[/dim]",
          "unconfirmed": "[yellow]?[/yellow]"}


class LiveView(RunObserver):
    def __init__(self, *, json_mode: bool = False, prefix: str = "", t0: float | None = None) -> None:
        self.json_mode = json_mode
        self.prefix = prefix
        self._t0 = time.monotonic() if t0 is None else t0  #: shared with other lines of the same screen

    def _say(self, text: str) -> None:
        if not self.json_mode:
            say(f"{self.prefix}[dim]{time.monotonic() - self._t0:6.1f}s[/dim] {text}")

    async def run_started(self, run: Any) -> None:
        self._say(f"[bold]run {run.id}[/bold] ({run.playbook}) started")

    async def step_started(self, run: Any, step: Any) -> None:
        self._say(f"  → {escape(str(step.key))}")

    async def step_progress(self, run: Any, step: Any, message: str) -> None:
        self._say(f"      {escape(message)}")

    async def step_finished(self, run: Any, step: Any) -> None:
        status = str(step.status)
        extra = f": {escape(str(step.error))}" if step.error else ""
        duration = getattr(step, "duration", None)
        took = f" ({duration:.1f}s)" if isinstance(duration, (int, float)) else ""
        self._say(f"  {_ICONS.get(status, status)} {escape(str(step.key))}{took}{extra}")

    async def run_finished(self, run: Any) -> None:
        self._say(f"[bold]run {run.id}[/bold] {run.phase}")


def print_summary(doc: dict[str, Any]) -> None:
    say(f"\nrun {doc['id']} ({doc['playbook']}): [bold]{doc['phase']}[/bold]  {doc.get('from')} -> {doc.get('to')}")
    if doc.get("rto_s") is not None:
        say(f"  RTO (WAZ) from outage start: {doc['rto_s']:.1f}s; from detection: "
            f"{doc.get('rto_from_detection_s') or 0:.1f}s")
    if doc.get("data_loss_window_s") is not None:
        say(f"  data-loss window: {doc['data_loss_window_s']:.1f}s (backup {doc.get('backup')})")
    for s in doc["steps"]:
        d = s.get("duration_s")
        took = "" if d is None else f"{d:.2f}s"
        say(escape(f"  {s['status']:>9}  {s['key']:<28} {took:>7} {s.get('error') or ''}"))

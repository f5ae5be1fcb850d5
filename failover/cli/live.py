"""A live view of a run for people at a terminal: each step as it starts, progresses and ends.

It is a :class:`~failover.playbook.observers.RunObserver`, so it sees exactly what the journal
records; with ``json_mode`` it stays silent (the command prints one JSON document at the end).
"""

from __future__ import annotations

import time
from typing import Any

from rich.markup import escape

from failover.cli import output
from failover.playbook.observers import RunObserver

_ICONS = {"succeeded": "[green]✓[/green]", "failed": "[red]✗[/red]", "skipped": "[dim]–[/dim]",
          "unconfirmed": "[yellow]?[/yellow]"}


class LiveView(RunObserver):
    def __init__(self, *, json_mode: bool = False, prefix: str = "") -> None:
        self.json_mode = json_mode
        self.prefix = prefix
        self._t0 = time.monotonic()

    def _say(self, text: str) -> None:
        if not self.json_mode:
            output.console.print(f"{self.prefix}[dim]{time.monotonic() - self._t0:6.1f}s[/dim] {text}")

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
    c = output.console
    c.print(f"\nrun {doc['id']} ({doc['playbook']}): [bold]{doc['phase']}[/bold]  {doc.get('from')} -> {doc.get('to')}")
    if doc.get("rto_s") is not None:
        c.print(f"  RTO (WAZ) from outage start: {doc['rto_s']:.1f}s; from detection: "
                f"{doc.get('rto_from_detection_s') or 0:.1f}s")
    if doc.get("data_loss_window_s") is not None:
        c.print(f"  data-loss window: {doc['data_loss_window_s']:.1f}s (backup {doc.get('backup')})")
    for s in doc["steps"]:
        d = s.get("duration_s")
        took = "" if d is None else f"{d:.2f}s"
        c.print(escape(f"  {s['status']:>9}  {s['key']:<28} {took:>7} {s.get('error') or ''}"))

"""Read-only views of the store shared by the daemon and the CLI's read commands.

They live here, beside the store and away from the daemon, so that ``failover status`` and
``history`` answer without importing the daemon (and with it the engine, the providers and their
HTTP clients): an operator who runs ``status`` ten times in a crisis should not wait for imports.
The documents are a contract (``--json``); the daemon re-exports these names.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from failover.store import sqlite

TERMINAL = {"succeeded", "failed", "cancelled"}

#: the file of the default store inside a state directory
DB_NAME = "failover.db"


def open_store(state_dir: Path) -> sqlite.SqliteStore:
    state_dir.mkdir(parents=True, exist_ok=True)
    return sqlite.SqliteStore(state_dir / DB_NAME)


def current_run(store: Any) -> Any | None:
    """The newest run that is not terminal (running, pending or waiting for approval)."""
    for run in store.list_runs(limit=20):
        if str(run.phase) not in TERMINAL:
            return run
    return None


def run_document(store: Any, run_id: str) -> dict[str, Any]:
    """A run as JSON: its record, every journaled step, and the failover's measurements."""
    run = store.get_run(run_id)
    steps = store.step_records(run_id)
    summary: dict[str, Any] = {}
    for step in steps:
        if str(step.key) == "mark-active" and str(step.status) == "succeeded" and isinstance(step.output, dict):
            summary = dict(step.output)
    doc: dict[str, Any] = {
        "id": str(run.id), "playbook": run.playbook, "kind": getattr(run, "kind", run.playbook),
        "phase": str(run.phase), "params": run.params,
        "created_at": _iso(getattr(run, "created_at", None)), "started_at": _iso(getattr(run, "started_at", None)),
        "finished_at": _iso(getattr(run, "finished_at", None)), "error": getattr(run, "error", None),
        "from": summary.get("from", (run.params or {}).get("from")),
        "to": summary.get("to", (run.params or {}).get("to")),
        "backup": summary.get("backup"), "outage_started_at": summary.get("outage_started_at"),
        "detected_at": summary.get("detected_at"), "verified_at": summary.get("verified_at"),
        "rto_s": summary.get("rto_s"), "rto_from_detection_s": summary.get("rto_from_detection_s"),
        "data_loss_window_s": summary.get("data_loss_window_s"),
        "steps": [{"key": str(s.key), "status": str(s.status), "attempt": getattr(s, "attempt", 1),
                   "started_at": _iso(s.started_at), "finished_at": _iso(s.finished_at),
                   "duration_s": getattr(s, "duration", None), "error": s.error, "output": s.output}
                  for s in steps],
    }
    return doc


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, datetime) else str(value)

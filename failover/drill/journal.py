"""The drill journal: drill runs, their timeline events and the resources a drill created.

It lives in the daemon's state database (``<state>/failover.db``) in tables of its own, created
here with ``IF NOT EXISTS`` — the daemon's tables keep their shapes. Every write is one short
``BEGIN IMMEDIATE`` transaction with ``synchronous=FULL``, so what a drill intends to create is on
disk *before* it exists: a drill killed with ``kill -9`` leaves a row saying what to remove, and
``failover drill cleanup`` (or the next drill) removes it. Nothing secret is ever written here:
payloads are measurements, names and sentences, passed through :func:`secrets.redact`.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from failover.core import errors, secrets

SCHEMA = """
CREATE TABLE IF NOT EXISTS drill_runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    scenario TEXT NOT NULL,
    type TEXT NOT NULL,
    label TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    scenario_doc TEXT NOT NULL,
    result TEXT
);
CREATE TABLE IF NOT EXISTS drill_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    drill_seq INTEGER NOT NULL,
    ts TEXT NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    payload TEXT
);
CREATE INDEX IF NOT EXISTS drill_events_by_drill ON drill_events(drill_seq, id);
CREATE TABLE IF NOT EXISTS drill_resources (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    drill_seq INTEGER NOT NULL,
    site TEXT NOT NULL,
    kind TEXT NOT NULL,
    namespace TEXT,
    name TEXT NOT NULL,
    planned_at TEXT NOT NULL,
    removed_at TEXT
);
"""

#: a drill in one of these states still owns resources (or might): cleanup looks at them
OPEN = ("running", "cleaning")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DrillRow:
    seq: int
    scenario: str
    type: str
    label: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    host: str
    pid: int
    scenario_doc: dict[str, Any]
    result: dict[str, Any] | None

    @property
    def id(self) -> str:
        return str(self.seq)


@dataclass(frozen=True)
class Event:
    ts: datetime
    kind: str
    text: str
    payload: dict[str, Any] | None


@dataclass(frozen=True)
class Resource:
    id: int
    site: str
    kind: str
    namespace: str | None
    name: str
    removed: bool


class DrillJournal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(str(path), timeout=5.0, isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            with self._tx() as db:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
        except sqlite3.Error as exc:
            raise errors.PermanentError(f"cannot open the drill journal in {path}: {exc}") from exc

    @classmethod
    def open(cls, state_dir: Path) -> DrillJournal:
        state_dir.mkdir(parents=True, exist_ok=True)
        return cls(state_dir / "failover.db")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise errors.TemporaryError(f"drill journal: {exc}", delay=0.2) from exc

    def _read(self, sql: str, args: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    # --- drill runs -------------------------------------------------------------------------------
    def start(self, *, scenario: str, type: str, scenario_doc: dict[str, Any], label_of: Any) -> DrillRow:
        """Create a running drill; ``label_of(seq)`` names its Kubernetes objects."""
        now = utcnow().isoformat()
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO drill_runs (scenario, type, label, status, started_at, host, pid, scenario_doc)"
                " VALUES (?, ?, '', 'running', ?, ?, ?, ?)",
                (scenario, type, now, socket.gethostname(), os.getpid(), _dump(scenario_doc)))
            seq = int(cur.lastrowid or 0)
            db.execute("UPDATE drill_runs SET label = ? WHERE seq = ?", (str(label_of(seq)), seq))
        return self.get(str(seq))

    def finish(self, seq: int, *, status: str, result: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute("UPDATE drill_runs SET status = ?, finished_at = ?, result = ? WHERE seq = ?",
                       (status, utcnow().isoformat(), _dump(result), seq))

    def set_status(self, seq: int, status: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE drill_runs SET status = ? WHERE seq = ?", (status, seq))

    def get(self, drill_id: str) -> DrillRow:
        try:
            seq = int(drill_id)
        except ValueError:
            raise errors.InputError(f"drill id {drill_id!r}: a number, as `failover drill list` shows") from None
        rows = self._read("SELECT * FROM drill_runs WHERE seq = ?", (seq,))
        if not rows:
            raise errors.InputError(f"no drill {drill_id} in {self.path} (`failover drill list` shows them)")
        return _row(rows[0])

    def rows(self, *, limit: int = 50) -> list[DrillRow]:
        return [_row(r) for r in self._read("SELECT * FROM drill_runs ORDER BY seq DESC LIMIT ?", (limit,))]

    def open_drills(self) -> list[DrillRow]:
        marks = ",".join("?" * len(OPEN))
        return [_row(r) for r in self._read(f"SELECT * FROM drill_runs WHERE status IN ({marks}) ORDER BY seq",
                                            OPEN)]

    # --- events -----------------------------------------------------------------------------------
    def event(self, seq: int, kind: str, text: str, payload: dict[str, Any] | None = None,
              *, at: datetime | None = None) -> Event:
        ts = at or utcnow()
        clean = secrets.redact(text)
        with self._tx() as db:
            db.execute("INSERT INTO drill_events (drill_seq, ts, kind, text, payload) VALUES (?, ?, ?, ?, ?)",
                       (seq, ts.isoformat(), kind, clean, None if payload is None else _dump(payload)))
        return Event(ts, kind, clean, payload)

    def events(self, seq: int) -> list[Event]:
        return [Event(datetime.fromisoformat(r["ts"]), str(r["kind"]), str(r["text"]),
                      json.loads(r["payload"]) if r["payload"] else None)
                for r in self._read("SELECT * FROM drill_events WHERE drill_seq = ? ORDER BY id", (seq,))]

    # --- resources --------------------------------------------------------------------------------
    def plan_resource(self, seq: int, *, site: str, kind: str, namespace: str | None, name: str) -> None:
        """Journal that the drill is about to create this object (before it creates it)."""
        if any(r.kind == kind and r.namespace == namespace and r.name == name and r.site == site
               for r in self.resources(seq)):
            return
        with self._tx() as db:
            db.execute("INSERT INTO drill_resources (drill_seq, site, kind, namespace, name, planned_at)"
                       " VALUES (?, ?, ?, ?, ?, ?)", (seq, site, kind, namespace, name, utcnow().isoformat()))

    def resource_removed(self, resource_id: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE drill_resources SET removed_at = ? WHERE id = ?", (utcnow().isoformat(), resource_id))

    def resources(self, seq: int) -> list[Resource]:
        return [Resource(int(r["id"]), str(r["site"]), str(r["kind"]), r["namespace"], str(r["name"]),
                         r["removed_at"] is not None)
                for r in self._read("SELECT * FROM drill_resources WHERE drill_seq = ? ORDER BY id", (seq,))]


def _dump(value: Any) -> str:
    return secrets.redact(json.dumps(value, sort_keys=True, separators=(",", ":"), default=str))


def _row(r: sqlite3.Row) -> DrillRow:
    return DrillRow(
        seq=int(r["seq"]), scenario=str(r["scenario"]), type=str(r["type"]), label=str(r["label"]),
        status=str(r["status"]), started_at=datetime.fromisoformat(r["started_at"]),
        finished_at=datetime.fromisoformat(r["finished_at"]) if r["finished_at"] else None,
        host=str(r["host"]), pid=int(r["pid"]), scenario_doc=json.loads(r["scenario_doc"]),
        result=json.loads(r["result"]) if r["result"] else None,
    )


def process_alive(row: DrillRow) -> bool:
    """Whether the process that runs ``row`` still lives (only knowable on the same host)."""
    if row.host != socket.gethostname():
        return False
    try:
        os.kill(row.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return row.pid != os.getpid()

"""The SQLite store: one file, WAL mode, ``synchronous=FULL``, safe against ``kill -9``.

Why SQLite: a single daemon needs durable, transactional state with no server to run (the
lab and most sites have exactly one controller node). WAL keeps readers (the CLI's ``status`` and
``history``) from blocking the daemon; ``synchronous=FULL`` makes every commit durable before the
call returns, which is what "resume exactly once after kill -9" relies on. Two daemons pointed at
one file are kept apart by the lease row (compare-and-set inside ``BEGIN IMMEDIATE``).

Calls are synchronous and tiny (one short transaction each), so callers on the event loop may call
them directly. The schema is versioned with ``PRAGMA user_version``; :data:`MIGRATIONS` is applied
in order, so a later version only appends to the list.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from failover.core import errors
from failover.store import JSON, DecisionRecord, RunPhase, RunRecord, StepRecord, StepStatus
from failover.store.runbook_tables import RunbookTables, append_audit_entry

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        playbook TEXT NOT NULL,
        kind TEXT NOT NULL,
        phase TEXT NOT NULL,
        params TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        approved_by TEXT,
        approved_at TEXT,
        result TEXT NOT NULL DEFAULT '{}',
        error TEXT,
        definition TEXT
    );
    CREATE TABLE steps (
        record_id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL REFERENCES runs(id),
        key TEXT NOT NULL,
        step_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        status TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        duration REAL,
        output TEXT,
        error TEXT
    );
    CREATE INDEX steps_by_run ON steps(run_id, record_id);
    CREATE TABLE progress (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        record_id INTEGER NOT NULL REFERENCES steps(record_id),
        ts TEXT NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX progress_by_record ON progress(record_id, id);
    CREATE TABLE decisions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts TEXT NOT NULL,
        sentence TEXT NOT NULL,
        payload TEXT
    );
    CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE lease (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        holder TEXT NOT NULL,
        expires_at REAL NOT NULL
    );
    """,
    # 2: the runbook's operator sign-offs and waits, and the hash-chained audit log (failover.audit)
    """
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        body TEXT NOT NULL,
        prev TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TABLE signoffs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        key TEXT NOT NULL,
        action TEXT NOT NULL,
        operator TEXT NOT NULL,
        at TEXT NOT NULL,
        detail TEXT,
        UNIQUE (run_id, key, action, operator)
    );
    CREATE TABLE waits (
        run_id TEXT NOT NULL,
        key TEXT NOT NULL,
        kind TEXT NOT NULL,
        since TEXT NOT NULL,
        detail TEXT,
        PRIMARY KEY (run_id, key)
    );
    """,
)

EPOCH_KEY = "fencing_epoch"
_RUN_COLUMNS = {"phase", "started_at", "finished_at", "approved_by", "approved_at", "result", "error",
                "epoch", "params", "kind"}


def utcnow() -> datetime:
    return datetime.now(UTC)


def _dump(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _ts(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _col(value: object) -> object:
    """A Python value as the column value SQLite stores."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return _dump(value)
    return value


class SqliteStore(RunbookTables):
    """:class:`failover.store.Store` on one SQLite file (see module docstring)."""

    def __init__(self, path: Path | str, *, clock: Callable[[], datetime] = utcnow,
                 busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self.clock = clock
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(str(self.path), timeout=busy_timeout_s, isolation_level=None,
                                       check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        except sqlite3.Error as exc:
            raise errors.PermanentError(f"cannot open the state database {self.path}: {exc}") from exc
        self._migrate()

    # --- plumbing ----------------------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction; sqlite errors become our error types."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise errors.TemporaryError(f"state database busy: {exc}", delay=0.2) from exc
                raise errors.PermanentError(f"state database error: {exc}") from exc
            except sqlite3.Error as exc:
                raise errors.PermanentError(f"state database error: {exc}") from exc

    def _read(self, sql: str, args: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return list(self._db.execute(sql, args).fetchall())
            except sqlite3.Error as exc:
                raise errors.TemporaryError(f"state database read failed: {exc}", delay=0.2) from exc

    def _migrate(self) -> None:
        with self._tx() as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            for number, script in enumerate(MIGRATIONS, start=1):
                if number <= version:
                    continue
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version={number}")

    def schema_version(self) -> int:
        return int(self._read("PRAGMA user_version")[0][0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- runs --------------------------------------------------------------------------------------
    def create_run(self, *, playbook: str, kind: str, params: Mapping[str, JSON], epoch: int,
                   phase: RunPhase = RunPhase.PENDING, definition: JSON = None,
                   run_id: str | None = None) -> RunRecord:
        with self._tx() as db:
            seq = int(db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM runs").fetchone()[0])
            rid = run_id or str(seq)
            if db.execute("SELECT 1 FROM runs WHERE id = ?", (rid,)).fetchone():
                raise errors.PermanentError(f"run {rid} already exists")
            db.execute(
                "INSERT INTO runs (seq, id, playbook, kind, phase, params, epoch, created_at, definition)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, rid, playbook, kind, phase.value, _dump(dict(params)), epoch, self.clock().isoformat(),
                 _dump(definition)))
        return self._run(rid)

    def _run(self, run_id: str) -> RunRecord:
        run = self.get_run(run_id)
        if run is None:
            raise errors.PermanentError(f"no run {run_id!r}")
        return run

    def get_run(self, run_id: str) -> RunRecord | None:
        rows = self._read("SELECT * FROM runs WHERE id = ?", (run_id,))
        return _run_record(rows[0]) if rows else None

    def list_runs(self, *, limit: int = 20, phases: Collection[str] | None = None) -> list[RunRecord]:
        if phases:
            marks = ",".join("?" * len(phases))
            rows = self._read(f"SELECT * FROM runs WHERE phase IN ({marks}) ORDER BY seq DESC LIMIT ?",
                              (*[str(p) for p in phases], limit))
        else:
            rows = self._read("SELECT * FROM runs ORDER BY seq DESC LIMIT ?", (limit,))
        return [_run_record(r) for r in rows]

    def update_run(self, run_id: str, **fields: object) -> RunRecord:
        unknown = set(fields) - _RUN_COLUMNS
        if unknown:
            raise ValueError(f"update_run: unknown fields {sorted(unknown)}")
        if fields:
            names = sorted(fields)
            assignments = ", ".join(f"{n} = ?" for n in names)
            with self._tx() as db:
                cur = db.execute(f"UPDATE runs SET {assignments} WHERE id = ?",
                                 (*[_col(fields[n]) for n in names], run_id))
                if cur.rowcount == 0:
                    raise errors.PermanentError(f"no run {run_id!r}")
        return self._run(run_id)

    def approve_run(self, run_id: str, by: str) -> RunRecord:
        with self._tx() as db:
            db.execute("UPDATE runs SET approved_by = ?, approved_at = ?, "
                       "phase = CASE phase WHEN ? THEN ? ELSE phase END WHERE id = ? AND approved_by IS NULL",
                       (by, self.clock().isoformat(), RunPhase.WAITING_APPROVAL.value, RunPhase.PENDING.value,
                        run_id))
        return self._run(run_id)

    # --- journal -----------------------------------------------------------------------------------
    def record_step_start(self, run_id: str, key: str, *, step_id: str, attempt: int,
                          started_at: datetime | None = None,
                          status: StepStatus = StepStatus.RUNNING) -> StepRecord:
        at = (started_at or self.clock()).isoformat()
        with self._tx() as db:
            cur = db.execute("INSERT INTO steps (run_id, key, step_id, attempt, status, started_at)"
                             " VALUES (?, ?, ?, ?, ?, ?)", (run_id, key, step_id, attempt, status.value, at))
            record_id = int(cur.lastrowid or 0)
        return self._step(record_id)

    def record_step_end(self, record_id: int, *, status: StepStatus, finished_at: datetime | None = None,
                        output: JSON = None, error: str | None = None) -> StepRecord:
        end = finished_at or self.clock()
        with self._tx() as db:
            row = db.execute("SELECT started_at FROM steps WHERE record_id = ?", (record_id,)).fetchone()
            if row is None:
                raise errors.PermanentError(f"no step record {record_id}")
            duration = (end - datetime.fromisoformat(row["started_at"])).total_seconds()
            db.execute("UPDATE steps SET status = ?, finished_at = ?, duration = ?, output = ?, error = ?"
                       " WHERE record_id = ?",
                       (status.value, end.isoformat(), duration, _dump(output), error, record_id))
        return self._step(record_id)

    def append_progress(self, record_id: int, message: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO progress (record_id, ts, message) VALUES (?, ?, ?)",
                       (record_id, self.clock().isoformat(), message))

    def _step(self, record_id: int) -> StepRecord:
        rows = self._read("SELECT * FROM steps WHERE record_id = ?", (record_id,))
        notes = self._read("SELECT message FROM progress WHERE record_id = ? ORDER BY id", (record_id,))
        return _step_record(rows[0], tuple(str(n["message"]) for n in notes))

    def step_records(self, run_id: str) -> list[StepRecord]:
        rows = self._read("SELECT * FROM steps WHERE run_id = ? ORDER BY record_id", (run_id,))
        notes: dict[int, list[str]] = {}
        for n in self._read("SELECT p.record_id, p.message FROM progress p JOIN steps s USING (record_id)"
                            " WHERE s.run_id = ? ORDER BY p.id", (run_id,)):
            notes.setdefault(int(n["record_id"]), []).append(str(n["message"]))
        return [_step_record(r, tuple(notes.get(int(r["record_id"]), ()))) for r in rows]

    # --- decisions ---------------------------------------------------------------------------------
    def append_decision(self, sentence: str, payload: JSON = None) -> DecisionRecord:
        at = self.clock()
        with self._tx() as db:
            cur = db.execute("INSERT INTO decisions (ts, sentence, payload) VALUES (?, ?, ?)",
                             (at.isoformat(), sentence, _dump(payload)))
            append_audit_entry(db, at, actor="daemon", action="decision", run=None, subject=None,
                   details={"sentence": sentence, "payload": payload})
            return DecisionRecord(id=int(cur.lastrowid or 0), ts=at, sentence=sentence, payload=payload)

    def decisions(self, limit: int = 20) -> list[DecisionRecord]:
        rows = self._read("SELECT * FROM decisions ORDER BY id DESC LIMIT ?", (limit,))
        return [DecisionRecord(id=int(r["id"]), ts=datetime.fromisoformat(r["ts"]),
                               sentence=str(r["sentence"]), payload=_load(r["payload"])) for r in rows]

    # --- state and epoch ---------------------------------------------------------------------------
    def get_state(self, key: str) -> JSON:
        rows = self._read("SELECT value FROM state WHERE key = ?", (key,))
        return _load(rows[0]["value"]) if rows else None

    def set_state(self, key: str, value: JSON) -> None:
        with self._tx() as db:
            _put(db, key, value)

    def cas_state(self, key: str, expected: JSON, new: JSON) -> bool:
        with self._tx() as db:
            row = db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
            current = _load(row["value"]) if row else None
            if current != expected:
                return False
            _put(db, key, new)
            return True

    def bump_epoch(self) -> int:
        with self._tx() as db:
            row = db.execute("SELECT value FROM state WHERE key = ?", (EPOCH_KEY,)).fetchone()
            epoch = (int(_load(row["value"])) if row else 0) + 1
            _put(db, EPOCH_KEY, epoch)
            return epoch

    def current_epoch(self) -> int:
        value = self.get_state(EPOCH_KEY)
        return int(value) if isinstance(value, int) else 0

    # --- lease -------------------------------------------------------------------------------------
    def _now_s(self) -> float:
        return self.clock().timestamp()

    def acquire_lease(self, holder: str, ttl_s: float) -> bool:
        now = self._now_s()
        with self._tx() as db:
            row = db.execute("SELECT holder, expires_at FROM lease WHERE id = 1").fetchone()
            if row is not None and row["holder"] != holder and float(row["expires_at"]) > now:
                return False
            db.execute("INSERT INTO lease (id, holder, expires_at) VALUES (1, ?, ?) ON CONFLICT(id) DO UPDATE"
                       " SET holder = excluded.holder, expires_at = excluded.expires_at",
                       (holder, now + ttl_s))
            return True

    def renew_lease(self, holder: str, ttl_s: float) -> bool:
        with self._tx() as db:
            cur = db.execute("UPDATE lease SET expires_at = ? WHERE id = 1 AND holder = ?",
                             (self._now_s() + ttl_s, holder))
            return cur.rowcount == 1

    def release_lease(self, holder: str) -> bool:
        with self._tx() as db:
            return db.execute("DELETE FROM lease WHERE id = 1 AND holder = ?", (holder,)).rowcount == 1

    def lease_holder(self) -> str | None:
        rows = self._read("SELECT holder, expires_at FROM lease WHERE id = 1")
        if not rows or float(rows[0]["expires_at"]) <= self._now_s():
            return None
        return str(rows[0]["holder"])


def _put(db: sqlite3.Connection, key: str, value: JSON) -> None:
    db.execute("INSERT INTO state (key, value) VALUES (?, ?)"
               " ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, _dump(value)))


def _run_record(r: sqlite3.Row) -> RunRecord:
    created = _ts(r["created_at"])
    assert created is not None
    return RunRecord(
        id=str(r["id"]), seq=int(r["seq"]), playbook=str(r["playbook"]), kind=str(r["kind"]),
        phase=RunPhase(r["phase"]), params=dict(_load(r["params"]) or {}), epoch=int(r["epoch"]),
        created_at=created, started_at=_ts(r["started_at"]), finished_at=_ts(r["finished_at"]),
        approved_by=r["approved_by"], approved_at=_ts(r["approved_at"]),
        result=dict(_load(r["result"]) or {}), error=r["error"], definition=_load(r["definition"]),
    )


def _step_record(r: sqlite3.Row, progress: tuple[str, ...]) -> StepRecord:
    started = _ts(r["started_at"])
    assert started is not None
    return StepRecord(
        record_id=int(r["record_id"]), run_id=str(r["run_id"]), key=str(r["key"]), step_id=str(r["step_id"]),
        attempt=int(r["attempt"]), status=StepStatus(r["status"]), started_at=started,
        finished_at=_ts(r["finished_at"]), duration=r["duration"], output=_load(r["output"]),
        error=r["error"], progress=progress,
    )

"""The SQLite tables of the runbook (schema 2): the hash-chained audit log, operator sign-offs and
the steps that wait for people. A mixin of :class:`failover.store.sqlite.SqliteStore`, kept apart so
the store's core stays small; the tables are created by its migration 2."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from failover.store import AUDIT_GENESIS, JSON, AuditRecord, SignoffRecord, WaitRecord, audit_hash


def _dump(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class RunbookTables:
    """Audit, sign-offs and waits on the store's connection (see the Store protocol for contracts)."""

    clock: Callable[[], datetime]

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _read(self, sql: str, args: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError

    def append_audit(self, *, actor: str, action: str, run: str | None = None, subject: str | None = None,
                     details: JSON = None) -> AuditRecord:
        with self._tx() as db:
            return append_audit_entry(db, self.clock(), actor=actor, action=action, run=run, subject=subject,
                                      details=details)

    def audit_records(self, *, after: int = 0, limit: int | None = None) -> list[AuditRecord]:
        rows = self._read("SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?",
                          (after, -1 if limit is None else limit))
        return [AuditRecord(seq=int(r["seq"]), body=dict(_load(r["body"]) or {}), prev=str(r["prev"]),
                            hash=str(r["hash"])) for r in rows]

    def add_signoff(self, run_id: str, key: str, *, action: str, operator: str, detail: JSON = None) -> bool:
        with self._tx() as db:
            cur = db.execute("INSERT OR IGNORE INTO signoffs (run_id, key, action, operator, at, detail)"
                             " VALUES (?, ?, ?, ?, ?, ?)",
                             (run_id, key, action, operator, self.clock().isoformat(), _dump(detail)))
            return cur.rowcount == 1

    def signoffs(self, run_id: str, key: str | None = None) -> list[SignoffRecord]:
        if key is None:
            rows = self._read("SELECT * FROM signoffs WHERE run_id = ? ORDER BY id", (run_id,))
        else:
            rows = self._read("SELECT * FROM signoffs WHERE run_id = ? AND key = ? ORDER BY id", (run_id, key))
        return [SignoffRecord(run_id=str(r["run_id"]), key=str(r["key"]), action=str(r["action"]),
                              operator=str(r["operator"]), at=datetime.fromisoformat(r["at"]),
                              detail=_load(r["detail"])) for r in rows]

    def set_wait(self, run_id: str, key: str, *, kind: str, detail: JSON = None) -> WaitRecord:
        with self._tx() as db:
            db.execute("INSERT INTO waits (run_id, key, kind, since, detail) VALUES (?, ?, ?, ?, ?)"
                       " ON CONFLICT(run_id, key) DO UPDATE SET kind = excluded.kind, detail = excluded.detail",
                       (run_id, key, kind, self.clock().isoformat(), _dump(detail)))
        return next(w for w in self.waits(run_id) if w.key == key)

    def clear_wait(self, run_id: str, key: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM waits WHERE run_id = ? AND key = ?", (run_id, key))

    def waits(self, run_id: str) -> list[WaitRecord]:
        rows = self._read("SELECT * FROM waits WHERE run_id = ? ORDER BY since, key", (run_id,))
        return [WaitRecord(run_id=str(r["run_id"]), key=str(r["key"]), kind=str(r["kind"]),
                           since=datetime.fromisoformat(r["since"]), detail=_load(r["detail"])) for r in rows]


def append_audit_entry(db: sqlite3.Connection, at: datetime, *, actor: str, action: str, run: str | None,
           subject: str | None, details: JSON) -> AuditRecord:
    """Append one chained entry inside the caller's transaction (so the chain has no forks)."""
    row = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (int(row["seq"]) + 1, str(row["hash"])) if row else (1, AUDIT_GENESIS)
    body: dict[str, JSON] = {"seq": seq, "ts": at.isoformat(), "actor": actor, "action": action, "run": run,
                             "subject": subject, "details": details}
    digest = audit_hash(prev, body)
    db.execute("INSERT INTO audit (seq, body, prev, hash) VALUES (?, ?, ?, ?)", (seq, _dump(body), prev, digest))
    return AuditRecord(seq=seq, body=body, prev=prev, hash=digest)

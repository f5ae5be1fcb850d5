"""The runbook's records on etcd: the hash-chained audit log, operator sign-offs and the steps that
wait for people (the same contracts as :mod:`failover.store.runbook_tables` on SQLite).

A mixin of :class:`failover.store.etcd.EtcdStore`, kept apart so the store's core stays small.
Keys under the store's prefix:

* ``audit/<seq>`` — one entry ``{seq, body, prev, hash}``; ``audit-head`` — ``{seq, hash}`` of the
  last one. An append is one transaction that compares the head's mod revision (so two writers
  never chain to the same entry: the chain has no forks) and puts the entry and the new head; a
  decision and its audit entry are written in the same transaction;
* ``signoffs/<run>/<step>/<action>/<operator>`` — created once (compare: absent), so a repeated
  sign-off is a no-op; listed in the order etcd created them;
* ``waits/<run>/<step>`` — the wait, its ``since`` kept from the first call.

Path parts are percent-encoded, so a step key or an operator name can never reach into another
key. Like every write of the store, these are guarded by the fencing epoch when the store has a
fence (a deposed leader's late entry is refused); an operator's CLI writes unguarded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

from failover.core import errors
from failover.store import AUDIT_GENESIS, JSON, AuditRecord, SignoffRecord, WaitRecord, audit_hash
from failover.store import etcd_client as ec

#: attempts of an append that lost the race for the audit head to another writer
_APPEND_ATTEMPTS = 50


def _dump(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _q(part: str) -> str:
    return quote(part, safe="")


class EtcdRunbookTables:
    """Audit, sign-offs and waits on etcd (see the Store protocol for the contracts)."""

    client: ec.EtcdClient
    clock: Callable[[], datetime]

    def _k(self, *parts: str) -> str:
        raise NotImplementedError

    def _txn(self, compare: list[dict[str, Any]], success: list[dict[str, Any]], *, what: str,
             guarded: bool = True) -> ec.TxnResult:
        raise NotImplementedError

    # --- audit ---------------------------------------------------------------------------------------
    def append_audit(self, *, actor: str, action: str, run: str | None = None, subject: str | None = None,
                     details: JSON = None) -> AuditRecord:
        return self._append_audit(self.clock(), actor=actor, action=action, run=run, subject=subject,
                                  details=details)

    def _append_audit(self, at: datetime, *, actor: str, action: str, run: str | None, subject: str | None,
                      details: JSON, with_ops: list[dict[str, Any]] | None = None) -> AuditRecord:
        """Chain one entry to the head (compare-and-swap on the head, retried when another writer
        appended first); ``with_ops`` are written in the same transaction."""
        head_key = self._k("audit-head")
        for _ in range(_APPEND_ATTEMPTS):
            head = self.client.get(head_key)
            last = json.loads(head.value) if head is not None else None
            seq, prev = (int(last["seq"]) + 1, str(last["hash"])) if last else (1, AUDIT_GENESIS)
            body: dict[str, JSON] = {"seq": seq, "ts": at.isoformat(), "actor": actor, "action": action,
                                     "run": run, "subject": subject, "details": details}
            digest = audit_hash(prev, body)
            compare = [ec.cmp_mod(head_key, head.mod_revision) if head is not None else ec.cmp_absent(head_key)]
            ops = [ec.op_put(self._k("audit", f"{seq:012d}"), _dump({"body": body, "prev": prev, "hash": digest})),
                   ec.op_put(head_key, _dump({"seq": seq, "hash": digest})), *(with_ops or [])]
            if self._txn(compare, ops, what=f"audit entry {action}").succeeded:
                return AuditRecord(seq=seq, body=body, prev=prev, hash=digest)
        raise errors.TemporaryError("etcd: the audit log changed too often while appending to it", delay=0.2)

    def audit_records(self, *, after: int = 0, limit: int | None = None) -> list[AuditRecord]:
        out: list[AuditRecord] = []
        for kv in self.client.get_prefix(self._k("audit") + "/"):
            seq = int(kv.key.rsplit("/", 1)[1])
            if seq <= after:
                continue
            d = json.loads(kv.value)
            out.append(AuditRecord(seq=seq, body=dict(d["body"]), prev=str(d["prev"]), hash=str(d["hash"])))
            if limit is not None and len(out) >= limit:
                break
        return out

    # --- sign-offs -------------------------------------------------------------------------------------
    def add_signoff(self, run_id: str, key: str, *, action: str, operator: str, detail: JSON = None) -> bool:
        path = self._k("signoffs", _q(run_id), _q(key), _q(action), _q(operator))
        record = {"run_id": run_id, "key": key, "action": action, "operator": operator,
                  "at": self.clock().isoformat(), "detail": detail}
        return self._txn([ec.cmp_absent(path)], [ec.op_put(path, _dump(record))],
                         what=f"sign-off {action} of {key} by {operator}").succeeded

    def signoffs(self, run_id: str, key: str | None = None) -> list[SignoffRecord]:
        parts = (_q(run_id),) if key is None else (_q(run_id), _q(key))
        kvs = sorted(self.client.get_prefix(self._k("signoffs", *parts) + "/"), key=lambda kv: kv.create_revision)
        out = []
        for kv in kvs:
            d = json.loads(kv.value)
            out.append(SignoffRecord(run_id=str(d["run_id"]), key=str(d["key"]), action=str(d["action"]),
                                     operator=str(d["operator"]), at=datetime.fromisoformat(d["at"]),
                                     detail=d.get("detail")))
        return out

    # --- waits -------------------------------------------------------------------------------------------
    def set_wait(self, run_id: str, key: str, *, kind: str, detail: JSON = None) -> WaitRecord:
        path = self._k("waits", _q(run_id), _q(key))
        for _ in range(_APPEND_ATTEMPTS):
            kv = self.client.get(path)
            since = json.loads(kv.value)["since"] if kv is not None else self.clock().isoformat()
            record = {"run_id": run_id, "key": key, "kind": kind, "since": since, "detail": detail}
            compare = [ec.cmp_mod(path, kv.mod_revision) if kv is not None else ec.cmp_absent(path)]
            if self._txn(compare, [ec.op_put(path, _dump(record))], what=f"wait of {key}").succeeded:
                return _wait(record)
        raise errors.TemporaryError(f"etcd: the wait of {key} changed too often", delay=0.2)

    def clear_wait(self, run_id: str, key: str) -> None:
        self._txn([], [ec.op_delete(self._k("waits", _q(run_id), _q(key)))], what=f"clear the wait of {key}")

    def waits(self, run_id: str) -> list[WaitRecord]:
        records = [_wait(json.loads(kv.value)) for kv in self.client.get_prefix(self._k("waits", _q(run_id)) + "/")]
        return sorted(records, key=lambda w: (w.since, w.key))


def _wait(d: dict[str, Any]) -> WaitRecord:
    return WaitRecord(run_id=str(d["run_id"]), key=str(d["key"]), kind=str(d["kind"]),
                      since=datetime.fromisoformat(str(d["since"])), detail=d.get("detail"))

"""The etcd store: the same :class:`~failover.store.Store` as SQLite, shared by several daemons.

Why etcd: several daemon instances (one per provider, plus one outside) must agree on one leader
and share the run journal, so that when the leader dies — with its provider — another instance
resumes the run it left half done, exactly once. etcd gives a linearizable key space with leases
(TTL) and multi-key compare-and-swap transactions, and refuses every operation without a quorum,
which is the behaviour a split brain needs (Patroni's rule: a node that cannot prove it holds the
lease does nothing).

Keys under ``prefix``:

* ``leader`` — the lease holder's name, attached to an etcd lease with the TTL;
* ``epoch`` — the fencing epoch (decimal); raised only by :meth:`bump_epoch`, a compare-and-swap
  on its mod revision that also requires ``leader`` to be ours;
* ``state/<key>``, ``runs/<id>``, ``steps/<run>/<record>``, ``decisions/<id>`` — the records, JSON;
* ``seq/<kind>`` — counters: a txn puts the key and reads it back, its ``version`` is the number;
* ``members/<name>``, ``verdicts/<name>`` — the observers, on each one's own short lease;
* ``refused/<revision>`` — an audit of every write refused for a stale epoch;
* ``audit/<seq>``, ``audit-head``, ``signoffs/…``, ``waits/…`` — the runbook's records
  (:mod:`failover.store.etcd_runbook`).

**Fencing.** After this process raised the epoch (it became the leader, or started a run) its
``fence`` is that epoch, and every write of a run, a step, a decision or a state key is a txn
that compares ``epoch`` with the fence: a write that reaches etcd after a newer leader raised the
epoch fails, is recorded under ``refused/`` and raises :class:`~failover.core.errors.StaleEpochError`.
A store without a fence (the CLI of an operator, a standby instance) writes unguarded.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from failover.core import errors
from failover.store import JSON, DecisionRecord, RunPhase, RunRecord, StepRecord, StepStatus
from failover.store import etcd_client as ec
from failover.store.etcd_runbook import EtcdRunbookTables

logger = logging.getLogger(__name__)

_RUN_FIELDS = {"phase", "started_at", "finished_at", "approved_by", "approved_at", "result", "error",
               "epoch", "params", "kind"}


def utcnow() -> datetime:
    return datetime.now(UTC)


def _dump(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_default)


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


class EtcdStore(EtcdRunbookTables):
    """:class:`failover.store.Store` on etcd (see module docstring)."""

    def __init__(self, endpoints: Sequence[str], *, prefix: str = "/failover", timeout: float = 1.0,
                 retry_for: float = 2.0, cooldown: float = 0.5, clock: Callable[[], datetime] = utcnow) -> None:
        self.client = ec.EtcdClient(endpoints, timeout=timeout, retry_for=retry_for, cooldown=cooldown)
        self.prefix = prefix.rstrip("/")
        self.clock = clock
        self.fence: int | None = None  #: the epoch this process acts under (None: not acting)
        self.refused: list[str] = []  #: writes etcd refused because our epoch was stale
        self._holder: str | None = None
        self._lease = 0
        self._lease_ttl = 0.0
        self._valid_until = 0.0  #: monotonic time until which our lease is proven
        self._member_lease = 0

    def _k(self, *parts: str) -> str:
        return "/".join((self.prefix, *parts))

    def close(self) -> None:
        self.client.close()

    # --- guarded transactions ----------------------------------------------------------------------
    def _txn(self, compare: list[dict[str, Any]], success: list[dict[str, Any]], *, what: str,
             guarded: bool = True) -> ec.TxnResult:
        """A txn that, with a fence, also requires ``epoch == fence``; a stale epoch raises."""
        fence = self.fence if guarded else None
        if fence is not None:
            compare = [ec.cmp_value(self._k("epoch"), str(fence)), *compare]
        result = self.client.txn(compare, success, [ec.op_get(self._k("epoch"))])
        if not result.succeeded and fence is not None:
            kvs = result.kvs(0)
            current = int(kvs[0].value) if kvs else 0
            if current != fence:
                self._refuse(what, fence, current)
        return result

    def _refuse(self, what: str, fence: int, current: int) -> None:
        text = f"{what} by {self._holder or '?'} with epoch {fence} refused: the current epoch is {current}"
        self.refused.append(text)
        logger.warning("etcd refused a stale write: %s", text)
        self._lose()
        try:
            self.client.put(self._k("refused", f"{time.time_ns():020d}"),
                            _dump({"what": what, "holder": self._holder, "epoch": fence, "current": current,
                                   "at": self.clock()}))
        except errors.TemporaryError:
            pass
        raise errors.StaleEpochError(f"{text}; a newer leader took over")

    def _next(self, kind: str) -> int:
        """The next number of counter ``kind`` (its key's version after one more put)."""
        key = self._k("seq", kind)
        result = self._txn([], [ec.op_put(key, ""), ec.op_get(key)], what=f"next {kind} number")
        if not result.succeeded:
            raise errors.TemporaryError(f"etcd: cannot take the next {kind} number", delay=0.2)
        return result.kvs(1)[0].version

    def _put(self, key: str, value: object, *, what: str, absent: bool = False) -> None:
        compare = [ec.cmp_absent(key)] if absent else []
        if not self._txn(compare, [ec.op_put(key, _dump(value))], what=what).succeeded:
            raise errors.PermanentError(f"{what}: {key} already exists")

    def _json(self, key: str) -> Any:
        kv = self.client.get(key)
        return None if kv is None else json.loads(kv.value)

    # --- runs --------------------------------------------------------------------------------------
    def create_run(self, *, playbook: str, kind: str, params: Mapping[str, JSON], epoch: int,
                   phase: RunPhase = RunPhase.PENDING, definition: JSON = None,
                   run_id: str | None = None) -> RunRecord:
        seq = self._next("runs")
        rid = run_id or str(seq)
        record = RunRecord(id=rid, seq=seq, playbook=playbook, kind=kind, phase=phase, params=dict(params),
                           epoch=epoch, created_at=self.clock(), started_at=None, finished_at=None,
                           approved_by=None, approved_at=None, result={}, error=None, definition=definition)
        self._put(self._k("runs", rid), asdict(record), what=f"create run {rid}", absent=True)
        return record

    def get_run(self, run_id: str) -> RunRecord | None:
        data = self._json(self._k("runs", run_id))
        return None if data is None else _run(data)

    def list_runs(self, *, limit: int = 20, phases: Collection[str] | None = None) -> list[RunRecord]:
        runs = [_run(json.loads(kv.value)) for kv in self.client.get_prefix(self._k("runs") + "/")]
        wanted = {str(p) for p in phases} if phases else None
        runs = [r for r in runs if wanted is None or r.phase.value in wanted]
        return sorted(runs, key=lambda r: r.seq, reverse=True)[:limit]

    def _update(self, key: str, change: Callable[[dict[str, Any]], None], *, what: str) -> dict[str, Any]:
        """Read-modify-write ``key`` with a compare on its mod revision (retried on a conflict)."""
        for _ in range(20):
            kv = self.client.get(key)
            if kv is None:
                raise errors.PermanentError(f"{what}: no {key}")
            data = json.loads(kv.value)
            change(data)
            if self._txn([ec.cmp_mod(key, kv.mod_revision)], [ec.op_put(key, _dump(data))], what=what).succeeded:
                return dict(data)
        raise errors.TemporaryError(f"{what}: too many concurrent changes", delay=0.2)

    def update_run(self, run_id: str, **fields: object) -> RunRecord:
        unknown = set(fields) - _RUN_FIELDS
        if unknown:
            raise ValueError(f"update_run: unknown fields {sorted(unknown)}")
        values = {k: (v.value if isinstance(v, RunPhase) else v) for k, v in fields.items()}
        return _run(self._update(self._k("runs", run_id), lambda d: d.update(json.loads(_dump(values))),
                                 what=f"update run {run_id}"))

    def approve_run(self, run_id: str, by: str) -> RunRecord:
        def approve(d: dict[str, Any]) -> None:
            if d.get("approved_by") is None:
                d.update(approved_by=by, approved_at=self.clock().isoformat())
                if d["phase"] == RunPhase.WAITING_APPROVAL.value:
                    d["phase"] = RunPhase.PENDING.value
        return _run(self._update(self._k("runs", run_id), approve, what=f"approve run {run_id}"))

    # --- journal -----------------------------------------------------------------------------------
    def _step_key(self, run_id: str, record_id: int) -> str:
        return self._k("steps", run_id, f"{record_id:012d}")

    def record_step_start(self, run_id: str, key: str, *, step_id: str, attempt: int,
                          started_at: datetime | None = None,
                          status: StepStatus = StepStatus.RUNNING) -> StepRecord:
        record_id = self._next("steps")
        rec = StepRecord(record_id=record_id, run_id=run_id, key=key, step_id=step_id, attempt=attempt,
                         status=status, started_at=started_at or self.clock(), finished_at=None, duration=None,
                         output=None, error=None, progress=())
        index = self._k("step-index", f"{record_id:012d}")
        result = self._txn([], [ec.op_put(self._step_key(run_id, record_id), _dump(asdict(rec))),
                                ec.op_put(index, run_id)], what=f"journal run {run_id} step {key}")
        if not result.succeeded:
            raise errors.TemporaryError("etcd: journal write failed", delay=0.2)
        return rec

    def _step_path(self, record_id: int) -> str:
        kv = self.client.get(self._k("step-index", f"{record_id:012d}"))
        if kv is None:
            raise errors.PermanentError(f"no step record {record_id}")
        return self._step_key(kv.value, record_id)

    def record_step_end(self, record_id: int, *, status: StepStatus, finished_at: datetime | None = None,
                        output: JSON = None, error: str | None = None) -> StepRecord:
        end = finished_at or self.clock()

        def finish(d: dict[str, Any]) -> None:
            duration = (end - datetime.fromisoformat(d["started_at"])).total_seconds()
            d.update(status=status.value, finished_at=end.isoformat(), duration=duration, output=output,
                     error=error)
        return _step(self._update(self._step_path(record_id), finish, what=f"journal end of step {record_id}"))

    def append_progress(self, record_id: int, message: str) -> None:
        self._update(self._step_path(record_id), lambda d: d.update(progress=[*d.get("progress", []), message]),
                     what=f"progress of step {record_id}")

    def step_records(self, run_id: str) -> list[StepRecord]:
        return [_step(json.loads(kv.value)) for kv in self.client.get_prefix(self._k("steps", run_id) + "/")]

    # --- decisions ---------------------------------------------------------------------------------
    def append_decision(self, sentence: str, payload: JSON = None) -> DecisionRecord:
        """The decision and its audit entry, in one transaction (as SQLite does)."""
        number = self._next("decisions")
        rec = DecisionRecord(id=number, ts=self.clock(), sentence=sentence, payload=payload)
        put = ec.op_put(self._k("decisions", f"{number:012d}"), _dump(asdict(rec)))
        self._append_audit(rec.ts, actor="daemon", action="decision", run=None, subject=None,
                           details={"sentence": sentence, "payload": payload}, with_ops=[put])
        return rec

    def decisions(self, limit: int = 20) -> list[DecisionRecord]:
        kvs = self.client.get_prefix(self._k("decisions") + "/", limit=limit, descending=True)
        out = []
        for kv in kvs:
            d = json.loads(kv.value)
            out.append(DecisionRecord(id=int(d["id"]), ts=datetime.fromisoformat(d["ts"]), sentence=d["sentence"],
                                      payload=d.get("payload")))
        return out

    # --- state and epoch ---------------------------------------------------------------------------
    def get_state(self, key: str) -> JSON:
        value: JSON = self._json(self._k("state", key))
        return value

    def set_state(self, key: str, value: JSON) -> None:
        self._put(self._k("state", key), value, what=f"set {key}")

    def cas_state(self, key: str, expected: JSON, new: JSON) -> bool:
        path = self._k("state", key)
        compare = ec.cmp_absent(path) if expected is None else ec.cmp_value(path, _dump(expected))
        return self._txn([compare], [ec.op_put(path, _dump(new))], what=f"compare-and-set {key}").succeeded

    def current_epoch(self) -> int:
        kv = self.client.get(self._k("epoch"))
        return int(kv.value) if kv is not None else 0

    def bump_epoch(self) -> int:
        """Raise the epoch by compare-and-swap; only the holder of the lease may (when one is held)."""
        key = self._k("epoch")
        for _ in range(20):
            kv = self.client.get(key)
            current = int(kv.value) if kv is not None else 0
            compare = [ec.cmp_mod(key, kv.mod_revision) if kv is not None else ec.cmp_absent(key)]
            if self._holder is not None:
                compare.append(ec.cmp_value(self._k("leader"), self._holder))
            result = self.client.txn(compare, [ec.op_put(key, str(current + 1))], [ec.op_get(self._k("leader"))])
            if result.succeeded:
                self.fence = current + 1
                return current + 1
            leader = result.kvs(0)
            if self._holder is not None and (not leader or leader[0].value != self._holder):
                raise errors.LeaseLostError(f"{self._holder} does not hold the lease; may not raise the epoch")
        raise errors.TemporaryError("etcd: the epoch changed 20 times while raising it", delay=0.2)

    # --- the leader lease ---------------------------------------------------------------------------
    def acquire_lease(self, holder: str, ttl_s: float) -> bool:
        if self._lease and self._holder == holder and self.renew_lease(holder, ttl_s):
            return True
        ttl = max(2, math.ceil(ttl_s))
        started = time.monotonic()
        lease = self.client.grant(ttl)
        key = self._k("leader")
        result = self.client.txn([ec.cmp_absent(key)], [ec.op_put(key, holder, lease=lease)], [ec.op_get(key)])
        if not result.succeeded:
            self.client.revoke(lease)
            return False
        self._holder, self._lease, self._lease_ttl = holder, lease, float(ttl)
        self._valid_until = started + ttl
        return True

    def renew_lease(self, holder: str, ttl_s: float) -> bool:
        """Refresh our lease; False when it expired or another holder's key is there."""
        if not self._lease or self._holder != holder:
            return False
        started = time.monotonic()
        try:
            remaining = self.client.keepalive(self._lease)
            kv = self.client.get(self._k("leader")) if remaining > 0 else None
        except errors.TemporaryError:
            if time.monotonic() >= self._valid_until:
                self._lose()
                return False
            raise
        if kv is None or kv.value != holder or kv.lease != self._lease:
            self._lose()
            return False
        self._valid_until = started + remaining
        return True

    def _lose(self) -> None:
        """Forget the lease, but keep the fence: a late write of this process must still be refused."""
        if self._lease:
            logger.warning("%s lost the etcd lease", self._holder)
        self._lease, self._valid_until = 0, 0.0

    def stand_down(self) -> None:
        """No longer act under the old epoch (call only once nothing of this process still acts):
        from now on this store writes unguarded, as an observer."""
        self._lose()
        self.fence = None

    def holds_lease(self) -> bool:
        """Whether this process can still prove it holds the lease (no network call). The proof ends a
        margin (a quarter of the TTL, at most 1 s) before etcd can expire the lease, so a leader stops
        before anyone else can take over."""
        margin = min(1.0, self._lease_ttl / 4)
        return bool(self._lease) and time.monotonic() < self._valid_until - margin

    def release_lease(self, holder: str) -> bool:
        if not self._lease or self._holder != holder:
            return False
        lease, self._lease, self._valid_until = self._lease, 0, 0.0
        try:
            self.client.revoke(lease)
        except errors.FailoverError:
            return False
        return True

    def lease_holder(self) -> str | None:
        """The holder of the lease; when etcd cannot answer, ourselves only while our lease is proven."""
        try:
            kv = self.client.get(self._k("leader"))
        except errors.TemporaryError:
            return self._holder if self.holds_lease() else None
        return kv.value if kv is not None else None

    # --- observers ---------------------------------------------------------------------------------
    def publish_member(self, name: str, info: Mapping[str, JSON], verdicts: Mapping[str, JSON], *,
                       ttl_s: float) -> None:
        """This observer's membership and per-site verdicts, on its own lease (gone when it dies)."""
        if not self._member_lease or self.client.keepalive(self._member_lease) <= 0:
            self._member_lease = self.client.grant(max(2, math.ceil(ttl_s)))
        self.client.txn([], [ec.op_put(self._k("members", name), _dump(info), lease=self._member_lease),
                             ec.op_put(self._k("verdicts", name), _dump(verdicts), lease=self._member_lease)])

    def members(self) -> dict[str, Any]:
        return {kv.key.rsplit("/", 1)[1]: json.loads(kv.value)
                for kv in self.client.get_prefix(self._k("members") + "/")}

    def verdicts(self) -> dict[str, Any]:
        return {kv.key.rsplit("/", 1)[1]: json.loads(kv.value)
                for kv in self.client.get_prefix(self._k("verdicts") + "/")}

    def refusals(self) -> list[dict[str, Any]]:
        """Every write etcd refused for a stale epoch (by any instance), oldest first."""
        return [json.loads(kv.value) for kv in self.client.get_prefix(self._k("refused") + "/")]

    def withdraw_member(self, name: str) -> None:
        if self._member_lease:
            lease, self._member_lease = self._member_lease, 0
            try:
                self.client.revoke(lease)
            except errors.FailoverError:
                pass


def _ts(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


def _run(d: dict[str, Any]) -> RunRecord:
    created = _ts(d["created_at"])
    assert created is not None
    return RunRecord(
        id=str(d["id"]), seq=int(d["seq"]), playbook=str(d["playbook"]), kind=str(d["kind"]),
        phase=RunPhase(d["phase"]), params=dict(d.get("params") or {}), epoch=int(d["epoch"]), created_at=created,
        started_at=_ts(d.get("started_at")), finished_at=_ts(d.get("finished_at")),
        approved_by=d.get("approved_by"), approved_at=_ts(d.get("approved_at")),
        result=dict(d.get("result") or {}), error=d.get("error"), definition=d.get("definition"))


def _step(d: dict[str, Any]) -> StepRecord:
    started = _ts(d["started_at"])
    assert started is not None
    return StepRecord(
        record_id=int(d["record_id"]), run_id=str(d["run_id"]), key=str(d["key"]), step_id=str(d["step_id"]),
        attempt=int(d["attempt"]), status=StepStatus(d["status"]), started_at=started,
        finished_at=_ts(d.get("finished_at")), duration=d.get("duration"), output=d.get("output"),
        error=d.get("error"), progress=tuple(d.get("progress") or ()))

"""The durable state of the product: runs, their step journal, decisions, key/value state, the
fencing epoch and the mutation lease.

Everything that must survive ``kill -9`` lives behind :class:`Store`, so the daemon keeps nothing
important in memory and a restarted process resumes exactly where the last one stopped. The
protocol is synchronous on purpose: every call is one tiny local transaction (SQLite in WAL mode),
cheaper than a thread hop, and callers on the event loop may call it directly. An etcd-backed
store for several daemons would implement the same protocol.

Contracts shared by every implementation:

* every write is durable when the method returns (SQLite: ``synchronous=FULL``);
* a busy database raises :class:`~failover.core.errors.TemporaryError` (retry), a corrupt one
  :class:`~failover.core.errors.PermanentError`;
* the journal is append-only: a step record is inserted when an attempt starts and completed
  once when it ends; nothing is ever deleted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, TypeAlias, Union

JSON: TypeAlias = Union[bool, int, float, str, list["JSON"], dict[str, "JSON"], None]  # noqa: UP007


class RunPhase(StrEnum):
    """Where a run is; each phase is written by exactly one owner (the engine or an operator)."""

    #: created by ``Engine.start``, not executed yet (the daemon picks it up on its next cycle)
    PENDING = "pending"
    #: created, but a human must ``failover approve`` it first (policy: manual approval)
    WAITING_APPROVAL = "waiting_approval"
    #: the engine is executing it (or was, when its process died: ``execute`` resumes it)
    RUNNING = "running"
    #: terminal: every stage ran and no step with ``on_failure: abort`` failed
    SUCCEEDED = "succeeded"
    #: terminal: a step failed with ``on_failure: abort`` (or a stale epoch); ``error`` says which
    FAILED = "failed"
    #: terminal: an operator cancelled it; nothing more runs
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (RunPhase.SUCCEEDED, RunPhase.FAILED, RunPhase.CANCELLED)


class StepStatus(StrEnum):
    """The outcome of one journaled attempt of one step (or one foreach iteration)."""

    #: the attempt started and has not ended (after a crash: see ``INTERRUPTED``)
    RUNNING = "running"
    #: the action returned; its output is in the record and is never recomputed on resume
    SUCCEEDED = "succeeded"
    #: the attempt failed with a temporary error (or timed out) and another attempt follows
    RETRYING = "retrying"
    #: the step failed for good: permanent error, retries exhausted, stale epoch, bad parameters
    FAILED = "failed"
    #: not executed because an earlier stage aborted the run
    SKIPPED = "skipped"
    #: the process died or the run was cancelled while the attempt ran; resume runs it again
    INTERRUPTED = "interrupted"
    #: the action could not confirm its effect (a fence that could not reach its site); the run goes on
    UNCONFIRMED = "unconfirmed"


@dataclass(frozen=True)
class RunRecord:
    """One run of a playbook, as stored."""

    id: str
    seq: int
    playbook: str
    kind: str
    phase: RunPhase
    params: dict[str, JSON]
    epoch: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    approved_by: str | None
    approved_at: datetime | None
    result: dict[str, JSON]
    error: str | None
    definition: JSON  #: the playbook as it was when the run started (resume uses this, not the file)


@dataclass(frozen=True)
class StepRecord:
    """One attempt of one step (key ``restore[group=1]`` for a foreach iteration)."""

    record_id: int
    run_id: str
    key: str
    step_id: str
    attempt: int
    status: StepStatus
    started_at: datetime
    finished_at: datetime | None
    duration: float | None
    output: JSON
    error: str | None
    progress: tuple[str, ...]


@dataclass(frozen=True)
class DecisionRecord:
    """One controller decision (appended when the sentence changes)."""

    id: int
    ts: datetime
    sentence: str
    payload: JSON


@dataclass(frozen=True)
class AuditRecord:
    """One entry of the hash-chained audit log: ``hash = sha256(prev + canonical JSON of body)``."""

    seq: int
    body: dict[str, JSON]  #: seq, ts, actor, action, run, subject, details
    prev: str  #: the previous entry's hash (:data:`AUDIT_GENESIS` for the first)
    hash: str


@dataclass(frozen=True)
class SignoffRecord:
    """An operator's sign-off on a step of a run: confirm, skip, next (step mode) or approve."""

    run_id: str
    key: str
    action: str
    operator: str
    at: datetime
    detail: JSON


@dataclass(frozen=True)
class WaitRecord:
    """A step that waits for people: ``confirm`` (a manual step) or ``next`` (step mode)."""

    run_id: str
    key: str
    kind: str
    since: datetime
    detail: JSON


#: the ``prev`` of the first audit entry
AUDIT_GENESIS = "0" * 64


def canonical_json(value: JSON) -> bytes:
    """The one byte form that is hashed: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def audit_hash(prev: str, body: JSON) -> str:
    """SHA-256 over the previous entry's hash and this entry's canonical JSON."""
    return hashlib.sha256(prev.encode("ascii") + b"\n" + canonical_json(body)).hexdigest()


class Store(Protocol):
    """The persistence the engine, the controller and the CLI rely on (see module docstring)."""

    # --- runs --------------------------------------------------------------------------------------
    def create_run(self, *, playbook: str, kind: str, params: Mapping[str, JSON], epoch: int,
                   phase: RunPhase = RunPhase.PENDING, definition: JSON = None,
                   run_id: str | None = None) -> RunRecord:
        """Insert a run; ``run_id`` defaults to its sequence number (``"42"``). Not idempotent:
        an existing ``run_id`` raises PermanentError."""

    def get_run(self, run_id: str) -> RunRecord | None: ...

    def list_runs(self, *, limit: int = 20, phases: Collection[str] | None = None) -> list[RunRecord]:
        """Newest first."""

    def update_run(self, run_id: str, **fields: object) -> RunRecord:
        """Set columns (phase, started_at, finished_at, result, error, epoch, ...). Idempotent."""

    def approve_run(self, run_id: str, by: str) -> RunRecord:
        """Record the approval; a waiting run becomes pending. Idempotent."""

    # --- journal -----------------------------------------------------------------------------------
    def record_step_start(self, run_id: str, key: str, *, step_id: str, attempt: int,
                          started_at: datetime | None = None,
                          status: StepStatus = StepStatus.RUNNING) -> StepRecord: ...

    def record_step_end(self, record_id: int, *, status: StepStatus, finished_at: datetime | None = None,
                        output: JSON = None, error: str | None = None) -> StepRecord: ...

    def append_progress(self, record_id: int, message: str) -> None: ...

    def step_records(self, run_id: str) -> list[StepRecord]:
        """Every attempt of the run, in journal order."""

    # --- decisions ---------------------------------------------------------------------------------
    def append_decision(self, sentence: str, payload: JSON = None) -> DecisionRecord: ...

    def decisions(self, limit: int = 20) -> list[DecisionRecord]:
        """Newest first."""

    # --- state, epoch, lease -----------------------------------------------------------------------
    def get_state(self, key: str) -> JSON: ...

    def set_state(self, key: str, value: JSON) -> None: ...

    def cas_state(self, key: str, expected: JSON, new: JSON) -> bool:
        """Set ``key`` to ``new`` only if it currently equals ``expected`` (None: absent)."""

    def bump_epoch(self) -> int:
        """Atomically increment the fencing epoch and return the new value."""

    def current_epoch(self) -> int: ...

    def acquire_lease(self, holder: str, ttl_s: float) -> bool:
        """Take the lease if it is free, expired or already ours; True when we hold it."""

    def renew_lease(self, holder: str, ttl_s: float) -> bool:
        """Extend our lease; False when someone else holds it (we lost it)."""

    def release_lease(self, holder: str) -> bool: ...

    def lease_holder(self) -> str | None:
        """The holder of an unexpired lease, if any."""

    def close(self) -> None: ...

    # --- audit log, sign-offs, waits -----------------------------------------------------------------
    def append_audit(self, *, actor: str, action: str, run: str | None = None, subject: str | None = None,
                     details: JSON = None) -> AuditRecord:
        """Append one entry chained to the previous one (atomically; ``append_decision`` appends one
        too). The log is append-only: nothing updates or deletes an entry."""

    def audit_records(self, *, after: int = 0, limit: int | None = None) -> list[AuditRecord]:
        """Entries with ``seq > after`` in order."""

    def add_signoff(self, run_id: str, key: str, *, action: str, operator: str, detail: JSON = None) -> bool:
        """Record a sign-off; False when this operator already gave this one (idempotent)."""

    def signoffs(self, run_id: str, key: str | None = None) -> list[SignoffRecord]: ...

    def set_wait(self, run_id: str, key: str, *, kind: str, detail: JSON = None) -> WaitRecord:
        """Mark a step as waiting for people (idempotent; ``since`` is kept from the first call)."""

    def clear_wait(self, run_id: str, key: str) -> None: ...

    def waits(self, run_id: str) -> list[WaitRecord]: ...


__all__ = ["AUDIT_GENESIS", "JSON", "AuditRecord", "DecisionRecord", "RunPhase", "RunRecord", "SignoffRecord",
           "StepRecord", "StepStatus", "Store", "WaitRecord", "audit_hash", "canonical_json"]

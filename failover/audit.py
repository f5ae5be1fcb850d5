"""The audit trail: an append-only, hash-chained log of every operator action and every automatic
decision and step, so that afterwards one can prove who did what and when — and see tampering.

Each entry's ``hash`` is SHA-256 over the previous entry's hash and the entry's canonical JSON
(:func:`failover.store.audit_hash`); the store appends inside one transaction, so the chain never
forks. :func:`verify` walks the chain and names each broken entry and how it broke:

* **changed** — the entry's content no longer matches its hash;
* **deleted** — sequence numbers jump (the next entry's ``prev`` is the hash of an entry that is gone);
* **reordered** — an entry sits at another entry's position (its ``seq`` or ``prev`` points elsewhere).

Sources: the engine's journal through :class:`AuditObserver` (registered for every engine), the
controller's decisions (``Store.append_decision`` appends an entry in the same transaction) and the
runbook's commands (``Store.append_audit``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from failover.core import errors
from failover.playbook import registry
from failover.playbook.observers import RunObserver
from failover.store import AUDIT_GENESIS, AuditRecord, RunRecord, StepRecord, Store, audit_hash, canonical_json


class AuditObserver(RunObserver):
    """Every run start and end and every step attempt's end go to the audit log."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def run_started(self, run: RunRecord) -> None:
        self.store.append_audit(actor="engine", action="run.started", run=run.id, subject=run.playbook,
                                details={"epoch": run.epoch, "params": run.params})

    async def step_finished(self, run: RunRecord, step: StepRecord) -> None:
        self.store.append_audit(actor="engine", action=f"step.{step.status.value}", run=run.id, subject=step.key,
                                details={"attempt": step.attempt, "duration_s": step.duration, "error": step.error})

    async def run_finished(self, run: RunRecord) -> None:
        self.store.append_audit(actor="engine", action=f"run.{run.phase.value}", run=run.id, subject=run.playbook,
                                details={"error": run.error})


@registry.engine_observer
def audit_observer(store: Store) -> RunObserver:
    """The audit trail for an engine on ``store`` (a store without the audit table gets no-op hooks)."""
    return AuditObserver(store) if hasattr(store, "append_audit") else RunObserver()


@dataclass(frozen=True)
class Problem:
    position: int  #: 1-based position in the log as read
    seq: int | None
    kind: str  #: changed | deleted | reordered | malformed
    message: str


def verify(entries: Iterable[AuditRecord]) -> list[Problem]:
    """Every break in the chain, in order; empty when the log is intact."""
    problems: list[Problem] = []
    items = list(entries)
    by_hash = {e.hash: e for e in items}
    prev_hash, expected = AUDIT_GENESIS, 1
    for pos, e in enumerate(items, start=1):
        claimed = e.body.get("seq")
        if not isinstance(claimed, int) or audit_hash(e.prev, e.body) != e.hash:
            problems.append(Problem(pos, e.seq, "changed",
                                    f"entry {e.seq}: changed (its content does not match its hash)"))
        elif claimed != e.seq or (claimed < expected):
            problems.append(Problem(pos, e.seq, "reordered",
                                    f"entry {claimed} is at position {pos} (after entry {expected - 1}): reordered"))
        elif claimed > expected and e.prev not in by_hash:
            gone = f"{expected}" if claimed == expected + 1 else f"{expected}..{claimed - 1}"
            problems.append(Problem(pos, e.seq, "deleted", f"entry {gone} deleted (entry {claimed} follows "
                                                           f"entry {expected - 1})"))
        elif e.prev != prev_hash and e.prev not in by_hash and claimed == expected:
            problems.append(Problem(pos - 1, expected - 1, "changed",
                                    f"entry {expected - 1}: changed (its hash was recomputed; entry {claimed} "
                                    "was chained to the original)"))
        elif e.prev != prev_hash:
            after = by_hash.get(e.prev)
            where = f"entry {after.seq}" if after is not None else "an unknown entry"
            problems.append(Problem(pos, e.seq, "reordered",
                                    f"entry {claimed} was chained after {where}, not after entry {expected - 1}: "
                                    "reordered"))
        prev_hash = e.hash
        expected = (claimed if isinstance(claimed, int) else expected) + 1
    return problems


def export_lines(entries: Iterable[AuditRecord]) -> Iterator[str]:
    """JSON Lines: one ``{"seq", "body", "prev", "hash"}`` object per entry, verifiable offline."""
    for e in entries:
        yield canonical_json({"seq": e.seq, "body": e.body, "prev": e.prev, "hash": e.hash}).decode("utf-8")


def read_export(path: Path) -> list[AuditRecord]:
    """An exported file back as entries; InputError naming file:line for a line that is not one."""
    out: list[AuditRecord] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise errors.InputError(f"{path}: cannot read: {exc.strerror}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
            out.append(AuditRecord(seq=int(doc["seq"]), body=dict(doc["body"]), prev=str(doc["prev"]),
                                   hash=str(doc["hash"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise errors.InputError(f"{path}:{number}: not an audit entry ({type(exc).__name__}); "
                                    "export the log again with `failover audit export`") from exc
    return out


def describe(e: AuditRecord) -> str:
    """One line for people: time, actor, action, run and subject."""
    b = e.body
    run = f" run {b['run']}" if b.get("run") else ""
    subject = f" {b['subject']}" if b.get("subject") else ""
    details = b.get("details")
    extra = ""
    if isinstance(details, dict):
        for key in ("sentence", "reason", "rule", "error", "evidence"):
            if details.get(key):
                extra = f" — {key}: {details[key]}"
                break
    return f"{e.seq:>5} {b.get('ts')} {b.get('actor')}: {b.get('action')}{run}{subject}{extra}"

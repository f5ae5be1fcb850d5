"""The SQLite store: runs, journal, decisions, state with CAS, the fencing epoch, the lease between
two stores on one file, and durability of every acknowledged commit after kill -9."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from failover.core import errors
from failover.store import RunPhase, StepStatus, sqlite

HERE = Path(__file__).resolve().parent


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[sqlite.SqliteStore]:
    s = sqlite.SqliteStore(tmp_path / "state.db", clock=clock)
    yield s
    s.close()


def test_runs_get_monotonic_numbers_and_round_trip(store: sqlite.SqliteStore, clock: Clock) -> None:
    first = store.create_run(playbook="failover", kind="failover", params={"to": "b", "n": [1]}, epoch=3)
    second = store.create_run(playbook="drill", kind="drill", params={}, epoch=3,
                              phase=RunPhase.WAITING_APPROVAL)
    assert (first.id, second.id) == ("1", "2")
    assert first.params == {"to": "b", "n": [1]} and first.phase is RunPhase.PENDING and first.epoch == 3
    assert [r.id for r in store.list_runs()] == ["2", "1"], "newest first"
    assert [r.id for r in store.list_runs(phases=["waiting_approval"])] == ["2"]
    clock.advance(5)
    done = store.update_run("1", phase=RunPhase.SUCCEEDED, finished_at=clock(), result={"rto_s": 12.5})
    assert done.phase is RunPhase.SUCCEEDED and done.result == {"rto_s": 12.5}
    assert done.finished_at == clock() and done.created_at == clock() - timedelta(seconds=5)
    approved = store.approve_run("2", "alice")
    assert approved.phase is RunPhase.PENDING and approved.approved_by == "alice"
    assert store.approve_run("2", "bob").approved_by == "alice", "approval is recorded once"
    with pytest.raises(ValueError, match="unknown fields"):
        store.update_run("1", colour="red")
    with pytest.raises(errors.PermanentError, match="already exists"):
        store.create_run(playbook="x", kind="x", params={}, epoch=0, run_id="1")
    assert store.get_run("nope") is None


def test_the_journal_records_attempts_durations_outputs_and_progress(store: sqlite.SqliteStore,
                                                                      clock: Clock) -> None:
    store.create_run(playbook="p", kind="failover", params={}, epoch=0, run_id="r")
    rec = store.record_step_start("r", "restore[group=1]", step_id="restore", attempt=1)
    assert rec.status is StepStatus.RUNNING and rec.finished_at is None
    store.append_progress(rec.record_id, "created Restore x")
    clock.advance(2.5)
    end = store.record_step_end(rec.record_id, status=StepStatus.SUCCEEDED, output={"phase": "Completed"})
    assert end.duration == 2.5 and end.output == {"phase": "Completed"}
    assert end.progress == ("created Restore x",)
    other = store.record_step_start("r", "dns", step_id="dns", attempt=1)
    store.record_step_end(other.record_id, status=StepStatus.FAILED, error="boom")
    assert [(s.key, s.status.value, s.error) for s in store.step_records("r")] == [
        ("restore[group=1]", "succeeded", None), ("dns", "failed", "boom")]


def test_decisions_newest_first(store: sqlite.SqliteStore) -> None:
    for n in range(3):
        store.append_decision(f"sentence {n}", {"n": n})
    assert [(d.sentence, d.payload) for d in store.decisions(limit=2)] == [("sentence 2", {"n": 2}),
                                                                          ("sentence 1", {"n": 1})]


def test_state_and_compare_and_set(store: sqlite.SqliteStore) -> None:
    assert store.get_state("active") is None
    assert store.cas_state("active", None, "ionos") is True
    assert store.cas_state("active", None, "stackit") is False, "no longer absent"
    assert store.cas_state("active", "ionos", "stackit") is True
    assert store.get_state("active") == "stackit"
    store.set_state("roles", {"a": "fenced"})
    assert store.get_state("roles") == {"a": "fenced"}


def test_bump_epoch_is_atomic_across_connections(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    sqlite.SqliteStore(path).close()
    seen: list[int] = []
    lock = threading.Lock()

    def bump() -> None:
        s = sqlite.SqliteStore(path)
        for _ in range(25):
            value = s.bump_epoch()
            with lock:
                seen.append(value)
        s.close()

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == list(range(1, 101)), "every bump got its own epoch"
    assert sqlite.SqliteStore(path).current_epoch() == 100


def test_the_lease_excludes_a_second_store_on_the_same_file(tmp_path: Path, clock: Clock) -> None:
    a = sqlite.SqliteStore(tmp_path / "state.db", clock=clock)
    b = sqlite.SqliteStore(tmp_path / "state.db", clock=clock)
    assert a.acquire_lease("node-a", 10) is True
    assert b.acquire_lease("node-b", 10) is False and b.lease_holder() == "node-a"
    assert b.renew_lease("node-b", 10) is False
    clock.advance(8)
    assert a.renew_lease("node-a", 10) is True
    clock.advance(8)
    assert b.acquire_lease("node-b", 10) is False, "renewed: still a's"
    assert a.acquire_lease("node-a", 10) is True, "re-acquiring your own lease (restart) works"
    clock.advance(11)
    assert b.acquire_lease("node-b", 10) is True, "expired: b takes over"
    assert a.renew_lease("node-a", 10) is False, "a learns it lost the lease"
    assert a.release_lease("node-a") is False and b.release_lease("node-b") is True
    assert a.lease_holder() is None and a.acquire_lease("node-a", 10) is True
    a.close()
    b.close()


def test_schema_is_versioned_and_reopening_does_not_migrate_again(tmp_path: Path) -> None:
    s = sqlite.SqliteStore(tmp_path / "state.db")
    s.set_state("k", 1)
    assert s.schema_version() == len(sqlite.MIGRATIONS)
    s.close()
    again = sqlite.SqliteStore(tmp_path / "state.db")
    assert again.get_state("k") == 1 and again.schema_version() == len(sqlite.MIGRATIONS)
    mode = again._read("PRAGMA journal_mode")[0][0]
    assert mode == "wal"
    again.close()


def test_every_acknowledged_commit_survives_kill_9(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    proc = subprocess.Popen([sys.executable, str(HERE / "wal_writer.py"), str(db)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        acked = [int(proc.stdout.readline()) for _ in range(200)]
        proc.send_signal(signal.SIGKILL)
        acked += [int(line) for line in proc.stdout.read().split()]
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert proc.returncode == -9
    raw = sqlite3.connect(str(db))
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()
    store = sqlite.SqliteStore(db)
    stored = {d.id for d in store.decisions(limit=100_000)}
    assert set(acked) <= stored, f"lost acknowledged commits: {sorted(set(acked) - stored)[:5]}"
    last = store.get_state("last")
    assert isinstance(last, int) and last >= max(acked) - 1
    store.close()

"""kill -9 at every step boundary (before the side effect, after it, after the journal write):
the restarted runner completes the run, and every side effect happened exactly once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from failover.store import RunPhase, StepStatus, sqlite

HERE = Path(__file__).resolve().parent
PLAYBOOK = HERE.parents[1] / "playbooks" / "_test" / "crash.yaml"
KEYS = ["a", "b", "c", "d[n=1]", "d[n=2]"]
POINTS = [f"{k}:{p}" for k in KEYS for p in ("before", "after", "journaled")]


def run_runner(tmp: Path) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, str(HERE / "crash_runner.py"), str(tmp / "state.db"), str(tmp / "effects.db"),
            str(tmp / "crashes.txt"), str(PLAYBOOK)]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def test_kill_9_at_every_step_boundary_completes_the_run_exactly_once(tmp_path: Path) -> None:
    kills = 0
    for _ in range(len(POINTS) + 2):
        proc = run_runner(tmp_path)
        if proc.returncode == -9:
            kills += 1
            continue
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.strip() == "succeeded"
        break
    crashed_at = (tmp_path / "crashes.txt").read_text().split()
    assert sorted(crashed_at) == sorted(POINTS) and kills == len(POINTS)

    store = sqlite.SqliteStore(tmp_path / "state.db")
    run = store.get_run("crash-1")
    assert run is not None and run.phase is RunPhase.SUCCEEDED
    records = store.step_records("crash-1")
    succeeded = [r for r in records if r.status is StepStatus.SUCCEEDED]
    assert sorted(r.key for r in succeeded) == sorted(KEYS), "each step succeeded exactly once in the journal"
    assert not [r for r in records if r.status is StepStatus.RUNNING]
    assert [r for r in records if r.status is StepStatus.INTERRUPTED], "the crashes left interrupted attempts"

    db = sqlite3.connect(str(tmp_path / "effects.db"))
    effects = dict(db.execute("SELECT key, token FROM effects").fetchall())
    inputs = dict(db.execute("SELECT key, input FROM effects").fetchall())
    calls = [k for (k,) in db.execute("SELECT key FROM calls").fetchall()]
    db.close()
    assert sorted(effects) == sorted(f"crash-1/{k}" for k in KEYS), "one side effect per step"
    assert all(calls.count(f"crash-1/{k}") >= 2 for k in KEYS), "every step really ran again after a kill"
    out = {r.key: r.output for r in succeeded}
    assert all(isinstance(o, dict) and o["token"] == effects[f"crash-1/{k}"] for k, o in out.items())
    assert inputs["crash-1/b"] == effects["crash-1/a"], "b saw a's output from the first (journaled) run"
    assert inputs["crash-1/d[n=2]"] == "2"
    store.close()

"""A manual step keeps waiting across ``kill -9`` of the process executing the run: the sign-offs
people give are rows in the store, and the resumed step counts them."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from failover.runbook import operators, service
from failover.store import StepStatus, sqlite
from tests.runbook.conftest import GATE, wait_for

RUNNER = Path(__file__).with_name("run_runner.py")


def spawn(db: Path, playbook: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(RUNNER), str(db), str(playbook), "k9"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def actor(name: str) -> operators.Actor:
    return operators.Actor(name=name, roles=frozenset({"krisenstab"}), authenticated=True)


async def test_a_manual_step_waits_across_kill_9_and_completes_once_confirmed(tmp_path: Path) -> None:
    db, playbook = tmp_path / "state.db", tmp_path / "gate.yaml"
    playbook.write_text(GATE)
    store = sqlite.SqliteStore(db)
    proc = spawn(db, playbook)
    try:
        await wait_for(lambda: [w for w in store.waits("k9") if w.key == "approve"], timeout=30,
                       what="the manual step to wait")
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
        records = [r for r in store.step_records("k9") if r.key == "approve"]
        assert [r.status for r in records] == [StepStatus.RUNNING]  # the dead process left it running
        # a confirmation given while no process runs is kept
        evidence = {"decision": "K-9"}
        signed = service.confirm(store=store, actor=actor("bob"), run_id="k9", key="approve", evidence=evidence)
        assert signed == ["bob"]
        proc = spawn(db, playbook)

        def resumed_and_waiting() -> bool:
            recs = [r for r in store.step_records("k9") if r.key == "approve"]
            return [r.status for r in recs] == [StepStatus.INTERRUPTED, StepStatus.RUNNING]

        await wait_for(resumed_and_waiting, timeout=30, what="the resumed step waiting again")
        assert proc.poll() is None  # one of two confirmations: it keeps waiting
        service.confirm(store=store, actor=actor("carol"), run_id="k9", key="approve", evidence={})
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0 and out.strip() == "succeeded", err[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done = [r for r in store.step_records("k9") if r.status is StepStatus.SUCCEEDED]
    assert [r.key for r in done] == ["first", "approve", "second", "third"]  # each exactly once
    approve = next(r for r in done if r.key == "approve")
    assert isinstance(approve.output, dict) and approve.output["confirmed_by"] == ["bob", "carol"]

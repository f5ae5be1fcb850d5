"""The runbook on etcd: a run with a manual four-eyes step waits in etcd, operators sign it from
another process's store (as `failover runbook confirm` does), the run completes, and the audit log
in etcd is one unbroken chain — also when two writers append at once."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from failover import audit
from failover.core import errors
from failover.lab.etcd import EtcdCluster
from failover.playbook import engine, loader, registry
from failover.runbook import operators, service, state
from failover.store import RunPhase, StepStatus
from failover.store.etcd import EtcdStore
from tests.runbook import rb_actions  # noqa: F401  (registers rb-note)

Open = Callable[..., EtcdStore]
pytestmark = pytest.mark.timeout(60)

GATE = """
name: gate
description: an automated step, a four-eyes gate, an automated step
params:
  from: {type: str, required: true}
  to: {type: str, required: true}
stages:
  - name: one
    steps:
      - {id: first, uses: rb-note}
  - name: decide
    steps:
      - id: approve
        uses: manual
        with: {title: Krisenstab approves, role: krisenstab, approvers: 2, evidence: [decision]}
  - name: two
    steps:
      - {id: second, uses: rb-note}
"""


def actor(name: str) -> operators.Actor:
    return operators.Actor(name=name, roles=frozenset({"krisenstab"}), authenticated=True)


async def until(predicate: Callable[[], object], what: str, timeout: float = 30) -> None:
    async def poll() -> None:
        tick = asyncio.Event()  # a polled condition: re-checked every 50 ms
        while not predicate():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tick.wait(), 0.05)
    try:
        await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_a_manual_step_waits_in_etcd_and_completes_once_two_operators_confirm(
        etcd_store: Open, tmp_path: Path) -> None:
    registry.ensure_builtin()
    (tmp_path / "gate.yaml").write_text(GATE)
    leader, operator_cli = etcd_store(), etcd_store()
    assert leader.acquire_lease("leader", 10)
    leader.bump_epoch()  # the leader acts under a fence, the operator's CLI writes unguarded
    eng = engine.Engine(store=leader, services=None)
    run_id = await eng.start(loader.load_playbook(tmp_path / "gate.yaml"), params={"from": "a", "to": "b"})
    state.save_meta(leader, run_id, state.RunMeta(requester="alice"))
    task = asyncio.create_task(eng.execute(run_id))
    try:
        await until(lambda: [w for w in operator_cli.waits(run_id) if w.key == "approve"], "the step to wait")
        since = operator_cli.waits(run_id)[0].since
        with pytest.raises(errors.InputError, match="needs evidence"):
            service.confirm(store=operator_cli, actor=actor("bob"), run_id=run_id, key="approve", evidence={})
        assert service.confirm(store=operator_cli, actor=actor("bob"), run_id=run_id, key="approve",
                               evidence={"decision": "K-9"}) == ["bob"]
        assert not operator_cli.add_signoff(run_id, "approve", action="confirm", operator="bob")  # once
        leader.set_wait(run_id, "approve", kind="confirm", detail={"role": "krisenstab", "approvers": 2})
        assert [w.since for w in operator_cli.waits(run_id)] == [since]  # the first wait's time is kept
        assert not task.done()  # one of two: it keeps waiting
        service.confirm(store=operator_cli, actor=actor("carol"), run_id=run_id, key="approve", evidence={})
        run = await asyncio.wait_for(task, 30)
    finally:
        task.cancel()
    assert run.phase is RunPhase.SUCCEEDED, run.error
    done = [r for r in leader.step_records(run_id) if r.status is StepStatus.SUCCEEDED]
    assert [r.key for r in done] == ["first", "approve", "second"]
    approve = next(r for r in done if r.key == "approve")
    assert isinstance(approve.output, dict) and approve.output["confirmed_by"] == ["bob", "carol"]
    assert approve.output["evidence"] == {"decision": "K-9"}
    assert operator_cli.waits(run_id) == []
    assert [s.operator for s in operator_cli.signoffs(run_id, "approve")] == ["bob", "carol"]
    entries = operator_cli.audit_records()
    assert audit.verify(entries) == [] and [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert [e.body["actor"] for e in entries if e.body["action"] == "step.confirm"] == ["bob", "carol"]


def test_two_writers_append_one_chain_and_a_deposed_leader_cannot_append(etcd_store: Open) -> None:
    a, b = etcd_store(), etcd_store()

    def write(store: EtcdStore, who: str) -> None:
        for i in range(15):
            if i % 3:
                store.append_audit(actor=who, action="note", details={"i": i})
            else:
                store.append_decision(f"{who} {i}")

    threads = [threading.Thread(target=write, args=(s, n)) for s, n in ((a, "a"), (b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    entries = a.audit_records()
    assert len(entries) == 30 and audit.verify(entries) == []  # no fork: every entry chained to the one before
    assert len([e for e in entries if e.body["action"] == "decision"]) == len(a.decisions(limit=50)) == 10
    assert [e.seq for e in a.audit_records(after=28)] == [29, 30] and len(a.audit_records(limit=4)) == 4

    assert a.acquire_lease("a", 2)
    a.bump_epoch()
    a.release_lease("a")
    assert b.acquire_lease("b", 2)
    b.bump_epoch()
    with pytest.raises(errors.StaleEpochError):
        a.append_audit(actor="a", action="late")
    with pytest.raises(errors.StaleEpochError):
        a.add_signoff("1", "x", action="confirm", operator="a")
    assert len(b.audit_records()) == 30 and b.signoffs("1") == []


async def test_operators_confirm_through_the_cli_against_etcd_and_audit_verifies_it(
        etcd_cluster: EtcdCluster, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`failover runbook confirm` and `failover audit verify` use the shared etcd store (before, the
    CLI wrote sign-offs to a local SQLite file no instance read)."""
    from failover import cli
    from tests.ha.test_alert_vote import write_config

    registry.ensure_builtin()
    monkeypatch.setenv("FAILOVER_STATE_DIR", str(tmp_path / "state"))
    path = write_config(tmp_path, etcd_cluster.endpoints, prefix, vote=False)
    cfg = yaml.safe_load(path.read_text())
    cfg["roles"] = {"krisenstab": "decides"}
    cfg["operators"] = [{"name": n, "roles": ["krisenstab"], "secret": {"env": f"HA_TEST_SECRET_{n.upper()}"}}
                        for n in ("bob", "carol")]
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    for n in ("bob", "carol"):
        monkeypatch.setenv(f"HA_TEST_SECRET_{n.upper()}", f"{n}-secret-{n}")
    (tmp_path / "gate.yaml").write_text(GATE)
    leader = EtcdStore(etcd_cluster.endpoints, prefix=prefix)
    eng = engine.Engine(store=leader, services=None)
    run_id = await eng.start(loader.load_playbook(tmp_path / "gate.yaml"), params={"from": "a", "to": "b"})
    state.save_meta(leader, run_id, state.RunMeta(requester="alice"))
    task = asyncio.create_task(eng.execute(run_id))

    def confirm(who: str, *evidence: str) -> int:
        monkeypatch.setenv(operators.SECRET_ENV, f"{who}-secret-{who}")
        extra = [w for e in evidence for w in ("--evidence", e)]
        return cli.main(["--config", str(path), "runbook", "confirm", "approve", "--run", run_id, *extra,
                         "--as", who])
    try:
        await until(lambda: leader.waits(run_id), "the step to wait")
        assert await asyncio.to_thread(confirm, "bob", "decision=K-9") == 0
        assert await asyncio.to_thread(confirm, "carol") == 0
        run = await asyncio.wait_for(task, 30)
    finally:
        task.cancel()
        leader.close()
    assert run.phase is RunPhase.SUCCEEDED, run.error
    capsys.readouterr()
    assert await asyncio.to_thread(cli.main, ["--config", str(path), "audit", "verify"]) == 0
    assert "step.confirm" in await asyncio.to_thread(
        lambda: (cli.main(["--config", str(path), "audit", "show"]), capsys.readouterr().out)[1])

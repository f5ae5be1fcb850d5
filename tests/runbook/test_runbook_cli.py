"""The runbook through its CLI: a manual four-eyes step blocks the run until two different operators
of the role confirmed it (never the requester, never one operator twice, never a wrong secret);
step mode waits for `next`; skip and abort; break glass lifts exactly the rule it names."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from failover import audit
from failover.store import StepStatus
from tests.runbook.conftest import World, executor, wait_for


async def cli(world: World, capsys: pytest.CaptureFixture[str], *words: str, who: str | None = None,
              secret: str | None = None) -> tuple[int, Any, str]:
    return await asyncio.to_thread(world.cli, *words, who=who, secret=secret, capsys=capsys)


async def start(world: World, capsys: pytest.CaptureFixture[str], *extra: str, who: str = "alice") -> str:
    world.report_ready()
    rc, doc, err = await cli(world, capsys, "runbook", "start", "gate", "--to", "stb", "--detach", "--json",
                             *extra, who=who)
    assert rc == 0, err
    return str(doc["run"])


async def test_a_four_eyes_manual_step_blocks_until_two_other_operators_confirm(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = await start(world, capsys)
    store = world.store()
    task = executor(world, run_id)
    await wait_for(lambda: [w for w in store.waits(run_id) if w.key == "approve"], what="the manual step waits")
    notice = await wait_for(lambda: [h for h in world.hooks if h["event"] == "manual-step"], what="the role's notice")
    assert notice[0]["role"] == "krisenstab" and notice[0]["operators"] == ["alice", "bob", "carol"]
    assert notice[0]["step"] == "approve" and notice[0]["approvers"] == 2
    rc, doc, _ = await cli(world, capsys, "runbook", "status", "--json")
    assert rc == 0 and doc["waiting"][0]["key"] == "approve" and doc["waiting"][0]["role"] == "krisenstab"
    assert doc["waiting"][0]["who"] == ["bob", "carol"]  # alice requested the run: four eyes exclude her
    assert doc["current"] == ["approve"] and doc["next"] == ["second", "third"]

    async def refused(who: str, needle: str, *, secret: str | None = None) -> None:
        rc, _, err = await cli(world, capsys, "runbook", "confirm", "approve", "--evidence", "decision=K-1",
                               who=who, secret=secret)
        assert rc == 2 and needle in err, (who, rc, err)

    await refused("alice", "requested run")  # the requester cannot approve her own run
    await refused("bob", "wrong secret", secret="not-bobs")
    await refused("dave", "lacks role 'krisenstab'")  # hashed secret accepted, role missing
    rc, _, err = await cli(world, capsys, "runbook", "confirm", "approve", who="bob")
    assert rc == 2 and "needs evidence: --evidence decision=" in err
    rc, doc, err = await cli(world, capsys, "runbook", "confirm", "approve", "--evidence", "decision=K-1",
                             "--json", who="bob")
    assert rc == 0 and doc["signed"] == ["bob"], err
    await refused("bob", "already confirmed")  # the same operator twice is still one pair of eyes
    await asyncio.sleep(1.0)  # the action polls every 0.3 s: three chances to proceed wrongly
    assert not task.done() and [w.key for w in store.waits(run_id)] == ["approve"]
    assert [r.key for r in store.step_records(run_id) if r.status is StepStatus.SUCCEEDED] == ["first"]
    rc, _, err = await cli(world, capsys, "runbook", "confirm", "approve", who="carol")
    assert rc == 0, err
    run = await asyncio.wait_for(task, 20)
    assert run.phase.value == "succeeded"
    out = next(r.output for r in store.step_records(run_id) if r.key == "approve" and r.status.value == "succeeded")
    assert isinstance(out, dict) and out["confirmed_by"] == ["bob", "carol"] and out["evidence"] == {"decision": "K-1"}
    entries = store.audit_records()
    assert not audit.verify(entries)
    actions = [(e.body["actor"], e.body["action"], e.body["subject"]) for e in entries]
    assert ("alice", "run.requested", "gate") in actions
    assert ("bob", "step.confirm", "approve") in actions and ("carol", "step.confirm", "approve") in actions
    assert ("engine", "step.succeeded", "third") in actions and ("engine", "run.succeeded", "gate") in actions


async def test_step_mode_waits_for_next_and_skip_and_abort(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = await start(world, capsys, "--step")
    store = world.store()
    task = executor(world, run_id)
    await wait_for(lambda: [w for w in store.waits(run_id) if w.key == "first" and w.kind == "next"],
                   what="step mode holds the first step")
    assert store.step_records(run_id) == []  # nothing ran before `next`
    rc, doc, err = await cli(world, capsys, "runbook", "next", "--json", who="dave")
    assert rc == 0 and doc["released"] == ["first"], err
    await wait_for(lambda: [w for w in store.waits(run_id) if w.key == "approve"], what="the manual step")
    rc, _, err = await cli(world, capsys, "runbook", "next", who="dave")
    assert rc == 2 and "approve waits for a confirmation" in err  # next never confirms a manual step
    rc, _, err = await cli(world, capsys, "runbook", "skip", "approve", "--reason", "decided by phone", who="bob")
    assert rc == 0, err
    await wait_for(lambda: [w for w in store.waits(run_id) if w.key == "second"], what="second waits for next")
    rc, _, err = await cli(world, capsys, "runbook", "skip", "second", "--reason", "not needed", who="carol")
    assert rc == 0, err
    await wait_for(lambda: [w for w in store.waits(run_id) if w.key == "third"], what="third waits for next")
    rc, _, err = await cli(world, capsys, "runbook", "abort", "--reason", "drill over", who="bob")
    assert rc == 0, err
    run = await asyncio.wait_for(task, 20)
    assert run.phase.value == "cancelled" and "drill over" in str(run.error)
    statuses = {r.key: r.status.value for r in store.step_records(run_id)}
    assert statuses == {"first": "succeeded", "approve": "succeeded", "second": "skipped", "third": "skipped"}
    assert [e.body["action"] for e in store.audit_records() if e.body["actor"] != "engine"] == [
        "run.requested", "step.next", "step.skip", "step.skip", "run.abort"]


async def test_break_glass_lifts_exactly_the_named_rule(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    store = world.store()
    store.set_state("last_failover_at", datetime.now(UTC).isoformat())  # within the cool-down
    stale = ["backup: newest backup b-1 is 500s old (RPO 900s)"]
    world.report_ready(ready=False, reasons=stale)
    base = ("runbook", "start", "gate", "--to", "stb", "--detach", "--json")
    rc, _, err = await cli(world, capsys, *base, who="alice")
    assert rc == 1 and "cooldown:" in err and "stale-backup:" in err and store.list_runs() == []
    rc, _, err = await cli(world, capsys, *base, "--break-glass", "cooldown", "--reason", "K-7", who="alice")
    assert rc == 1 and "stale-backup:" in err and "cooldown:" not in err  # one rule lifted, the other blocks
    rc, _, err = await cli(world, capsys, *base, "--break-glass", "no-quorum", "--reason", "K-7", who="alice")
    assert rc == 2 and "does not block" in err
    rc, _, err = await cli(world, capsys, *base, "--break-glass", "cooldown", "--reason", "K-7", who="bob")
    assert rc == 2 and "lacks role 'break-glass'" in err
    assert store.list_runs() == [] and world.hooks == []
    world.report_ready()  # a fresh backup: only the cool-down blocks now
    rc, doc, err = await cli(world, capsys, *base, "--break-glass", "cooldown", "--reason", "Krisenstab K-7",
                             who="alice")
    assert rc == 0, err
    assert [r["rule"] for r in doc["overridden"]] == ["cooldown"]
    run = store.get_run(str(doc["run"]))
    assert run is not None and run.params["allow_stale"] is False  # stale-backup was not overridden
    rc, view, _ = await cli(world, capsys, "runbook", "status", "--json")
    assert [(g["rule"], g["by"], g["reason"]) for g in view["break_glass"]] == [("cooldown", "alice", "Krisenstab K-7")]
    rc, status, _ = await cli(world, capsys, "status", "--json")
    assert rc == 0 and [g["rule"] for g in status["break_glass"]] == ["cooldown"]
    glass = [e.body for e in store.audit_records() if e.body["action"] == "break-glass"]
    assert len(glass) == 1 and glass[0]["actor"] == "alice" and glass[0]["subject"] == "cooldown"
    assert [(h["event"], h["rule"], h["by"]) for h in world.hooks] == [("break-glass", "cooldown", "alice")]


async def test_approve_needs_two_operators_other_than_the_requester(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    from failover.playbook import engine, loader
    from failover.runbook import state

    store = world.store()
    playbook = loader.load_playbook(world.root / "playbooks" / "gate.yaml")
    run_id = await engine.Engine(store=store, services=None).start(
        playbook, params={"from": "act", "to": "stb"}, wait_for_approval=True)
    state.save_meta(store, run_id, state.RunMeta(requester="bob"))
    rc, _, err = await cli(world, capsys, "approve", run_id)
    assert rc == 2 and "--as NAME" in err  # policy.approvers 2: an anonymous approval is refused
    rc, _, err = await cli(world, capsys, "approve", run_id, who="bob")
    assert rc == 2 and "requested run" in err
    rc, _, err = await cli(world, capsys, "approve", run_id, who="alice")
    assert rc == 2 and "lacks role 'approver'" in err
    rc, text, err = await cli(world, capsys, "approve", run_id, who="carol")
    assert rc == 0 and "1 of 2" in text, err
    rc, _, err = await cli(world, capsys, "approve", run_id, who="carol")
    assert rc == 2 and "already approved" in err
    assert store.get_run(run_id).phase.value == "waiting_approval"  # type: ignore[union-attr]
    rc, _, err = await cli(world, capsys, "approve", run_id, who="carol", secret="wrong")
    assert rc == 2 and "wrong secret" in err and "wrong" not in err.replace("wrong secret", "")
    rc, text, err = await cli(world, capsys, "approve", run_id, who="dave", secret="dave-secret-4")
    assert rc == 2 and "lacks role 'approver'" in err  # the hashed secret was accepted
    rc, text, err = await cli(world, capsys, "approve", run_id, who="alice")
    assert rc == 2 and "lacks role" in err
    run = store.get_run(run_id)
    assert run is not None and run.phase.value == "waiting_approval" and run.approved_by is None


async def test_without_a_daemon_the_start_command_executes_the_run_itself(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.report_ready()
    store = world.store()
    starting = asyncio.create_task(cli(world, capsys, "runbook", "start", "gate", "--to", "stb", "--json",
                                       who="alice"))
    await wait_for(lambda: store.list_runs() and store.waits(store.list_runs()[0].id), what="the run waiting")
    run_id = store.list_runs()[0].id
    assert str(store.lease_holder()).startswith("cli:alice")  # this command holds the lease while it runs
    for who in ("bob", "carol"):
        assert (await asyncio.to_thread(service_confirm, world, run_id, who)) == 0
    rc, doc, err = await asyncio.wait_for(starting, 30)
    assert rc == 0 and doc["phase"] == "succeeded" and doc["requester"] == "alice", err
    assert store.lease_holder() is None


def service_confirm(world: World, run_id: str, who: str) -> int:
    from failover.runbook import operators, service

    actor = operators.Actor(name=who, roles=frozenset({"krisenstab"}), authenticated=True)
    service.confirm(store=world.store(), actor=actor, run_id=run_id, key="approve", evidence={"decision": "K-3"})
    return 0

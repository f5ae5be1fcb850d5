"""Failover, then failback by the book, in the lab — one lab start for the whole story:

the active site fails and the daemon fails over; the old site is healed and unfenced; an operator
starts the ``failback`` playbook; its Krisenstab release waits for four eyes — across a ``kill -9``
of the daemon — and refuses the requester and a second signature of the same operator; then the
workplace returns to the original site with every record users wrote (counted by the workload
generator) and a measured RTO, and the site it left is a standby that receives replicas again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from failover import daemon as daemon_mod
from failover.core import tasks
from failover.lab import generator as gen_mod
from failover.store import StepStatus, sqlite
from failover.velero import bucket
from tests.e2e.conftest import Lab, make_config, wait_for

pytestmark = pytest.mark.timeout(1500)  # generous: at a load of 40 on 2 cores the lab is ten times slower

ORIGINAL, STANDBY = "ionos-de-fra", "stackit-eu01"
SECRETS = {"alice": "lab-alice-1", "bob": "lab-bob-2", "carol": "lab-carol-3"}


def lighter(path: Path) -> Path:
    """The e2e lab config with half the probe traffic: this story needs no fast detection."""
    data = yaml.safe_load(path.read_text())
    data["health"]["interval"] = 2.0
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def env(lab: Lab, who: str | None = None) -> dict[str, str]:
    extra = {f"FAILOVER_SECRET_{n.upper()}": s for n, s in SECRETS.items()}
    if who:
        extra["FAILOVER_OPERATOR_SECRET"] = SECRETS[who]
    return lab.env(FAILOVER_NODE="failback-node", **extra)


def cli(lab: Lab, *words: str, who: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "failover.cli", "--config", str(lab.config), *words,
                           *(["--as", who] if who else [])], capture_output=True, text=True, env=env(lab, who),
                          timeout=120, check=False)


DAEMONS: list[subprocess.Popen[bytes]] = []  #: every daemon started; the lab fixture stops those still alive


def start_daemon(lab: Lab, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "failover.cli", "--config", str(lab.config), "daemon"],
                                env=env(lab), stdout=out, stderr=out)
    DAEMONS.append(proc)
    return proc


def store_of(lab: Lab) -> sqlite.SqliteStore:
    return sqlite.SqliteStore(lab.state / "failover.db")


def ready(lab: Lab, site: str) -> bool:
    doc = store_of(lab).get_state("status")
    return isinstance(doc, dict) and bool(doc["sites"].get(site, {}).get("ready"))


def last_run(lab: Lab, playbook: str) -> Any:
    runs = [r for r in store_of(lab).list_runs(limit=10) if r.playbook == playbook]
    return runs[0] if runs and runs[0].phase.terminal else None


async def records(lab: Lab, site: str) -> set[str]:
    control = str(lab.runtime().lab["control"])  # type: ignore[index]
    async with httpx.AsyncClient(timeout=5) as client:
        r = await client.get(f"{control}/sites/{site}/records")
        r.raise_for_status()
        return set(r.json()["ids"])


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """The lab, stopped in teardown (which runs even when the test times out)."""
    lab = Lab(config=lighter(make_config(tmp_path, rpo=900)), state=tmp_path / "state")
    up = cli(lab, "lab", "up", "--json")
    assert up.returncode == 0, up.stderr[-2000:]
    yield lab
    for proc in DAEMONS:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    cli(lab, "lab", "down")


async def test_failover_then_failback_by_the_book(lab: Lab, tmp_path: Path) -> None:
    log = tmp_path / "daemon.log"
    daemon = start_daemon(lab, log)
    gen_task = None
    try:
        await wait_for(lambda: ready(lab, STANDBY), timeout=180, what="a ready standby")
        assert cli(lab, "lab", "break", ORIGINAL, "--mode", "down").returncode == 0
        failover = await wait_for(lambda: last_run(lab, "failover"), timeout=240, what="the failover")
        assert failover.phase.value == "succeeded"
        assert cli(lab, "lab", "heal", ORIGINAL).returncode == 0
        assert cli(lab, "unfence", ORIGINAL, "--yes").returncode == 0
        gen = gen_mod.WorkloadGenerator.for_runtime(lab.runtime(), state_dir=tmp_path, rate=2.0)
        gen_task = tasks.create_guarded_task(gen.run(), name="users writing")
        await wait_for(lambda: ready(lab, ORIGINAL) and len(gen.acked) >= 5, timeout=180,
                       what=f"{ORIGINAL} ready again as a standby, users writing on {STANDBY}")

        proc = cli(lab, "runbook", "start", "failback", "--to", ORIGINAL, "--detach", "--json", who="alice")
        assert proc.returncode == 0, proc.stderr[-2000:]
        store = store_of(lab)
        run_id = str(store.list_runs(limit=1)[0].id)
        await wait_for(lambda: [w for w in store.waits(run_id) if w.key == "release-failback"], timeout=90,
                       what="the Krisenstab release to wait")
        daemon.send_signal(signal.SIGKILL)  # the daemon dies while people decide
        assert daemon.wait(10) == -signal.SIGKILL
        daemon = start_daemon(lab, log)

        def waits_again() -> bool:
            recs = [r.status for r in store.step_records(run_id) if r.key == "release-failback"]
            return recs == [StepStatus.INTERRUPTED, StepStatus.RUNNING]

        await wait_for(waits_again, timeout=90, what="the restarted daemon waiting on the same step")
        refused = cli(lab, "runbook", "confirm", "release-failback", "--evidence", "decision=K-2", who="alice")
        assert refused.returncode == 2 and "requested run" in refused.stderr
        assert cli(lab, "runbook", "confirm", "release-failback", "--evidence", "decision=K-2",
                   who="bob").returncode == 0
        twice = cli(lab, "runbook", "confirm", "release-failback", who="bob")
        assert twice.returncode == 2 and "already confirmed" in twice.stderr
        assert store.get_run(run_id).phase.value == "running"  # type: ignore[union-attr]
        assert cli(lab, "runbook", "confirm", "release-failback", who="carol").returncode == 0

        run = await wait_for(lambda: last_run(lab, "failback"), timeout=1200, what="the failback")
        acked_at_switch = len(gen.acked)
        await wait_for(lambda: len(gen.acked) >= acked_at_switch + 5, timeout=90, what="users writing again")
        gen.stop()
        await tasks.cancel_and_wait(gen_task)
        doc = daemon_mod.run_document(store, run_id)
        assert run.phase.value == "succeeded", (doc["error"], log.read_text()[-3000:])
        held = await records(lab, ORIGINAL)
        lost = sorted(set(gen.acked) - held)
        print(f"\nfailback: RTO {doc['rto_s']}s (quiesce -> verified), records written {len(gen.acked)}, "
              f"lost {len(lost)}; run took {(run.finished_at - run.started_at).total_seconds():.1f}s")
        assert lost == [] and len(gen.acked) >= 10
        assert doc["to"] == ORIGINAL and doc["rto_s"] is not None and doc["rto_s"] > 0
        roles = daemon_mod.roles_of(store, lab.runtime().config)
        assert daemon_mod.active_of(store, lab.runtime().config) == ORIGINAL
        assert roles[ORIGINAL] == "active" and roles[STANDBY] == "standby"
        dst = lab.runtime().sites[STANDBY].storage
        assert dst is not None

        async def replicated_after_failback() -> bool:
            newest = await bucket.newest_complete(dst)
            done = run.finished_at
            return newest is not None and newest.completion_timestamp is not None and \
                isinstance(done, datetime) and newest.completion_timestamp > done

        await wait_for(replicated_after_failback, timeout=120, what=f"a new {ORIGINAL} backup on {STANDBY}")
        check = cli(lab, "audit", "verify", "--json")
        assert check.returncode == 0, check.stdout[-1000:]
        shown = cli(lab, "audit", "show", "--run", run_id).stdout
        assert "bob: step.confirm" in shown and "carol: step.confirm" in shown and "alice: run.requested" in shown
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- daemon log (tail) ---\n{log.read_text()[-4000:]}") from exc
    finally:
        if gen_task is not None:
            await tasks.cancel_and_wait(gen_task)
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(15)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        os.environ.pop("FAILOVER_OPERATOR_SECRET", None)

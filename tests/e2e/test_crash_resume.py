"""kill -9 at every step boundary of a failover run: the restarted daemon completes it exactly once."""

from __future__ import annotations

import asyncio
import collections
import subprocess
import sys
import time

import pytest

from failover import daemon as daemon_mod
from failover.config import loader
from failover.kube import KubeClient
from failover.lab.kube import types as kt
from failover.store import sqlite
from tests.e2e.conftest import Lab, wait_for
from tests.e2e.test_failover_lab import ACTIVE, assert_served_by

pytestmark = pytest.mark.timeout(480)  # a lab, a failover and its checks


def start_daemon(lab: Lab) -> subprocess.Popen[bytes]:
    env = lab.env(FAILOVER_CRASH_AFTER_STEPS="*", FAILOVER_NODE="crash-test-node")
    return subprocess.Popen([sys.executable, "-m", "failover.cli", "--config", str(lab.config), "daemon"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def store_of(lab: Lab) -> sqlite.SqliteStore:
    return daemon_mod.open_store(lab.runtime())


async def test_kill_9_at_each_step_boundary_completes_the_run_exactly_once(lab: Lab) -> None:
    proc = start_daemon(lab)
    kills = 0
    try:
        def standby_ready() -> bool:
            doc = store_of(lab).get_state("status")
            return isinstance(doc, dict) and any(s["ready"] for s in doc["sites"].values())

        await wait_for(standby_ready, timeout=60, what="a ready standby seen by the daemon")
        lab.cli("lab", "break", ACTIVE, "--mode", "down")
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            runs = store_of(lab).list_runs(limit=1)
            if runs and str(runs[0].phase) in daemon_mod.TERMINAL:
                break
            if proc.poll() is not None:
                assert proc.returncode == -9, f"daemon exited with {proc.returncode}, not by the chaos hook"
                kills += 1
                proc = start_daemon(lab)
            await asyncio.sleep(0.1)
    finally:
        proc.kill()
        proc.wait()
    store = store_of(lab)
    run = store.list_runs(limit=5)
    assert len(run) == 1, "a crash must never start a second run"
    doc = daemon_mod.run_document(store, str(run[0].id))
    assert doc["phase"] == "succeeded", doc
    succeeded: collections.Counter[str] = collections.Counter(s["key"] for s in doc["steps"]
                                                              if s["status"] == "succeeded")
    assert succeeded and all(n == 1 for n in succeeded.values()), succeeded
    assert kills >= len(succeeded) - 1, (kills, len(succeeded))
    rt = lab.runtime()
    kube = KubeClient(site=doc["to"], kubeconfig=rt.sites[doc["to"]].kubeconfig)
    restores = await kube.list(kt.VELERO_RESTORES, "velero")
    await kube.aclose()
    per_group = collections.Counter(r["metadata"]["labels"]["failover.io/group"] for r in restores)
    assert per_group and all(n == 1 for n in per_group.values()), per_group
    await assert_served_by(lab, doc["to"])
    assert daemon_mod.active_of(store, loader.load(lab.config).config) == doc["to"]

"""A daemon whose store and probes raise unexpected exceptions keeps running: the cycle's sentence
says "cycle failed: …; holding", the dying watchers are restarted and counted, and nothing fails
over. The fault is injected into a real SQLite store (no lab needed: the sites refuse connections)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from failover import daemon as daemon_mod
from failover.config import loader, runtime
from failover.core import tasks
from failover.store import JSON, sqlite

REPO = Path(__file__).resolve().parents[2]


class FaultyStore(sqlite.SqliteStore):
    """Reading the roles (watchers) or the pause flag (cycle) raises while ``broken`` is set."""

    broken = True

    def get_state(self, key: str) -> JSON:
        if self.broken and key in ("roles", "paused"):
            raise RuntimeError("injected fault in the store")
        return super().get_state(key)


def config(tmp_path: Path) -> Path:
    (tmp_path / "workplaces").mkdir()
    (tmp_path / "workplaces" / "opendesk.yaml").write_text((REPO / "config/workplaces/opendesk.yaml").read_text())
    path = tmp_path / "c.yaml"
    path.write_text("""\
version: 1
workplace: {zone: ckki.test.}
providers: {dns: {kind: powerdns}}
dns: {provider: dns}
health: {interval: 0.2, timeout: 0.5, fail_after: 2, recover_after: 1}
sites:
  - {name: a, provider: dns, region: r1, role: active, kube: {api: "http://127.0.0.1:9"}}
  - {name: b, provider: dns, region: r2, kube: {api: "http://127.0.0.1:9"}}
""")
    return path


async def test_a_cycle_that_raises_is_held_counted_and_the_watchers_restarted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("FAILOVER_STATE_DIR", str(tmp_path / "state"))
    rt = runtime.resolve(loader.load(config(tmp_path)))
    store = FaultyStore(tmp_path / "faulty.db")
    d = daemon_mod.Daemon(rt, store=store, holder="fault-test")
    d.supervisor.base_delay = 0.05
    caplog.set_level(logging.INFO, logger="failover.daemon")
    task = tasks.create_guarded_task(d.run(), name="daemon under test", eternal=True)
    try:
        async def until(predicate: object) -> None:
            while not predicate():  # type: ignore[operator]
                assert not task.done(), "the daemon ended"
                await asyncio.sleep(0.05)

        await asyncio.wait_for(until(lambda: d.cycle_failures >= 3 and all(
            t["restarts"] >= 2 for n, t in d.supervisor.snapshot().items() if n.startswith("watcher"))), timeout=60)
        watcher = d.supervisor.snapshot()["watcher of a"]
        assert watcher["last_error"] == "RuntimeError: injected fault in the store"
        assert any(r.getMessage() == "cycle failed: RuntimeError: injected fault in the store; holding"
                   for r in caplog.records)
        FaultyStore.broken = False  # the fault goes away: the next cycles run normally
        failures = d.cycle_failures
        await asyncio.wait_for(until(lambda: isinstance(store.get_state("status"), dict)), timeout=60)
        doc = store.get_state("status")
        assert isinstance(doc, dict) and doc["daemon"]["tasks"]["watcher of a"]["restarts"] >= 2
        assert doc["daemon"]["cycle_failures"] >= failures and not task.done()
        assert store.list_runs() == []  # no failover on stale or missing data
    finally:
        FaultyStore.broken = True
        await tasks.cancel_and_wait(task, timeout=10)


def test_the_playbook_is_loaded_and_validated_at_start_not_mid_failover(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from failover import cli

    monkeypatch.setenv("FAILOVER_STATE_DIR", str(tmp_path / "state"))
    path = config(tmp_path)
    path.write_text(path.read_text() + "policy: {playbook: no-such-playbook}\n")
    assert cli.main(["--config", str(path), "daemon", "--name", "n1"]) == 2
    assert "no-such-playbook" in capsys.readouterr().err

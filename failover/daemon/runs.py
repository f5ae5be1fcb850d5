"""The daemon's runs: start a failover a decision asks for, execute or resume the current run (at
most one at a time, while the controller keeps renewing the lease), cancel it when the lease is lost
(the journal lets the next holder resume it), and an operator's run from the CLI."""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from failover import controller
from failover.core import tasks
from failover.daemon.base import CycleResult, DaemonBase
from failover.daemon.state import playbook_dirs
from failover.playbook import loader as playbook_loader
from failover.store.queries import current_run

logger = logging.getLogger("failover.daemon")


class Runs(DaemonBase):
    def load_playbook(self) -> Any:
        """The policy's playbook, loaded and validated (PlaybookError: bad input, before anything runs)."""
        return playbook_loader.load_playbook_by_name(self.cfg.policy.playbook, playbook_dirs(self.runtime))

    async def _start_failover(self, decision: controller.Decision, snap: controller.Snapshot) -> CycleResult:
        assert decision.target is not None
        refused = controller.refusals(snap, decision.target, "failover", self.policy)
        if refused:  # decide() applies the same rule; this guard keeps it true if decide() changes
            sentence = f"{decision.sentence}: refused: {'; '.join(refused)}"
            return CycleResult(sentence, dataclasses.replace(decision, verdict=controller.Verdict.NO_TARGET))
        self.store.bump_epoch()
        playbook = self.playbook or self.load_playbook()
        params: dict[str, Any] = {
            "from": decision.source, "to": decision.target,
            "outage_started_at": (decision.outage_started_at or snap.now).isoformat(),
            "detected_at": snap.now.isoformat(), "backup_schedule": self.backup_schedule(),
        }
        wait = decision.verdict is controller.Verdict.REQUEST_APPROVAL
        run_id = await self.engine.start(playbook, params=params, wait_for_approval=wait, kind="failover")
        if wait:
            sentence = f"{decision.sentence}: run {run_id} (`failover approve {run_id}`)"
        else:
            sentence = f"{decision.sentence} run {run_id}"
            await self._ensure_run_task()
        return CycleResult(sentence, decision, run_id)

    def backup_schedule(self) -> str:
        return self.cfg.lab.backup_interval if self.cfg.lab is not None else "@every 10m"

    async def run_playbook(self, name: str, *, source: str, target: str, backup: str = "",
                           allow_stale: bool = False, outage_started_at: datetime | None = None,
                           detected_at: datetime | None = None, override: str = "") -> Any:
        """Start and execute a playbook run now (the caller holds the lease)."""
        path = Path(name)
        playbook = playbook_loader.load_playbook(path) if path.suffix in (".yaml", ".yml") and path.exists() \
            else playbook_loader.load_playbook_by_name(name, playbook_dirs(self.runtime))
        now = self.services.clock()
        offered: dict[str, Any] = {
            "from": source, "to": target, "backup": backup, "allow_stale": allow_stale,
            "outage_started_at": (outage_started_at or now).isoformat(),
            "detected_at": (detected_at or now).isoformat(), "backup_schedule": self.backup_schedule(),
            "override": override,
        }
        params = {k: v for k, v in offered.items() if k in playbook.params}
        self.store.bump_epoch()
        run_id = await self.engine.start(playbook, params=params, kind=playbook.name)
        return await self.engine.execute(run_id)

    async def _ensure_run_task(self) -> None:
        """Execute (or resume) the current run if it may run and nothing executes it yet."""
        if self._run_task is not None and not self._run_task.done():
            return
        run = await self._io(current_run, self.store)
        if run is None or (str(run.phase) == "waiting_approval" and not getattr(run, "approved_by", None)):
            return
        self._run_id = str(run.id)
        self._run_task = tasks.create_guarded_task(self.engine.execute(self._run_id), name=f"run {run.id}")

    async def _cancel_run(self, why: str) -> None:
        if self._run_task is not None and not self._run_task.done():
            logger.warning("cancelling run %s: %s", self._run_id, why)
            await tasks.cancel_and_wait(self._run_task)

"""The failover daemon: watch, replicate, decide, act — one cycle at a time, safe to kill at any point.

Loops (each a named, guarded task):

* **watchers** — one per site (``health/watcher.py``), probing on the configured interval;
* **replicator** — copies new complete backups from the active site to every standby;
* **controller** — every interval: renew the lease, build one immutable snapshot, ``decide``,
  act, and log the decision's sentence once when it changes (Patroni's ``run_cycle``);
* **run** — at most one playbook run at a time, executed by the engine while the controller keeps
  renewing the lease; losing the lease cancels it (the journal lets the next holder resume it).

Nothing here keeps state that matters only in memory: roles, the active site, the fencing epoch,
runs and their journals live in the store, so after ``kill -9`` a restarted daemon resumes the
unfinished run and completes it exactly once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from failover import controller, replicate, s3
from failover.actions import fence as fence_actions
from failover.config import models
from failover.config.runtime import Runtime
from failover.core import tasks
from failover.health.model import SiteView
from failover.health.watcher import Watcher
from failover.playbook import engine as engine_mod
from failover.playbook import loader as playbook_loader
from failover.playbook.observers import RunObserver
from failover.services import Services, utcnow
from failover.store import sqlite

logger = logging.getLogger("failover.daemon")

TERMINAL = {"succeeded", "failed", "cancelled"}


def playbook_dirs(runtime: Runtime) -> list[Path]:
    """Playbooks beside the config's directory first, then the ones shipped with the product."""
    repo = Path(__file__).resolve().parents[1] / "playbooks"
    return [runtime.loaded.path.parent.parent / "playbooks", repo]


def open_store(runtime: Runtime) -> sqlite.SqliteStore:
    runtime.state_dir.mkdir(parents=True, exist_ok=True)
    return sqlite.SqliteStore(runtime.state_dir / "failover.db")


def roles_of(store: Any, cfg: models.Config) -> dict[str, str]:
    roles = {s.name: s.role.value for s in cfg.sites}
    stored = store.get_state("roles")
    if isinstance(stored, dict):
        roles.update({str(k): str(v) for k, v in stored.items()})
    return roles


def active_of(store: Any, cfg: models.Config) -> str:
    stored = store.get_state("active")
    return str(stored) if stored else cfg.active_site().name


def current_run(store: Any) -> Any | None:
    """The newest run that is not terminal (running, pending or waiting for approval)."""
    for run in store.list_runs(limit=20):
        if str(run.phase) not in TERMINAL:
            return run
    return None


@dataclass
class CycleResult:
    sentence: str
    decision: controller.Decision
    run_id: str | None = None


class Daemon:
    def __init__(self, runtime: Runtime, *, store: Any | None = None, observers: list[RunObserver] | None = None,
                 holder: str | None = None) -> None:
        self.runtime = runtime
        self.cfg = runtime.config
        self.store = store or open_store(runtime)
        self.services = Services.open(runtime, self.store)
        self.watcher = Watcher(self.services, roles=lambda: roles_of(self.store, self.cfg))
        self.policy = controller.PolicyView.from_config(self.cfg)
        # the lease holder is the node's name, not the process: a daemon restarted after a crash
        # reclaims its own lease at once instead of waiting for it to expire
        self.holder = holder or os.environ.get("FAILOVER_NODE") or socket.gethostname()
        self.engine = engine_mod.Engine(store=self.store, services=self.services, observers=observers or [],
                                        holder=self.holder)
        self.lease_ttl = max(10.0, self.cfg.health.interval * 5)
        self._run_task: asyncio.Task[Any] | None = None
        self._run_id: str | None = None
        self._last_sentence = ""
        self._last_logged = 0.0
        self.heartbeat_s = 60.0
        self._tasks: list[asyncio.Task[Any]] = []
        self.lags: dict[str, replicate.StandbyLag] = {}
        self.replicator = replicate.Replicator(clock=self.services.clock)

    # --- snapshot and decision ---------------------------------------------------------------------
    def snapshot(self) -> controller.Snapshot:
        views = self.watcher.views()
        for name, lag in self.lags.items():
            if name in views:
                views[name] = _with_lag(views[name], lag.lag_s)
        run = current_run(self.store)
        summary = None
        if run is not None:
            summary = controller.RunSummary(id=str(run.id), playbook=str(run.playbook), phase=str(run.phase),
                                            step=self._current_step(str(run.id)))
        last = self.store.get_state("last_failover_at")
        return controller.Snapshot(
            now=self.services.clock(), active=active_of(self.store, self.cfg), sites=views,
            paused=bool(self.store.get_state("paused")), run=summary,
            last_failover_at=datetime.fromisoformat(last) if isinstance(last, str) else None,
        )

    def _current_step(self, run_id: str) -> str | None:
        steps = self.store.step_records(run_id)
        running = [s for s in steps if str(s.status) == "running"]
        return str(running[-1].key) if running else None

    async def cycle(self) -> CycleResult:
        """One controller cycle; returns the sentence (logged once when it changes)."""
        if not self.store.renew_lease(self.holder, self.lease_ttl) and \
                not self.store.acquire_lease(self.holder, self.lease_ttl):
            await self._cancel_run("lost the lease")
            decision = controller.Decision(controller.Verdict.HOLD, "another daemon holds the lease; standing by",
                                           source=active_of(self.store, self.cfg))
            return self._log(CycleResult(decision.sentence, decision))
        self._ensure_run_task()
        snap = self.snapshot()
        decision = controller.decide(snap, self.policy)
        result = CycleResult(decision.sentence, decision)
        if decision.acts and decision.target is not None:
            result = await self._start_failover(decision, snap)
        self.store.set_state("status", self.status_document(snap))
        return self._log(result)

    def _log(self, result: CycleResult) -> CycleResult:
        """Log and journal the decision once: when what it concludes changes, or as a heartbeat."""
        d = result.decision
        key = f"{d.verdict.value}|{d.target}|{d.source}|{result.run_id}|{sorted(site for site, _ in d.skipped)}"
        now = asyncio.get_running_loop().time()
        if key != self._last_sentence or now - self._last_logged >= self.heartbeat_s:
            self._last_sentence, self._last_logged = key, now
            logger.info("%s", result.sentence)
            self.store.append_decision(result.sentence, {"verdict": result.decision.verdict.value,
                                                         "target": result.decision.target,
                                                         "run": result.run_id})
        return result

    async def _start_failover(self, decision: controller.Decision, snap: controller.Snapshot) -> CycleResult:
        self.store.bump_epoch()
        playbook = playbook_loader.load_playbook_by_name(self.cfg.policy.playbook, playbook_dirs(self.runtime))
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
            self._ensure_run_task()
        return CycleResult(sentence, decision, run_id)

    # --- runs -----------------------------------------------------------------------------------------
    def backup_schedule(self) -> str:
        return self.cfg.lab.backup_interval if self.cfg.lab is not None else "@every 10m"

    async def run_playbook(self, name: str, *, source: str, target: str, backup: str = "",
                           allow_stale: bool = False, outage_started_at: datetime | None = None,
                           detected_at: datetime | None = None) -> Any:
        """Start and execute a playbook run now (the caller holds the lease)."""
        path = Path(name)
        playbook = playbook_loader.load_playbook(path) if path.suffix in (".yaml", ".yml") and path.exists() \
            else playbook_loader.load_playbook_by_name(name, playbook_dirs(self.runtime))
        now = self.services.clock()
        offered: dict[str, Any] = {
            "from": source, "to": target, "backup": backup, "allow_stale": allow_stale,
            "outage_started_at": (outage_started_at or now).isoformat(),
            "detected_at": (detected_at or now).isoformat(), "backup_schedule": self.backup_schedule(),
        }
        params = {k: v for k, v in offered.items() if k in playbook.params}
        self.store.bump_epoch()
        run_id = await self.engine.start(playbook, params=params, kind=playbook.name)
        return await self.engine.execute(run_id)

    def _ensure_run_task(self) -> None:
        """Execute (or resume) the current run if it may run and nothing executes it yet."""
        if self._run_task is not None and not self._run_task.done():
            return
        run = current_run(self.store)
        if run is None or (str(run.phase) == "waiting_approval" and not getattr(run, "approved_by", None)):
            return
        self._run_id = str(run.id)
        self._run_task = tasks.create_guarded_task(self.engine.execute(self._run_id), name=f"run {run.id}")

    async def _cancel_run(self, why: str) -> None:
        if self._run_task is not None and not self._run_task.done():
            logger.warning("cancelling run %s: %s", self._run_id, why)
            await tasks.cancel_and_wait(self._run_task)

    # --- background loops -----------------------------------------------------------------------------
    async def replicate_once(self) -> None:
        """One replication pass from the active site to every standby (never raises)."""
        roles = roles_of(self.store, self.cfg)
        active = self.runtime.sites.get(active_of(self.store, self.cfg))
        if active is None or active.storage is None:
            return
        source = active.storage

        async def one(name: str, dst: s3.S3Location) -> None:
            lag = await self.replicator.replicate(source, dst, site=name)
            self.lags[name] = lag
            if lag.copied:
                logger.debug("replicated %d objects to %s (newest %s)", lag.copied, name, lag.newest_replicated)

        # standbys in parallel: one standby's slow or missing storage never delays the others
        await asyncio.gather(*(one(name, ep.storage) for name, ep in self.runtime.sites.items()
                               if roles.get(name) == models.Role.STANDBY.value and ep.storage is not None))

    async def _replicator(self) -> None:
        interval = max(1.0, self.cfg.health.interval * 2)
        while True:
            await self.replicate_once()
            await asyncio.sleep(interval)

    async def _refencer(self) -> None:
        """A fenced site that comes back is fenced again (idempotent), so it never serves."""
        while True:
            await asyncio.sleep(max(2.0, self.cfg.health.interval * 3))
            for name, role in roles_of(self.store, self.cfg).items():
                kube = self.services.kube.get(name)
                if role != models.Role.FENCED.value or kube is None:
                    continue
                try:
                    async with asyncio.timeout(5):
                        scaled = await fence_actions.scale_down(
                            kube, list(self.runtime.profile.components), self.runtime.sites[name].site.velero_namespace)
                except (TimeoutError, Exception):  # unreachable: try again next time
                    continue
                if scaled:
                    logger.debug("re-fenced %s (%d workloads at 0)", name, scaled)

    def status_document(self, snap: controller.Snapshot) -> dict[str, Any]:
        return status_document(self.runtime, snap, self.store)

    async def run(self, *, once: bool = False) -> str:
        """Run until cancelled (or one cycle with ``once``); returns the last sentence."""
        try:
            if once:
                await self.replicate_once()
                for name in self.watcher.sites:
                    await self.watcher.round(name)
                return (await self.cycle()).sentence
            self.watcher.start()
            self._tasks.append(tasks.create_guarded_task(self._replicator(), name="replicator", eternal=True))
            self._tasks.append(tasks.create_guarded_task(self._refencer(), name="re-fencer", eternal=True))
            while True:
                await self.cycle()
                # decide again at once when a check's verdict flips (not a whole interval later)
                await self.watcher.wait_changed(self.cfg.health.interval)
        finally:
            await self.close()

    async def close(self) -> None:
        await self.watcher.stop()
        await tasks.cancel_and_wait(*self._tasks)
        if self._run_task is not None:
            await tasks.cancel_and_wait(self._run_task)
        self.store.release_lease(self.holder)
        await self.services.aclose()


class CrashAfterSteps(RunObserver):
    """Chaos hook for crash tests: SIGKILL this process right after one of ``keys`` is journaled
    as succeeded (``FAILOVER_CRASH_AFTER_STEPS=fence,select-backup,...``). Off unless set."""

    def __init__(self, keys: set[str]) -> None:
        self.keys = keys

    @classmethod
    def from_env(cls) -> CrashAfterSteps | None:
        raw = os.environ.get("FAILOVER_CRASH_AFTER_STEPS", "")
        keys = {k.strip() for k in raw.split(",") if k.strip()}
        return cls(keys) if keys else None

    async def step_finished(self, run: Any, step: Any) -> None:
        key = str(step.key)
        if str(step.status) == "succeeded" and (key in self.keys or "*" in self.keys):
            logger.warning("chaos hook: killing the daemon after step %s", key)
            os.kill(os.getpid(), signal.SIGKILL)


def _with_lag(view: SiteView, lag: float | None) -> SiteView:
    return dataclasses.replace(view, replication_lag_s=lag)


def status_document(runtime: Runtime, snap: controller.Snapshot, store: Any) -> dict[str, Any]:
    """The ``status --json`` document (a contract: scripts rely on these keys)."""
    run = snap.run
    return {
        "active": snap.active,
        "paused": snap.paused,
        "updated_at": utcnow().isoformat(),
        "epoch": store.current_epoch(),
        "sites": {
            name: {
                "provider": runtime.config.site(name).provider,
                "region": runtime.config.site(name).region,
                "role": v.role, "health": v.health.value, "reasons": list(v.reasons),
                "ready": v.ready, "ready_reasons": list(v.ready_reasons),
                "replication_lag_s": v.replication_lag_s,
                "newest_backup": v.newest_backup.name if v.newest_backup else None,
                "provider_state": v.provider_state,
                "checks": {c.name: {"passing": c.passing, "detail": c.detail} for c in v.checks},
            } for name, v in snap.sites.items()
        },
        "run": None if run is None else {"id": run.id, "playbook": run.playbook, "phase": run.phase,
                                         "step": run.step},
    }


def run_document(store: Any, run_id: str) -> dict[str, Any]:
    """A run as JSON: its record, every journaled step, and the failover's measurements."""
    run = store.get_run(run_id)
    steps = store.step_records(run_id)
    summary: dict[str, Any] = {}
    for step in steps:
        if str(step.key) == "mark-active" and str(step.status) == "succeeded" and isinstance(step.output, dict):
            summary = dict(step.output)
    doc: dict[str, Any] = {
        "id": str(run.id), "playbook": run.playbook, "kind": getattr(run, "kind", run.playbook),
        "phase": str(run.phase), "params": run.params,
        "created_at": _iso(getattr(run, "created_at", None)), "started_at": _iso(getattr(run, "started_at", None)),
        "finished_at": _iso(getattr(run, "finished_at", None)), "error": getattr(run, "error", None),
        "from": summary.get("from", (run.params or {}).get("from")),
        "to": summary.get("to", (run.params or {}).get("to")),
        "backup": summary.get("backup"), "outage_started_at": summary.get("outage_started_at"),
        "detected_at": summary.get("detected_at"), "verified_at": summary.get("verified_at"),
        "rto_s": summary.get("rto_s"), "rto_from_detection_s": summary.get("rto_from_detection_s"),
        "data_loss_window_s": summary.get("data_loss_window_s"),
        "steps": [{"key": str(s.key), "status": str(s.status), "attempt": getattr(s, "attempt", 1),
                   "started_at": _iso(s.started_at), "finished_at": _iso(s.finished_at),
                   "duration_s": getattr(s, "duration", None), "error": s.error, "output": s.output}
                  for s in steps],
    }
    return doc


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, datetime) else str(value)

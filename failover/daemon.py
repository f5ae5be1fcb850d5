"""The failover daemon: watch, replicate, decide, act — one cycle at a time, safe to kill at any point.

Loops (each a named task under a :class:`~failover.core.tasks.Supervisor`, restarted with backoff
when it dies and shown in ``status --json`` as ``daemon.tasks``):

* **watchers** — one per site (``health/watcher.py``), probing on the configured interval;
* **replicator** — copies new complete backups from the active site to every standby;
* **controller** — every interval: renew the lease, build one immutable snapshot, ``decide``,
  act, and log the decision's sentence once when it changes (Patroni's ``run_cycle``); a cycle
  that raises becomes that cycle's sentence ("cycle failed: …; holding"), is counted, and the
  next cycle runs;
* **run** — at most one playbook run at a time, executed by the engine while the controller keeps
  renewing the lease; losing the lease cancels it (the journal lets the next holder resume it).

Nothing here keeps state that matters only in memory: roles, the active site, the fencing epoch,
runs and their journals live in the store, so after ``kill -9`` a restarted daemon resumes the
unfinished run and completes it exactly once. With ``coordination.backend: etcd`` several instances
share that store (:mod:`failover.ha`): all observe and vote, one leads; only the leader replicates,
re-fences and runs playbooks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from failover import buckets, controller, identity, replicate, s3
from failover.actions import fence as fence_actions
from failover.api import surface as surface_mod
from failover.config import models
from failover.config.runtime import Runtime
from failover.core import errors, resources, secrets, tasks
from failover.drill import testfailover
from failover.ha import backend as ha_backend
from failover.ha import coordinator as ha_coordinator
from failover.health.model import SiteView
from failover.health.watcher import Watcher
from failover.playbook import engine as engine_mod
from failover.playbook import loader as playbook_loader
from failover.playbook.observers import RunObserver
from failover.services import Services, utcnow
from failover.store.etcd import EtcdStore

# re-exported: the CLI's read commands use them without importing the daemon
from failover.store.queries import TERMINAL as TERMINAL
from failover.store.queries import current_run as current_run
from failover.store.queries import run_document as run_document

logger = logging.getLogger("failover.daemon")
T = TypeVar("T")


def playbook_dirs(runtime: Runtime) -> list[Path]:
    """Playbooks beside the config's directory first, then the ones shipped with the product."""
    return [runtime.loaded.path.parent.parent / "playbooks", resources.playbooks_dir()]


def open_store(runtime: Runtime) -> Any:
    """The configured store: SQLite in the state directory, or etcd (``coordination``)."""
    return ha_backend.open_store(runtime)


def roles_of(store: Any, cfg: models.Config) -> dict[str, str]:
    roles = {s.name: s.role.value for s in cfg.sites}
    stored = store.get_state("roles")
    if isinstance(stored, dict):
        roles.update({str(k): str(v) for k, v in stored.items()})
    return roles


def active_of(store: Any, cfg: models.Config) -> str:
    stored = store.get_state("active")
    return str(stored) if stored else cfg.active_site().name


def failed_streak(store: Any) -> tuple[controller.FailedRun, ...]:
    """Failover runs that failed since the last succeeded one and since the last `resume` (oldest first)."""
    resumed = store.get_state("resumed_at")
    since = datetime.fromisoformat(resumed) if isinstance(resumed, str) else None
    streak: list[controller.FailedRun] = []
    for run in store.list_runs(limit=50):
        if str(run.phase) == "succeeded" or (since is not None and run.created_at < since):
            break
        if str(run.phase) == "failed" and run.finished_at is not None:
            streak.append(controller.FailedRun(id=str(run.id), target=str((run.params or {}).get("to", "")),
                                               finished_at=run.finished_at, error=str(run.error or "")))
    return tuple(reversed(streak))


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
        self._roles: dict[str, str] = {site.name: site.role.value for site in self.cfg.sites}
        self.watcher = Watcher(self.services, roles=self.roles)
        self.policy = controller.PolicyView.from_config(self.cfg)
        # one holder per process (two daemons on one state dir: one acts; etcd instances never merge);
        # a daemon restarted after a crash takes over its dead predecessor's lease at once
        # (identity.is_dead_local)
        self.holder = holder or identity.make_holder(os.environ.get("FAILOVER_NODE"))
        self.ha: ha_coordinator.Coordinator | None = None
        if isinstance(self.store, EtcdStore):
            self.ha = ha_coordinator.Coordinator(self.store, name=self.holder, cfg=self.cfg,
                                                 clock=self.services.clock,
                                                 verdict_max_age=self.watcher.stale_after)
        self.engine = engine_mod.Engine(store=self.store, services=self.services, observers=observers or [],
                                        holder=self.holder)
        self.lease_ttl = self.cfg.coordination.lease_ttl if self.ha else max(10.0, self.cfg.health.interval * 5)
        self.supervisor = tasks.Supervisor()
        self.leading = False
        self.cycle_failures = 0
        self.last_cycle_error: str | None = None
        self.playbook: Any = None
        self._status_written = float("-inf")
        self._keeper: ha_coordinator.LeaseKeeper | None = None
        self._run_task: asyncio.Task[Any] | None = None
        self._run_id: str | None = None
        self._last_sentence = ""
        self._last_logged = 0.0
        self.heartbeat_s = 60.0
        self._tasks: list[asyncio.Task[Any]] = []
        self.lags: dict[str, replicate.StandbyLag] = {}
        self.replicator = replicate.Replicator(clock=self.services.clock)
        self.surface = surface_mod.Surface(self)  # API, metrics, alerts in, notifications out
        self.bucket_replicator = buckets.BucketReplicator(self.replicator.pool, clock=self.services.clock)
        self.bucket_lags: dict[str, dict[str, buckets.BucketLag]] = {}
        self.bucket_interval = max(10.0, self.cfg.health.interval * 10)  #: app buckets: a listing per pass
        self._buckets_due: dict[str, float] = {}

    def roles(self) -> dict[str, str]:
        """The sites' roles; the last known ones while the store cannot answer (watching goes on).
        On etcd the watchers get the copy the controller cycle refreshes off the event loop (a
        network read in every probe round would stall every probe behind it)."""
        if self.ha is None:
            self._refresh_roles()
        return self._roles

    def _refresh_roles(self) -> None:
        try:
            self._roles = roles_of(self.store, self.cfg)
        except errors.TemporaryError:
            pass

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        """Call the store: in a worker thread when it is etcd (network I/O must not block the probes
        that share this event loop), directly when it is the local SQLite file."""
        if self.ha is None:
            return fn(*args)
        return await asyncio.to_thread(fn, *args)

    # --- snapshot and decision ---------------------------------------------------------------------
    def snapshot(self, votes: Any = None) -> controller.Snapshot:
        return self._snapshot(self._views(), votes)

    def _views(self) -> dict[str, SiteView]:
        """The watchers' views with replication lags and bucket readiness (in memory, no I/O)."""
        views = self.watcher.views()
        for name, lag in self.lags.items():
            if name in views:
                views[name] = _with_lag(views[name], lag.lag_s)
        for name, lags in self.bucket_lags.items():
            if name in views and views[name].ready:
                views[name] = buckets.readiness(views[name], lags, self.runtime.profile)
        return views

    def _snapshot(self, views: dict[str, SiteView], votes: Any) -> controller.Snapshot:
        """The views with firing alerts, and what the store says (its reads: off the loop on etcd)."""
        views = self.surface.adjust(views)
        run = current_run(self.store)
        summary = None
        if run is not None:
            summary = controller.RunSummary(id=str(run.id), playbook=str(run.playbook), phase=str(run.phase),
                                            step=self._current_step(str(run.id)))
        last = self.store.get_state("last_failover_at")
        return controller.Snapshot(
            now=self.services.clock(), active=active_of(self.store, self.cfg), sites=views,
            paused=bool(self.store.get_state("paused")), run=summary,
            last_failover_at=datetime.fromisoformat(last) if isinstance(last, str) else None, votes=votes,
            failed_runs=failed_streak(self.store),
        )

    def observe(self, views: dict[str, SiteView]) -> Any:
        """Publish this observer's verdicts and count everyone's (etcd). The firing alerts are part
        of every observer's verdict, as they are of a single daemon's view: by default an alert only
        makes its site degraded; with ``api.alerts_vote`` it is one failing critical component check
        in each observer's view (one vote among that observer's components), so it tips an observer
        to ``down`` only together with failing components of the observer's own, and a failover
        still needs a quorum of observers that see it so."""
        assert self.ha is not None
        return self.ha.observe(self.surface.adjust(views))

    def _take_lease(self) -> bool:
        """Acquire the lease; a holder that is a dead process on this host is released first."""
        current = self.store.lease_holder()
        if current is not None and current != self.holder and identity.is_dead_local(current):
            logger.warning("lease holder %s is a dead process on this host; taking over", current)
            self.store.release_lease(current)
        return bool(self.store.acquire_lease(self.holder, self.lease_ttl))

    def _current_step(self, run_id: str) -> str | None:
        steps = self.store.step_records(run_id)
        running = [s for s in steps if str(s.status) == "running"]
        return str(running[-1].key) if running else None

    async def cycle(self) -> CycleResult:
        """One controller cycle; returns the sentence (logged once when it changes)."""
        votes = None
        try:
            if self.ha is not None:  # network calls to etcd: off the event loop, so probes keep time
                votes = await asyncio.to_thread(self.observe, self.watcher.views())
                leading = await asyncio.to_thread(self._keep_lease)
            else:
                leading = self._keep_lease()
        except errors.TemporaryError as exc:
            return await self._coordination_unavailable(exc)
        if self.ha is not None:
            await self._io(self._refresh_roles)
        if not leading:
            self.leading = False
            await self._cancel_run("lost the lease")
            if self._keeper is not None:
                self._keeper.stop()
            if isinstance(self.store, EtcdStore):
                self.store.stand_down()  # nothing of ours acts any more: observe, unguarded
            holder, source = await self._io(lambda: (self.store.lease_holder(), active_of(self.store, self.cfg)))
            decision = controller.Decision(controller.Verdict.HOLD, f"another daemon ({holder or 'none'}) holds "
                                           "the lease; standing by", source=source)
            return await self._log(CycleResult(decision.sentence, decision))
        if not self.leading and self.ha is not None:
            logger.info("%s", await self._io(self.ha.take_office))
            self._keeper = ha_coordinator.LeaseKeeper(self.ha.store, self.holder, self.lease_ttl).start()
        self.leading = True
        await self._ensure_run_task()
        snap = await self._io(self._snapshot, self._views(), votes)
        decision = controller.decide(snap, self.policy)
        result = CycleResult(decision.sentence, decision)
        if decision.acts and decision.target is not None:
            result = await self._start_failover(decision, snap)
        now = asyncio.get_running_loop().time()
        if now - self._status_written >= max(2.0, self.cfg.health.interval):  # a few writes, not one a cycle
            tasks_now, lags = self.supervisor.snapshot(), dict(self.bucket_lags)  # taken on the loop
            await self._io(lambda: self.store.set_state("status", self.status_document(snap, tasks=tasks_now,
                                                                                      bucket_lags=lags)))
            self._status_written = now
        self.surface.after_cycle(snap, result)
        return await self._log(result)

    def _keep_lease(self) -> bool:
        return bool(self.store.renew_lease(self.holder, self.lease_ttl) or self._take_lease())

    async def _coordination_unavailable(self, exc: errors.FailoverError) -> CycleResult:
        """etcd (or the database) cannot answer: no automatic failover; watching goes on. A leader
        keeps its run only while it can still prove its lease (``holds_lease``)."""
        if isinstance(self.store, EtcdStore) and not self.store.holds_lease():
            self.leading = False
            await self._cancel_run("cannot prove the lease")
        sentence = (f"coordination unavailable ({secrets.redact(str(exc))}); no automatic failover; "
                    "watching goes on")
        decision = controller.Decision(controller.Verdict.HOLD, sentence, source=self.cfg.active_site().name)
        self.last_cycle_error = sentence
        return await self._log(CycleResult(sentence, decision), journal=False)

    async def guarded_cycle(self) -> CycleResult:
        """A cycle that cannot end the daemon: an exception is this cycle's sentence, counted."""
        try:
            return await self.cycle()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.cycle_failures += 1
            text = secrets.redact(f"{type(exc).__name__}: {exc}")
            self.last_cycle_error = text
            logger.exception("cycle failed")
            decision = controller.Decision(controller.Verdict.HOLD, f"cycle failed: {text}; holding",
                                           source=self.cfg.active_site().name)
            return await self._log(CycleResult(decision.sentence, decision), journal=False)

    async def _log(self, result: CycleResult, *, journal: bool = True) -> CycleResult:
        """Log and journal the decision once: when what it concludes changes, or as a heartbeat."""
        d = result.decision
        key = f"{d.verdict.value}|{d.target}|{d.source}|{result.run_id}|{sorted(site for site, _ in d.skipped)}"
        now = asyncio.get_running_loop().time()
        if key != self._last_sentence or now - self._last_logged >= self.heartbeat_s:
            self._last_sentence, self._last_logged = key, now
            logger.info("%s", result.sentence)
            if not journal:  # the store may be what failed: the log line is the record
                return result
            await self._io(self.store.append_decision, result.sentence,
                           {"verdict": result.decision.verdict.value, "target": result.decision.target,
                            "run": result.run_id})
        return result

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

    # --- runs -----------------------------------------------------------------------------------------
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

    # --- background loops -----------------------------------------------------------------------------
    async def replicate_once(self) -> None:
        """One replication pass from the active site to every standby (never raises)."""
        roles, active_name = await self._io(lambda: (roles_of(self.store, self.cfg), active_of(self.store, self.cfg)))
        active = self.runtime.sites.get(active_name)
        if active is None or active.storage is None:
            return
        source = active.storage

        async def one(name: str, dst: s3.S3Location) -> None:
            lag = await self.replicator.replicate(source, dst, site=name)
            self.lags[name] = lag
            if lag.copied:
                logger.debug("replicated %d objects to %s (newest %s)", lag.copied, name, lag.newest_replicated)
            now = asyncio.get_running_loop().time()
            if now < self._buckets_due.get(name, 0.0):
                return
            self._buckets_due[name] = now + self.bucket_interval
            for _, data in self.runtime.profile.buckets():  # the apps' buckets, after the backups
                self.bucket_lags.setdefault(name, {})[data.bucket] = await self.bucket_replicator.replicate(
                    buckets.location(source, active.site, data.bucket),
                    buckets.location(dst, self.runtime.sites[name].site, data.bucket),
                    site=name, name=data.bucket, delete_after=data.delete_after)

        # standbys in parallel: one standby's slow or missing storage never delays the others
        await asyncio.gather(*(one(name, ep.storage) for name, ep in self.runtime.sites.items()
                               if roles.get(name) == models.Role.STANDBY.value and ep.storage is not None))

    async def _replicator(self) -> None:
        interval = max(1.0, self.cfg.health.interval * 2)
        while True:
            if self.leading:  # replication writes to standbys: the leader's job alone
                await self.replicate_once()
            await asyncio.sleep(interval)

    async def _refencer(self) -> None:
        """A fenced site that comes back is fenced again (idempotent), so it never serves."""
        while True:
            await asyncio.sleep(max(2.0, self.cfg.health.interval * 3))
            if not self.leading:
                continue
            for name, role in (await self._io(roles_of, self.store, self.cfg)).items():
                kube = self.services.kube.get(name)
                if role != models.Role.FENCED.value or kube is None:
                    continue
                try:  # scaling every workload of the profile: bounded, but not by one probe's timeout
                    async with asyncio.timeout(max(30.0, self.cfg.health.timeout * 6)):
                        scaled = await fence_actions.scale_down(
                            kube, list(self.runtime.profile.components), self.runtime.sites[name].site.velero_namespace)
                except (TimeoutError, Exception):  # unreachable: try again next time
                    continue
                if scaled:
                    logger.debug("re-fenced %s (%d workloads at 0)", name, scaled)
                await self._io(self._confirm_fence, name)

    def _confirm_fence(self, name: str) -> None:
        """An unconfirmed fence becomes confirmed here, journaled once."""
        confirmed = self.store.get_state("fence_confirmed")
        confirmed = dict(confirmed) if isinstance(confirmed, dict) else {}
        if name not in confirmed:
            confirmed[name] = self.services.clock().isoformat()
            self.store.set_state("fence_confirmed", confirmed)
            self.store.append_decision(f"re-fencer: {name} reached; its workloads are at zero and its "
                                       "backups paused (fence confirmed)", {"site": name})

    def status_document(self, snap: controller.Snapshot, *, tasks: dict[str, Any] | None = None,
                        bucket_lags: dict[str, dict[str, buckets.BucketLag]] | None = None) -> dict[str, Any]:
        doc = status_document(self.runtime, snap, self.store)
        tasks = self.supervisor.snapshot() if tasks is None else tasks
        bucket_lags = self.bucket_lags if bucket_lags is None else bucket_lags
        doc["daemon"] = {"name": self.holder, "leading": self.leading, "tasks": tasks,
                         "cycle_failures": self.cycle_failures, "last_cycle_error": self.last_cycle_error}
        doc["coordination"] = self.ha.status() if self.ha else {"backend": "local", "available": True}
        doc["coordination"]["leader"] = self.holder if self.leading else self.store.lease_holder()
        for name, lags in bucket_lags.items():
            if name in doc["sites"]:
                doc["sites"][name]["buckets"] = buckets.lag_document(lags)
        return doc

    async def _controller(self) -> None:
        while True:
            await self.guarded_cycle()
            # decide again at once when a check's verdict flips (not a whole interval later)
            await self.watcher.wait_changed(self.cfg.health.interval)

    async def _lease_watch(self) -> None:
        """etcd: stop the run the moment this process can no longer prove its lease (no network
        call: the proof is the time of the last renewal plus the TTL), not at the next cycle."""
        assert isinstance(self.store, EtcdStore)
        while True:
            await asyncio.sleep(0.2)
            if self.leading and not self.store.holds_lease():
                self.leading = False
                await self._cancel_run("the lease expired before it could be renewed")

    async def run(self, *, once: bool = False) -> str:
        """Run until cancelled (or one cycle with ``once``); returns the last sentence."""
        async with s3.shared_clients():  # one S3 client per endpoint, not one per probe or copy
            return await self._run(once=once)

    async def _run(self, *, once: bool) -> str:
        try:
            if once:
                await self.replicate_once()
                for name in self.watcher.sites:
                    await self.watcher.round(name)
                return (await self.cycle()).sentence
            self.playbook = self.load_playbook()
            self._tasks.append(tasks.create_guarded_task(testfailover.cleanup_at_start(self.runtime),
                                                         name="drill cleanup at start"))
            self.watcher.start(self.supervisor)
            self.supervisor.supervise("replicator", self._replicator)
            self.supervisor.supervise("re-fencer", self._refencer)
            self.surface.start(self.supervisor)  # API server, notification delivery
            if isinstance(self.store, EtcdStore):
                self.supervisor.supervise("lease watch", self._lease_watch)
            await self.supervisor.supervise("controller", self._controller)
            return self._last_sentence
        finally:
            await self.close()

    async def close(self) -> None:
        if self._keeper is not None:
            self._keeper.stop()
        await self.supervisor.stop()
        await self.watcher.stop()
        await tasks.cancel_and_wait(*self._tasks)
        if self._run_task is not None:
            await tasks.cancel_and_wait(self._run_task)
        try:
            self.store.release_lease(self.holder)
            if isinstance(self.store, EtcdStore):
                self.store.withdraw_member(self.holder)
        except errors.FailoverError as exc:  # etcd unreachable: the lease expires on its own
            logger.warning("could not release the lease: %s", exc)
        await self.replicator.aclose()
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
                "backup_age_s": (snap.now - v.newest_backup.completed_at).total_seconds() if v.newest_backup else None,
                "provider_state": v.provider_state,
                "checks": {c.name: {"passing": c.passing, "detail": c.detail} for c in v.checks},
            } for name, v in snap.sites.items()
        },
        "run": None if run is None else {"id": run.id, "playbook": run.playbook, "phase": run.phase,
                                         "step": run.step},
    }

"""The daemon itself: its state, one controller cycle (lease, snapshot, ``decide``, act, log the
sentence once when it changes), the status it publishes, start-up and shutdown. The runs and the
background loops are its other parts (:mod:`.runs`, :mod:`.loops`); see :mod:`failover.daemon`."""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import datetime
from typing import Any

from failover import buckets, controller, identity, replicate, s3
from failover.api import surface as surface_mod
from failover.config.runtime import Runtime
from failover.core import errors, secrets, tasks
from failover.daemon.base import CycleResult
from failover.daemon.loops import Loops
from failover.daemon.runs import Runs
from failover.daemon.state import active_of, failed_streak, open_store, roles_of, status_document, with_lag
from failover.drill import testfailover
from failover.ha import coordinator as ha_coordinator
from failover.health.model import SiteView
from failover.health.watcher import Watcher
from failover.pgwal import watch as wal_watch
from failover.playbook import engine as engine_mod
from failover.playbook.observers import RunObserver
from failover.services import Services
from failover.store.etcd import EtcdStore
from failover.store.queries import current_run

logger = logging.getLogger("failover.daemon")


class Daemon(Runs, Loops):
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
        self.wal = wal_watch.WalWatcher(runtime, self.replicator.pool, clock=self.services.clock)

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

    # --- snapshot and decision ---------------------------------------------------------------------
    def snapshot(self, votes: Any = None) -> controller.Snapshot:
        return self._snapshot(self._views(), votes)

    def _views(self) -> dict[str, SiteView]:
        """The watchers' views with replication lags and bucket readiness (in memory, no I/O)."""
        views = self.watcher.views()
        for name, lag in self.lags.items():
            if name in views:
                views[name] = with_lag(views[name], lag.lag_s)
        for name, lags in self.bucket_lags.items():
            if name in views and views[name].ready:
                views[name] = buckets.readiness(views[name], lags, self.runtime.profile)
        return self.wal.apply(views)  # the databases' archived WAL (policy.max_wal_age)

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
        """Renew the lease or take it (a worker thread on etcd). On etcd, the moment the lease is
        taken its keeper starts renewing it: on a loaded machine the rest of taking office and the
        next cycles may take longer than the TTL, and a lease nobody renews expires under a leader
        that believes it leads (seen in the lab: a new leader every few seconds)."""
        if self.store.renew_lease(self.holder, self.lease_ttl):
            return True
        if not self._take_lease():
            return False
        if self.ha is not None:
            if self._keeper is not None:
                self._keeper.stop()
            self._keeper = ha_coordinator.LeaseKeeper(self.ha.store, self.holder, self.lease_ttl).start()
        return True

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
        """Log and journal the decision once: when what it concludes changes, or as a heartbeat.
        What it concludes includes the sentence up to its first parenthesis ("ionos down for 1 of 3
        observers", "another daemon"): a vote that changes within one verdict (a split after an
        outage seen by none) is journaled, a reason's changing detail or age is not."""
        d = result.decision
        gist = d.sentence.split("(", 1)[0]
        key = (f"{d.verdict.value}|{d.target}|{d.source}|{result.run_id}|{sorted(site for site, _ in d.skipped)}|"
               f"{gist}")
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
        self.wal.annotate(doc)
        return doc

    async def run(self, *, once: bool = False) -> str:
        """Run until cancelled (or one cycle with ``once``); returns the last sentence."""
        async with s3.shared_clients():  # one S3 client per endpoint, not one per probe or copy
            return await self._run(once=once)

    async def _run(self, *, once: bool) -> str:
        try:
            if once:
                await self.replicate_once()
                if self.wal.enabled:
                    await self.wal.read_once(self.roles())
                for name in self.watcher.sites:
                    await self.watcher.round(name)
                return (await self.cycle()).sentence
            self.playbook = self.load_playbook()
            self._tasks.append(tasks.create_guarded_task(testfailover.cleanup_at_start(self.runtime),
                                                         name="drill cleanup at start"))
            self.watcher.start(self.supervisor)
            self.supervisor.supervise("replicator", self._replicator)
            self.supervisor.supervise("re-fencer", self._refencer)
            if self.wal.enabled:
                self.supervisor.supervise("wal watch", lambda: self.wal.run(
                    self.roles, interval=max(1.0, self.cfg.health.interval * 2)))
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

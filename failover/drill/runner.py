"""Running a drill: the timeline against the world, measured from the journal, checked, healed.

``type: lab`` drives a :class:`WorldDriver` (the lab's is ``failover.lab.drill_driver``; the product
never imports the lab) while the daemon watches and acts — a daemon that already holds the lease,
or one started in-process for the drill. The drill waits for a steady state (active healthy, a
ready standby), runs the injects at T+x, keeps observing for ``settle`` seconds or until a failover
run it caused has ended, counts the users' lost records, heals (active site first) and waits until
the active site is healthy again, so the next drill starts from a clean world.

``type: test-failover`` delegates to :mod:`failover.drill.testfailover`; ``tabletop`` journals
the notes of its timeline for the report.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from failover import daemon as daemon_mod
from failover.config.runtime import Runtime
from failover.core import errors, tasks
from failover.drill import findings, measure, naming, testfailover
from failover.drill import journal as journal_mod
from failover.drill.model import DrillResult, Finding, InjectRecord, Measurements, Outcome
from failover.drill.scenario import DrillType, Inject, Scenario

Say = Callable[[str], None]


def now() -> datetime:
    return datetime.now(UTC)


class WorldDriver(Protocol):
    """What a lab drill needs from the world it breaks."""

    async def inject(self, inject: Inject, site: str | None) -> str:
        """Apply one inject (never ``note``); returns a short detail for the timeline."""
        ...

    async def heal(self, site: str | None) -> None:
        """Remove the faults of ``site`` (None: every site and the DNS provider)."""
        ...

    async def newest_backups(self, site: str) -> list[str]:
        """Names of the complete backups in the site's bucket, newest first."""
        ...

    def start_users(self) -> None: ...

    async def stop_users(self) -> dict[str, float]:
        """Stop writing; the acknowledged record ids with their times."""
        ...

    async def records(self, site: str) -> set[str]: ...


class Drill:
    def __init__(self, rt: Runtime, scenario: Scenario, *, say: Say, world: WorldDriver | None = None) -> None:
        self.rt, self.sc, self.say, self.world = rt, scenario, say, world
        self.store = daemon_mod.open_store(rt)
        self.journal = journal_mod.DrillJournal.open(rt.state_dir)
        cfg = rt.config
        roles = daemon_mod.roles_of(self.store, cfg)
        self.active = daemon_mod.active_of(self.store, cfg)
        self.standbys = [s.name for s in cfg.standby_order() if roles.get(s.name) == "standby"
                         and s.name != self.active]
        standby = scenario.standby or "standby"
        self.resolve = {"active": self.active, "standby": self.standbys[0] if self.standbys else ""}
        self.standby = self.resolve.get(standby, standby) or None

    def _sites(self, word: str | None) -> list[str]:
        if word is None:
            return []
        if word == "standbys":
            return list(self.standbys)
        return [self.resolve.get(word, word)]

    async def run(self) -> DrillResult:
        row = self.journal.start(scenario=self.sc.name, type=self.sc.type.value,
                                 scenario_doc=self.sc.model_dump(mode="json"), label_of=naming.new_label)
        self.say(f"drill {row.id} ({self.sc.name}, {self.sc.type.value}) started")
        self.journal.event(row.seq, "start", f"drill {self.sc.name} started; active {self.active}, "
                                             f"standby {self.standby}")
        m = Measurements(t0=now(), active_at_start=self.active, standby_at_start=self.standby,
                         dns_ttl_s=self.rt.config.dns.ttl)
        result = DrillResult(id=row.id, scenario=self.sc.name, title=self.sc.title or self.sc.name,
                             type=self.sc.type.value, label=row.label, outcome=Outcome.ABORTED,
                             started_at=row.started_at, finished_at=row.started_at, measurements=m)
        try:
            if self.sc.type is DrillType.LAB:
                await self._lab(row, result)
            elif self.sc.type is DrillType.TEST_FAILOVER:
                await self._test_failover(row, result)
            else:
                self._tabletop(row, result)
        except errors.FailoverError as exc:
            result.error = str(exc)
            self.say(f"drill aborted: {exc}")
        finally:
            result.finished_at = now()
            self._evaluate(result)
            self.journal.finish(row.seq, status=result.outcome.value, result=result.model_dump(mode="json"))
            self.journal.event(row.seq, "end", f"drill {result.outcome.value}")
            self.journal.close()
            self.store.close()
        return result

    # --- lab ------------------------------------------------------------------------------------------
    async def _lab(self, row: journal_mod.DrillRow, result: DrillResult) -> None:
        if self.world is None:
            raise errors.InputError("a lab drill needs the lab (run it against a lab config with `lab up`)")
        daemon_task = self._daemon_if_needed()
        sampler = measure.HealthSampler(self.store)
        sampler_task = tasks.create_guarded_task(sampler.run(now), name="drill health sampler")
        self.world.start_users()
        users_stopped = False
        try:
            await self._steady(sampler)
            await self._backups_to_corrupt()
            result.measurements.t0 = t0 = sampler.since = now()
            sampler.restart(t0)  # every site's state at T0 opens the timeline
            self.journal.event(row.seq, "t0", "T0: steady state reached, timeline starts")
            await self._timeline(row, result, t0)
            first_fault = next((i.ts for i in result.injects if i.what != "note"), None)
            run = await self._observe(t0, sampler)
            acked = await self.world.stop_users()
            users_stopped = True
            if run is not None:
                measure.fill_from_run(result.measurements, self.store, run, first_fault)
                result.steps = measure.steps_of(self.store, run.id, self.sc.goals.step_budgets)
            serving = result.measurements.target if result.measurements.run_phase == "succeeded" else self.active
            held = await self.world.records(serving or self.active)
            result.measurements.records_written = len(acked)
            result.measurements.records_lost = len([i for i in acked if i not in held])
            result.decisions = measure.decisions_since(self.store, t0 - timedelta(seconds=1))
            await self._heal_all(row, sampler)
        finally:
            if not users_stopped:
                with contextlib.suppress(errors.FailoverError):
                    await self.world.stop_users()
            sampler.sample(now())
            result.health = sampler.samples
            self._not_ready = sampler.reasons
            await tasks.cancel_and_wait(sampler_task)
            if daemon_task is not None:
                await tasks.cancel_and_wait(daemon_task, timeout=10)

    def _daemon_if_needed(self) -> asyncio.Task[Any] | None:
        holder = self.store.lease_holder()
        if holder is not None:
            self.say(f"using the running daemon ({holder})")
            return None
        self.say("no daemon holds the lease: starting one for the drill")
        d = daemon_mod.Daemon(self.rt, holder="drill-daemon")
        return tasks.create_guarded_task(d.run(), name="drill daemon", eternal=True)

    async def _wait(self, predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise errors.TemporaryError(f"{what} not reached within {timeout:.0f}s")
            await asyncio.sleep(0.3)

    async def _steady(self, sampler: measure.HealthSampler) -> None:
        self.say("waiting for a steady state (active serving, standby ready, fresh status)")
        wants_failover = bool(self.sc.expectations.takes_over)
        since = now()
        patience = since + timedelta(seconds=45)  # for a replica of the users' records; then go on

        def steady() -> bool:
            doc = sampler.status()
            sites = doc.get("sites") or {}
            fresh = str(doc.get("updated_at", "")) >= since.isoformat()
            # degraded counts: on a loaded machine a slow probe degrades a site that serves fine
            active_ok = (sites.get(self.active) or {}).get("health") in ("healthy", "degraded")
            standby = sites.get(self.standby or "") or {}
            return fresh and active_ok and bool(standby.get("ready")) and (
                not wants_failover or _backup_after(standby, since) or now() > patience)

        try:
            await self._wait(steady, timeout=120, what="steady state")
        except errors.TemporaryError as exc:
            sites = sampler.status().get("sites") or {}
            active, standby = sites.get(self.active) or {}, sites.get(self.standby or "") or {}
            raise errors.TemporaryError(
                f"{exc}: {self.active} {active.get('health')} ({'; '.join(active.get('reasons') or [])}); "
                f"{self.standby} ready={standby.get('ready')} ({'; '.join(standby.get('ready_reasons') or [])}); "
                f"newest backup there {standby.get('newest_backup')}") from None

    async def _backups_to_corrupt(self) -> None:
        """A corrupt-backup inject needs a previous good backup beside the newest one on its site."""
        assert self.world is not None
        world = self.world
        for site in {s for i in self.sc.timeline if i.kind == "corrupt" for s in self._sites(i.site)}:
            deadline = asyncio.get_running_loop().time() + 180
            while len(await world.newest_backups(site)) < 2:
                if asyncio.get_running_loop().time() > deadline:
                    raise errors.TemporaryError(f"{site} never held two complete backups (one to corrupt, "
                                                "one to fall back to)")
                await asyncio.sleep(1.0)

    async def _timeline(self, row: journal_mod.DrillRow, result: DrillResult, t0: datetime) -> None:
        assert self.world is not None
        for inj in self.sc.timeline:
            delay = (t0 + timedelta(seconds=inj.at) - now()).total_seconds()
            if delay > 0:
                await asyncio.sleep(delay)
            sites: list[str | None] = list(self._sites(inj.site)) or [None]
            for site in sites:
                if inj.kind == "corrupt" and site is not None and result.measurements.newest_backup_at_inject is None:
                    names = await self.world.newest_backups(site)
                    result.measurements.newest_backup_at_inject = names[0] if names else None
                    result.measurements.previous_backup_at_inject = names[1] if len(names) > 1 else None
                ok, detail, issued = True, "", now()  # the inject's time is when it was issued
                if inj.kind == "note":
                    detail = inj.text
                else:
                    try:
                        detail = await self.world.inject(inj, site)
                    except errors.FailoverError as exc:
                        ok, detail = False, str(exc)
                rec = InjectRecord(at_s=round((issued - t0).total_seconds(), 2), ts=issued, what=inj.do, site=site,
                                   ok=ok, detail=detail)
                result.injects.append(rec)
                self.journal.event(row.seq, "inject", f"T+{rec.at_s:.1f}s {inj.describe()}"
                                   + (f" -> {site}" if site and site != inj.site else ""), rec.model_dump(mode="json"))
                self.say(f"T+{rec.at_s:5.1f}s inject {inj.do}{' on ' + site if site else ''}: "
                         f"{'ok' if ok else 'FAILED'} {detail}")

    def _awaited(self, t0: datetime, sampler: measure.HealthSampler) -> list[str]:
        """Observable expectations not seen yet (the drill keeps watching for them, bounded)."""
        ex, missing = self.sc.expectations, []
        if ex.takes_over:
            missing.append("a failover run")
        if ex.decision and not any(ex.decision in d.sentence for d in measure.decisions_since(self.store, t0)):
            missing.append(f"a decision containing {ex.decision!r}")
        if ex.standby_ready is False and not sampler.reasons.get(self.resolve.get("standby", "")):
            missing.append("the standby losing its readiness")
        for site, health in ex.site_health.items():
            name = self.resolve.get(site, site)
            if not any(s.site == name and s.health == health and s.ts >= t0 for s in sampler.samples):
                missing.append(f"{name} {health}")
        return missing

    async def _observe(self, t0: datetime, sampler: measure.HealthSampler) -> Any:
        """Observe ``settle`` seconds, longer (up to ``run_timeout``) while an expected observation is
        still missing; a failover run started after T0 is followed until it ends."""
        settle_end = now() + timedelta(seconds=self.sc.settle)
        patience_end = settle_end + timedelta(seconds=self.sc.run_timeout)
        run = None
        while now() < patience_end and (now() < settle_end or self._awaited(t0, sampler)):
            run = measure.run_since(self.store, t0)
            if run is not None:
                break
            await asyncio.sleep(0.3)
        if run is None:
            return None
        self.say(f"failover run {run.id} started; following it")
        deadline = now() + timedelta(seconds=self.sc.run_timeout)
        last_step = ""
        while now() < deadline:
            current = self.store.get_run(run.id)
            steps = self.store.step_records(run.id)
            if steps and f"{steps[-1].key} {steps[-1].status}" != last_step:
                last_step = f"{steps[-1].key} {steps[-1].status}"
                self.say(f"  run {run.id}: {last_step}")
            if current is not None and current.phase.terminal:
                return current
            await asyncio.sleep(0.3)
        return self.store.get_run(run.id)

    async def _heal_all(self, row: journal_mod.DrillRow, sampler: measure.HealthSampler) -> None:
        """Heal the serving site first and wait until it is healthy, then everything else."""
        assert self.world is not None
        active = daemon_mod.active_of(self.store, self.rt.config)
        await self.world.heal(active)
        self.journal.event(row.seq, "heal", f"healed {active} (the active site)")

        def serving() -> bool:
            health = ((sampler.status().get("sites") or {}).get(active) or {}).get("health")
            return health in ("healthy", "degraded")

        with contextlib.suppress(errors.TemporaryError):
            await self._wait(serving, timeout=60, what=f"{active} serving again")
        await self.world.heal(None)
        self.journal.event(row.seq, "heal", "healed every site and the DNS provider")
        self.say(f"healed: {active} first, then every other site")

    # --- test failover and tabletop ------------------------------------------------------------------
    async def _test_failover(self, row: journal_mod.DrillRow, result: DrillResult) -> None:
        if self.standby is None:
            raise errors.PermanentError("no standby site to run the test failover on")
        if self.standby == self.active:
            raise errors.InputError(f"{self.standby} is the active site; a test failover never touches it")
        t0 = result.measurements.t0
        tf = await testfailover.run(self.rt, self.journal, row, standby=self.standby, say=self.say)
        m = result.measurements
        m.target, m.backup, m.backup_completed_at, m.verified_at = tf.standby, tf.backup, tf.backup_completed_at, \
            tf.verified_at
        if tf.verified_at is not None:
            m.rto_from_inject_s = round((tf.verified_at - t0).total_seconds(), 3)
            m.rto_s = m.rto_from_inject_s
        if tf.backup_completed_at is not None:
            m.data_loss_window_s = round(max(0.0, (t0 - tf.backup_completed_at).total_seconds()), 3)
        result.steps, result.verification = tf.steps, tf.verification
        for line in tf.verification:
            self.journal.event(row.seq, "verify", line)
        self._tf_failed, self._tf_left = tf.failed, tf.left_over

    def _tabletop(self, row: journal_mod.DrillRow, result: DrillResult) -> None:
        t0 = result.measurements.t0
        for inj in self.sc.timeline:
            rec = InjectRecord(at_s=inj.at, ts=t0 + timedelta(seconds=inj.at), what=inj.do, site=inj.site,
                               detail=inj.text)
            result.injects.append(rec)
            self.journal.event(row.seq, "note", f"T+{inj.at:g}s {inj.describe()}", rec.model_dump(mode="json"))

    # --- evaluation -----------------------------------------------------------------------------------
    def _evaluate(self, r: DrillResult) -> None:
        health_seen: dict[str, set[str]] = {}
        for s in r.health:
            health_seen.setdefault(s.site, set()).add(s.health)
        started = r.measurements.failover_run is not None
        r.expectations = findings.check(self.sc, r, resolve=self.resolve, health_seen=health_seen,
                                        failover_started=started, not_ready=getattr(self, "_not_ready", {}))
        r.findings = findings.derive(self.sc, r, not_ready=getattr(self, "_not_ready", {}),
                                     rpo=self.rt.config.policy.rpo, standbys=self.standbys)
        for problem in getattr(self, "_tf_failed", []):
            r.findings.append(Finding(severity="critical", title="Test-Failover fehlgeschlagen",
                                               detail=problem, measure="Backup und Standby prüfen"))
        left = getattr(self, "_tf_left", [])
        if left:
            r.findings.append(Finding(severity="critical", title="Übungsreste auf dem Standby",
                                               detail=", ".join(left), measure="`failover drill cleanup`"))
        failed = r.error is not None or bool(getattr(self, "_tf_failed", [])) or bool(left)
        r.outcome = Outcome.ABORTED if r.error else (
            Outcome.PASSED if findings.expectations_met(r.expectations) and not failed else Outcome.FAILED)


def _backup_after(standby: dict[str, Any], since: datetime) -> bool:
    """The standby holds a backup newer than ``since`` (users' records are in a replica)."""
    name = str(standby.get("newest_backup") or "")
    stamp = name.rsplit("-", 1)[-1]
    if len(stamp) == 14 and stamp.isdigit():  # Velero schedule names end in YYYYMMDDhhmmss
        taken = datetime.strptime(stamp, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        return taken >= since - timedelta(seconds=1)
    return bool(name)

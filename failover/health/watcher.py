"""The watcher: runs every site's probes on its own schedule and keeps the checks' verdicts.

Each site has its own loop, so a site whose endpoints hang costs only its own probe timeouts; the
controller reads the latest :class:`~failover.health.model.SiteView` of every site whenever it
runs. Probes inside a round run concurrently, bounded per site (one site's slow endpoints never
take another site's probe slots).

**Suspicion mode**: a check whose probe has just failed, but that is not failing yet, is probed
again after ``suspect_interval`` (default a quarter of the interval) instead of a whole interval,
so a check fails as soon as its failures have lasted ``fail_window`` (by default as long as
``fail_after`` probes one interval apart would take) and a slow full round no longer delays the
verdict. One success resets the count, so an isolated lost probe still never fails a check.
When a check's verdict flips, :attr:`Watcher.changed` is set so the controller decides at once
instead of at its next cycle.

Which checks a site has depends on its role: the **active** site is probed for every component
through its ingress and for the DNS answers; a **standby** for what readiness needs (its
Kubernetes API, its bucket, a replicated backup within the RPO, the DNS provider's API).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from failover import s3
from failover.config import models
from failover.core import tasks
from failover.health import checks, lag, probes
from failover.health.model import BackupRef, CheckKind, Health, SiteView
from failover.services import Services, probe_pool_size
from failover.velero import verify
from providers.base import ClusterRef, ClusterState, Provider

logger = logging.getLogger(__name__)

READY_KINDS = (CheckKind.KUBE, CheckKind.STORAGE, CheckKind.BACKUP, CheckKind.DNS)
BUCKET_CHECKS = frozenset({"storage", "backup"})


@dataclass
class SiteState:
    name: str
    role: str = models.Role.STANDBY.value
    checks: dict[str, checks.Check] = field(default_factory=dict)
    newest_backup: BackupRef | None = None
    replication_lag_s: float | None = None
    provider_state: str | None = None
    rounds: int = 0


class Watcher:
    def __init__(self, services: Services, *, roles: Callable[[], dict[str, str]]) -> None:
        self.services = services
        self.cfg = services.runtime.config
        self.roles = roles
        self.sites = {s.name: SiteState(s.name) for s in self.cfg.sites}
        self._sems = {s.name: asyncio.Semaphore(self.cfg.health.concurrency) for s in self.cfg.sites}
        # never more probes in flight than the shared client has connections (a probe waiting for a
        # connection inside its timeout would turn overload into an outage)
        self._pool = asyncio.Semaphore(probe_pool_size(services.runtime))
        #: samples taken (for benchmarks and metrics)
        self.samples = 0
        self._tasks: list[asyncio.Task[Any]] = []
        #: set whenever a check's verdict flips; the controller waits on it between cycles
        self.changed = asyncio.Event()
        self.lag = lag.LoopLag()
        #: failed samples discarded because this process was too slow to judge them
        self.overloaded = 0
        #: called with (site, check kind, seconds) after each probe (the daemon's latency histogram)
        self.on_sample: Callable[[str, str, float], None] | None = None

    @property
    def suspect_interval(self) -> float:
        h = self.cfg.health
        return h.suspect_interval if h.suspect_interval is not None else max(0.1, h.interval / 4)

    # --- checks ---------------------------------------------------------------------------------
    def _check(self, state: SiteState, name: str, kind: CheckKind, *, critical: bool = True) -> checks.Check:
        check = state.checks.get(name)
        if check is None:
            h = self.cfg.health
            window = h.fail_window if h.fail_window is not None else (h.fail_after - 1) * h.interval
            check = checks.Check(name, kind, fail_after=h.fail_after, recover_after=h.recover_after,
                                 critical=critical, fail_window=window)
            state.checks[name] = check
        return check

    def _probes(self, state: SiteState) -> list[tuple[checks.Check, Callable[[], Awaitable[str]]]]:
        svc = self.services
        ep = svc.runtime.sites[state.name]
        out: list[tuple[checks.Check, Callable[[], Awaitable[str]]]] = []
        kube = svc.kube.get(state.name)
        site = self.cfg.site(state.name)
        if kube is not None:
            out.append((self._check(state, "kube", CheckKind.KUBE), lambda: probes.kube_readyz(kube)))
            if state.role == models.Role.STANDBY.value:
                out.append((self._check(state, "bsl", CheckKind.STORAGE),
                            lambda: probes.bsl_available(kube, site.velero_namespace, site.bsl)))
        if ep.storage is not None:
            loc = ep.storage
            rpo = self.cfg.policy.rpo
            out.append((self._check(state, "storage", CheckKind.STORAGE), lambda: probes.storage(loc)))
            out.append((self._check(state, "backup", CheckKind.BACKUP, critical=False),
                        lambda: self._backup(state, loc, rpo)))
        provider = svc.provider(self.cfg.site(state.name).provider)
        if provider is not None and provider.kind != "powerdns":
            ref = ep.cluster
            out.append((self._check(state, "provider", CheckKind.PROVIDER, critical=False),
                        lambda: self._provider(state, provider, ref)))
        if state.role == models.Role.ACTIVE.value:
            out.extend(self._active_probes(state))
        elif state.role == models.Role.STANDBY.value:
            out.append((self._check(state, "dns-api", CheckKind.DNS), self._dns_api))
        return out

    def _active_probes(self, state: SiteState) -> list[tuple[checks.Check, Callable[[], Awaitable[str]]]]:
        svc = self.services
        ep = svc.runtime.sites[state.name]
        out: list[tuple[checks.Check, Callable[[], Awaitable[str]]]] = []
        for comp in svc.runtime.profile.components:
            http_probes = [p for p in comp.probes if p.type == "http" and p.hostname]
            if not http_probes or not ep.ingress_address:
                continue

            async def run(comp: models.Component = comp, ps: list[models.Probe] = http_probes) -> str:
                for p in ps:
                    await probes.http_component(svc.probe_session(), scheme=ep.ingress_scheme, port=ep.ingress_port,
                                                address=str(ep.ingress_address), fqdn=svc.runtime.fqdn(str(p.hostname)),
                                                probe=p)
                return "ok"

            out.append((self._check(state, comp.name, CheckKind.COMPONENT, critical=comp.critical), run))
        kube = svc.kube.get(state.name)
        if kube is not None:
            for comp in svc.runtime.profile.components:
                if comp.workloads:  # workload readiness in the site's cluster (the ingress's 503 has a cause)
                    check = self._check(state, f"{comp.name} workloads", CheckKind.WORKLOADS, critical=False)
                    out.append((check, functools.partial(probes.workloads, kube, comp)))
        if svc.resolver is not None and ep.ingress_address:
            resolver, address = svc.resolver, str(ep.ingress_address)
            names = sorted(svc.runtime.hostnames.values())

            async def dns_check() -> str:
                for fqdn in names:
                    await probes.dns_answer(resolver, fqdn, address)
                return f"{len(names)} names -> {address}"

            out.append((self._check(state, "dns", CheckKind.DNS, critical=False), dns_check))
        return out

    async def _backup(self, state: SiteState, loc: s3.S3Location, rpo: float) -> str:
        # backups marked bad (failed verification or a restore) never make a site ready
        # a store read (over the network on etcd): in a worker thread, so it never stalls the probes
        bad = await asyncio.to_thread(verify.bad_backups, self.services.store, state.name)
        newest = await verify.newest_good(loc, bad)
        state.newest_backup = BackupRef(newest.name, newest.completion_timestamp) \
            if newest is not None and newest.completion_timestamp is not None else None
        return await probes.backup_age(newest, rpo=rpo, clock=self.services.clock)

    async def _provider(self, state: SiteState, provider: Provider, ref: ClusterRef) -> str:
        """The provider's own view of the cluster; only ``ready`` passes."""
        status = await provider.cluster_status(ref)
        state.provider_state = f"{status.state.value} ({status.raw_state})"
        if status.state is not ClusterState.READY:
            reason = f": {status.reason}" if status.reason else ""
            raise probes.ProbeFailed(f"{provider.kind} reports {status.raw_state}{reason}")
        return status.raw_state

    async def _dns_api(self) -> str:
        adapter = self.services.dns_provider()
        await adapter.dns_get(self.cfg.workplace.zone, f"portal.{self.cfg.workplace.zone}", "A")
        return "ok"

    # --- rounds ----------------------------------------------------------------------------------
    async def round(self, name: str, *, only: frozenset[str] | None = None) -> None:
        """Probe one site once and feed every sample to its check (``only``: just these checks)."""
        state = self.sites[name]
        role = self.roles().get(name, state.role)
        if role != state.role:
            state.checks.clear()  # a role change changes what is checked
            state.role = role
            only = None
        pairs = self._probes(state)
        if only is not None:
            pairs = [(c, f) for c, f in pairs if c.name in only]
        h = self.cfg.health
        sem = self._sems[name]

        async def one(check: checks.Check, fn: Callable[[], Awaitable[str]]) -> None:
            # object storage answers slower than an API: the bucket checks get their own timeout
            timeout = h.storage_timeout if check.name in BUCKET_CHECKS else h.timeout
            async with sem, self._pool:
                started = asyncio.get_running_loop().time()
                result = await probes.sample(fn, timeout=timeout, clock=self.services.clock)
            self.samples += 1
            if self.on_sample is not None:
                self.on_sample(name, check.kind.value, asyncio.get_running_loop().time() - started)
            if result.timed_out and self.lag.worst_since(started) > timeout / 2:
                self.overloaded += 1  # the prober was starved: no verdict
                return
            if check.observe(result):
                self.changed.set()

        await asyncio.gather(*(one(c, f) for c, f in pairs))
        if only is None:
            state.rounds += 1

    def suspects(self, name: str) -> frozenset[str]:
        return frozenset(c.name for c in self.sites[name].checks.values() if c.suspect)

    def view(self, name: str) -> SiteView:
        state = self.sites[name]
        site = self.cfg.site(name)
        results, stale = checks.freshen((c.result() for c in state.checks.values()),
                                        now=self.services.clock(), max_age=self.stale_after)
        verdict = checks.site_health(results, critical_majority=self.cfg.health.critical_majority)
        health = verdict.health
        reasons = verdict.reasons + stale if health is Health.UNKNOWN else verdict.reasons
        ready, why = checks.readiness(results, required=READY_KINDS) if state.role == "standby" \
            else (False, (f"role {state.role}",))
        return SiteView(
            name=name, role=state.role, health=health, reasons=reasons, ready=ready,
            ready_reasons=why, outage_started_at=verdict.outage_started_at, checks=results,
            newest_backup=state.newest_backup, replication_lag_s=state.replication_lag_s,
            provider_state=state.provider_state, jurisdiction=site.jurisdiction,
            attestations=site.attestations, down_checks=verdict.down_checks,
        )

    @property
    def stale_after(self) -> float:
        """Age (s) beyond which a check's last sample no longer counts: a few probe intervals plus
        the longest probe timeout, since a round ends only when its slowest probe does."""
        h = self.cfg.health
        return h.stale_after or 3 * h.interval + max(h.timeout, h.storage_timeout)

    def views(self) -> dict[str, SiteView]:
        return {name: self.view(name) for name in self.sites}

    async def _loop(self, name: str) -> None:
        """Full rounds every ``interval``; in between, suspect checks every ``suspect_interval``."""
        loop = asyncio.get_running_loop()
        interval, quick = self.cfg.health.interval, self.suspect_interval
        # jitter: sites started together must not probe in lock-step bursts (at most a second, so the
        # first verdict is not delayed by a long interval)
        next_full = loop.time() + random.uniform(0, min(interval, 1.0)) if len(self.sites) > 1 else loop.time()
        while True:
            started = loop.time()
            if started >= next_full:
                next_full = started + interval
                await self.round(name)
            else:
                await self.round(name, only=self.suspects(name))
            wake = next_full
            if self.suspects(name):
                wake = min(wake, started + quick)
            await asyncio.sleep(max(0.01, wake - loop.time()))

    async def wait_changed(self, timeout: float) -> bool:
        """Wait until a check's verdict flips or ``timeout`` passes; True if it flipped."""
        try:
            async with asyncio.timeout(timeout):
                await self.changed.wait()
        except TimeoutError:
            return False
        finally:
            self.changed.clear()
        return True

    def start(self, supervisor: tasks.Supervisor | None = None) -> None:
        """One loop per site; supervised (restarted with backoff when it dies) when given one."""
        self._tasks.append(tasks.create_guarded_task(self.lag.run(), name="loop-lag monitor", eternal=True))
        for name in self.sites:
            if supervisor is not None:
                self._tasks.append(supervisor.supervise(f"watcher of {name}", functools.partial(self._loop, name)))
            else:
                self._tasks.append(tasks.create_guarded_task(self._loop(name), name=f"watcher of {name}",
                                                             eternal=True))

    async def stop(self) -> None:
        await tasks.cancel_and_wait(*self._tasks)
        self._tasks.clear()

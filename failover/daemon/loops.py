"""The daemon's long-lived loops besides the watchers (each supervised, restarted with backoff):
the controller (one guarded cycle per interval, sooner when a verdict flips), the replicator and the
re-fencer (the leader's jobs alone), and the lease watch (etcd)."""

from __future__ import annotations

import asyncio
import logging

from failover import buckets, s3
from failover.actions import fence as fence_actions
from failover.config import models
from failover.daemon.base import DaemonBase
from failover.daemon.state import active_of, roles_of
from failover.store.etcd import EtcdStore

logger = logging.getLogger("failover.daemon")


class Loops(DaemonBase):
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

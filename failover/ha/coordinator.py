"""One daemon instance's HA duties on the etcd backend.

Every cycle, every instance — leader or not — publishes its verdict on every site (with the time
it was formed) under its own membership lease, and reads everyone's. The instance that holds the
leader lease then *takes office* once: it raises the fencing epoch by compare-and-swap and adopts
the unfinished run a dead leader left (the run's epoch becomes the new one), so the engine resumes
it from the journal and every write of the old leader that arrives late is refused by etcd.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from failover.config import models
from failover.core import errors
from failover.ha import quorum
from failover.health.model import Health, SiteView
from failover.store import RunPhase
from failover.store.etcd import EtcdStore

logger = logging.getLogger(__name__)


class Coordinator:
    def __init__(self, store: EtcdStore, *, name: str, cfg: models.Config, clock: Callable[[], datetime],
                 verdict_max_age: float) -> None:
        self.store = store
        self.name = name
        self.cfg = cfg
        self.clock = clock
        self.verdict_max_age = verdict_max_age
        self.members: dict[str, Any] = {}
        self.votes: dict[str, quorum.SiteVotes] = {}
        self.republish_s = max(1.0, min(verdict_max_age / 4, cfg.coordination.lease_ttl / 3))
        self._published: tuple[Any, float] = ((), float("-inf"))

    def observe(self, views: Mapping[str, SiteView]) -> dict[str, quorum.SiteVotes]:
        """Publish this observer's verdicts, read everyone's, and count the votes per site."""
        now = self.clock()
        mine = {name: _verdict(v, now) for name, v in views.items()}
        # one etcd write when a verdict changes, else a refresh every few seconds (each write is a
        # raft round and an fsync on every member; several instances probe every interval)
        key = tuple(sorted((n, v["health"], v["reason"]) for n, v in mine.items()))
        mono = time.monotonic()
        if key != self._published[0] or mono - self._published[1] >= self.republish_s:
            self.store.publish_member(self.name, {"since": now.isoformat()}, mine,
                                      ttl_s=self.cfg.coordination.lease_ttl)
            self._published = (key, mono)
        self.members = self.store.members()
        self.votes = quorum.tally(self.members, self.store.verdicts(), now=now, max_age=self.verdict_max_age)
        return self.votes

    def take_office(self) -> str:
        return take_office(self.store, self.name)

    def status(self) -> dict[str, Any]:
        """``coordination`` in ``status --json``: leader, members, every observer's verdict per site."""
        return {
            "backend": "etcd", "available": True, "name": self.name,
            "members": sorted(self.members),
            "observers": {site: {v.observer: {"health": v.health, "age_s": None if v.age_s == float("inf")
                                              else round(v.age_s, 1), "reason": v.reason}
                                 for v in votes.votes}
                          for site, votes in sorted(self.votes.items())},
        }


class LeaseKeeper:
    """Renews the leader lease from its own thread every quarter TTL, so a busy event loop (a
    CPU-heavy replication pass, a slow probe round) cannot cost the leadership; it ends when the
    lease is lost or on :meth:`stop`. The proof of the lease stays time-based (``holds_lease``)."""

    def __init__(self, store: EtcdStore, holder: str, ttl: float) -> None:
        self.store, self.holder, self.ttl = store, holder, ttl
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease keeper of {holder}", daemon=True)

    def start(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            try:
                if not self.store.renew_lease(self.holder, self.ttl):
                    return
            except errors.FailoverError as exc:
                logger.debug("lease keeper: %s", exc)

    def stop(self) -> None:
        self._stop.set()


async def keep_lease(store: EtcdStore, holder: str, ttl: float) -> None:
    """Renew ``holder``'s lease every third of its TTL (an operator's run from the CLI); the engine
    stops the run by itself once the lease can no longer be proven."""
    while True:
        await asyncio.sleep(ttl / 3)
        try:
            if not await asyncio.to_thread(store.renew_lease, holder, ttl):
                logger.warning("%s lost the lease", holder)
                return
        except errors.TemporaryError as exc:
            logger.warning("cannot renew the lease of %s: %s", holder, exc)


def take_office(store: EtcdStore, name: str) -> str:
    """Raise the epoch (CAS; only the lease holder may) and adopt the run a previous leader left
    unfinished, so the engine resumes it under the new epoch; says what it did."""
    epoch = store.bump_epoch()
    for run in store.list_runs(limit=20, phases=[RunPhase.PENDING, RunPhase.RUNNING, RunPhase.WAITING_APPROVAL]):
        if run.epoch < epoch:
            store.update_run(run.id, epoch=epoch)
            logger.warning("%s took office at epoch %d and adopted run %s (epoch %d)", name, epoch, run.id, run.epoch)
            return f"took office at epoch {epoch}, resuming run {run.id}"
    logger.info("%s took office at epoch %d", name, epoch)
    return f"took office at epoch {epoch}"


def _verdict(view: SiteView, now: datetime) -> dict[str, Any]:
    """What one observer publishes about one site (its reasons shortened: a verdict, not a report)."""
    reason = "; ".join(view.reasons[:2]) if view.health in (Health.DOWN, Health.DEGRADED, Health.UNKNOWN) else ""
    samples = [c.sampled_at for c in view.checks if c.sampled_at is not None]
    at = max(samples) if samples else now  # the verdict is as old as the newest sample behind it
    return {"health": view.health.value, "at": at.isoformat(), "reason": reason[:160],
            "since": view.outage_started_at.isoformat() if view.outage_started_at else None}

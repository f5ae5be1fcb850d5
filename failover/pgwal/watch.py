"""The daemon's view of the WAL archives: each standby's newest archived segment, read every few
seconds by any daemon (read-only), applied to readiness and shown in ``status``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from failover import s3
from failover.config import models
from failover.config.runtime import Runtime
from failover.health.model import SiteView
from failover.pgwal import archive

logger = logging.getLogger(__name__)


class WalWatcher:
    """Per standby and database, the last :class:`~failover.pgwal.archive.WalStatus`."""

    def __init__(self, runtime: Runtime, pool: s3.ClientPool, *, clock: Callable[[], datetime]) -> None:
        self.runtime = runtime
        self.pool = pool
        self.clock = clock
        self.statuses: dict[str, dict[str, archive.WalStatus]] = {}

    @property
    def enabled(self) -> bool:
        """Archived databases in the profile, and at least one site that says where its database runs
        (a deployment or lab without databases pays nothing for this watch)."""
        return bool(self.runtime.profile.databases()) and any(ep.database for ep in self.runtime.sites.values())

    async def read_once(self, roles: dict[str, str]) -> None:
        """Read every standby's archives, concurrently (never raises)."""
        now = self.clock()

        async def one(site: str, loc: s3.S3Location) -> None:
            where = self.runtime.sites[site].site
            got = await asyncio.gather(*(archive.read(self.pool, archive.repo_location(loc, where, data), data, now=now)
                                         for _, data in self.runtime.profile.databases()))
            self.statuses[site] = {st.stanza: st for st in got}

        standbys = [(n, ep.storage) for n, ep in self.runtime.sites.items()
                    if roles.get(n) == models.Role.STANDBY.value and ep.storage is not None]
        await asyncio.gather(*(one(n, loc) for n, loc in standbys if loc is not None))
        for gone in set(self.statuses) - {n for n, _ in standbys}:
            del self.statuses[gone]

    async def run(self, roles: Callable[[], dict[str, str]], *, interval: float) -> None:
        while True:
            if self.enabled:
                await self.read_once(roles())
            await asyncio.sleep(interval)

    def apply(self, views: dict[str, SiteView]) -> dict[str, SiteView]:
        """Readiness: a ready standby whose archived WAL is too old (``policy.max_wal_age``) is not.

        The age is measured at the active site's outage start while it has one: a lost active
        site archives nothing more, so what counts is how far behind the archive was when it was
        lost (the data-loss window), not how long ago that was — else every standby would turn
        unready exactly when it is needed."""
        bound = self.runtime.config.policy.max_wal_age
        if bound is None or not self.enabled:
            return views
        now = self.clock()
        lost = [v.outage_started_at for v in views.values()
                if v.role == models.Role.ACTIVE.value and v.outage_started_at is not None]
        if lost:
            now = min(now, *lost)
        out = dict(views)
        for name, view in views.items():
            if view.ready and view.role == models.Role.STANDBY.value:
                out[name] = archive.readiness(view, self.statuses.get(name, {}), self.runtime.profile,
                                              max_wal_age=bound, now=now)
        return out

    def annotate(self, doc: dict[str, Any]) -> None:
        """``status --json``: ``wal_age_s`` (the oldest database's) beside ``backup_age_s``, and ``wal``."""
        now = self.clock()
        for name, statuses in self.statuses.items():
            site = doc.get("sites", {}).get(name)
            if site is None:
                continue
            ages = [st.age(now) for st in statuses.values()]
            site["wal_age_s"] = None if not ages or None in ages else round(max(a for a in ages if a is not None), 1)
            site["wal"] = archive.document(statuses, now=now)

"""The lab side of ``failover drill run``: injects through the lab's control API, users through the
workload generator, a corrupted backup through the standby bucket's S3 API.

Implements :class:`failover.drill.runner.WorldDriver`. The product's drill code never imports this
module; the CLI hands it to the drill when the config is a lab config.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from failover import s3
from failover.config.runtime import Runtime
from failover.core import errors, tasks
from failover.drill.scenario import Inject
from failover.lab import control
from failover.lab import generator as gen_mod
from failover.velero import bucket, layout

logger = logging.getLogger(__name__)

#: what a corrupted tarball holds: not gzip, so every reader fails at its first byte
CORRUPT = b"corrupted by failover drill: not a gzip stream\n"


class LabDriver:
    def __init__(self, rt: Runtime, *, rate: float = 5.0) -> None:
        if rt.lab is None or "control" not in rt.lab:
            raise errors.PermanentError("the running lab has no control API; restart it with `failover lab up`")
        self.rt = rt
        self.control = control.ControlClient(str(rt.lab["control"]))
        self.generator = gen_mod.WorkloadGenerator.for_runtime(rt, state_dir=rt.state_dir / "lab", rate=rate)
        self._task: Any = None

    async def inject(self, inject: Inject, site: str | None) -> str:
        kind = inject.kind
        if kind in ("fault", "component"):
            assert site is not None
            faults = await self.control.break_site(site, inject.do)
            return f"faults now: {', '.join(faults)}"
        if kind == "dns":
            await self.control.break_dns()
            return "DNS provider API unreachable"
        if kind == "corrupt":
            assert site is not None
            return await self.corrupt_newest(site)
        if kind == "heal":
            await self.heal(site)
            return f"healed {site or 'everything'}"
        raise errors.InputError(f"inject {inject.do!r} cannot run in the lab")

    async def heal(self, site: str | None) -> None:
        if site is None:
            for name in self.rt.sites:
                await self.control.heal(name)
            await self.control.heal_dns()
        else:
            await self.control.heal(site)

    async def corrupt_newest(self, site: str) -> str:
        """Overwrite the newest complete backup's tarball in ``site``'s bucket (metadata untouched)."""
        loc = self._storage(site)
        infos = [i for i in await bucket.backup_infos(loc) if i.is_complete and i.completion_timestamp]
        if not infos:
            raise errors.PermanentError(f"no complete backup in the bucket of {site} to corrupt")
        newest = max(infos, key=lambda i: i.completion_timestamp)  # type: ignore[arg-type,return-value]
        async with s3.open_client(loc) as client:
            await s3.put_bytes(client, loc, layout.backup_tarball(loc.prefix, newest.name), CORRUPT)
        logger.info("drill: corrupted the tarball of %s on %s", newest.name, site)
        return f"tarball of {newest.name} overwritten"

    async def newest_backups(self, site: str) -> list[str]:
        infos = [i for i in await bucket.backup_infos(self._storage(site))
                 if i.is_complete and i.completion_timestamp]
        infos.sort(key=lambda i: i.completion_timestamp, reverse=True)  # type: ignore[arg-type,return-value]
        return [i.name for i in infos]

    def _storage(self, site: str) -> s3.S3Location:
        loc = self.rt.sites[site].storage
        if loc is None:
            raise errors.PermanentError(f"site {site} has no bucket")
        return loc

    def start_users(self) -> None:
        self._task = tasks.create_guarded_task(self.generator.run(), name="drill users")

    async def stop_users(self) -> dict[str, float]:
        self.generator.stop()
        if self._task is not None:
            await tasks.cancel_and_wait(self._task, timeout=10)
            self._task = None
        return dict(self.generator.acked)

    async def records(self, site: str) -> set[str]:
        return set(await self.control.records(site))


def rate_from_env() -> float:
    return float(os.environ.get("FAILOVER_DRILL_USER_RATE", "5"))

"""What the parts of the daemon share: its attributes (set by :class:`failover.daemon.core.Daemon`),
the result of one cycle, and the one way to call the store from the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from failover import buckets, controller, replicate
from failover.api import surface as surface_mod
from failover.config import models
from failover.config.runtime import Runtime
from failover.core import tasks
from failover.ha import coordinator as ha_coordinator
from failover.health.watcher import Watcher
from failover.playbook import engine as engine_mod
from failover.services import Services

T = TypeVar("T")


@dataclass
class CycleResult:
    sentence: str
    decision: controller.Decision
    run_id: str | None = None


class DaemonBase:
    """The daemon's state, declared once for its parts (:mod:`.runs`, :mod:`.loops`, :mod:`.core`)."""

    runtime: Runtime
    cfg: models.Config
    store: Any
    services: Services
    watcher: Watcher
    policy: controller.PolicyView
    holder: str
    ha: ha_coordinator.Coordinator | None
    engine: engine_mod.Engine
    supervisor: tasks.Supervisor
    surface: surface_mod.Surface
    leading: bool
    playbook: Any
    lags: dict[str, replicate.StandbyLag]
    replicator: replicate.Replicator
    bucket_replicator: buckets.BucketReplicator
    bucket_lags: dict[str, dict[str, buckets.BucketLag]]
    bucket_interval: float
    _buckets_due: dict[str, float]
    _run_task: asyncio.Task[Any] | None
    _run_id: str | None

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        """Call the store: in a worker thread when it is etcd (network I/O must not block the probes
        that share this event loop), directly when it is the local SQLite file."""
        if self.ha is None:
            return fn(*args)
        return await asyncio.to_thread(fn, *args)

    # implemented by the parts (declared here so each part can call the others)
    async def guarded_cycle(self) -> CycleResult:
        raise NotImplementedError

    async def _cancel_run(self, why: str) -> None:
        raise NotImplementedError

"""Fencing the old active site: it must never serve or write again without a deliberate failback.

Fencing never blocks a failover (DESIGN §3): the site's role is recorded as ``fenced`` under the
run's epoch first (that alone makes every later action of an older epoch refuse), then, best
effort and bounded by a short timeout, its workloads are scaled to zero and its Velero schedule
is paused so it stops writing backups. DNS moves away from it in ``dns-switch``. An unreachable
site is fenced by epoch and DNS only, and the daemon re-fences it when it comes back.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, ConfigDict

from failover.actions import common
from failover.config import models
from failover.core import errors
from failover.core import kubetypes as kt
from failover.kube import KubeClient
from failover.playbook import registry
from failover.playbook.engine import StepContext, StepResult


class FenceParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site: str
    timeout: float = 8.0


async def record_fenced(ctx: StepContext, site: str) -> None:
    roles = common.state_map(ctx.store, "roles")
    roles[site] = models.Role.FENCED.value
    ctx.store.set_state("roles", roles)
    fenced = common.state_map(ctx.store, "fenced")
    fenced[site] = ctx.epoch
    ctx.store.set_state("fenced", fenced)


async def scale_down(kube: KubeClient, components: list[models.Component], velero_ns: str) -> int:
    """Scale every workload to 0 and pause the Velero schedules; returns how many were scaled."""
    scaled = await common.scale_components(kube, components, replicas=0, skip_missing=True)
    for schedule in await kube.list(kt.VELERO_SCHEDULES, velero_ns):
        if (schedule.get("spec") or {}).get("paused"):
            continue
        name = str(schedule["metadata"]["name"])
        await kube.patch(kt.VELERO_SCHEDULES, velero_ns, name, {"spec": {"paused": True}})
    return scaled


@registry.action("fence", params=FenceParams, timeout=30)
async def fence(ctx: StepContext, p: FenceParams) -> StepResult:
    """Mark the site fenced under this run's epoch, then stop it serving if it can be reached."""
    svc = common.services(ctx)
    await record_fenced(ctx, p.site)
    kube = svc.kube.get(p.site)
    if kube is None:
        return {"site": p.site, "epoch": ctx.epoch, "reachable": False, "scaled": 0}
    try:
        async with asyncio.timeout(p.timeout):
            scaled = await scale_down(kube, list(svc.runtime.profile.components),
                                      svc.site(p.site).site.velero_namespace)
    except (TimeoutError, errors.FailoverError) as exc:
        detail = "timed out" if isinstance(exc, TimeoutError) else str(exc)
        ctx.progress(f"{p.site} unreachable ({detail}); fenced by epoch {ctx.epoch} and DNS only")
        return {"site": p.site, "epoch": ctx.epoch, "reachable": False, "scaled": 0}
    ctx.progress(f"{p.site} fenced: {scaled} workloads scaled to 0, backups paused")
    return {"site": p.site, "epoch": ctx.epoch, "reachable": True, "scaled": scaled}

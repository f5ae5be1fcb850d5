"""Failback's own steps: a warm-up restore before the quiesce, the downtime's start, and re-protect.

* ``warm-restore`` restores the active site's newest backup on the original site *before* the
  quiesce, so the final restore after it only converges the last changes; its Velero Restores
  carry their own names (run id + ``-warm``), so the final restore of the same run is a second
  Restore rather than the first one found again.
* ``mark-time`` journals a timestamp (the start of the planned downtime), so ``mark-active``
  measures the failback's RTO from the quiesce rather than from the warm-up.
* ``reprotect`` makes the site the workplace left a **standby** again (``mark-active`` fenced it):
  its workloads stay at zero, its Velero schedules are paused and its BSL is read-only, and the
  newest backup of the active site is replicated to every standby at once; the daemon's replicator
  keeps it so from then on.
"""

from __future__ import annotations

import dataclasses

from pydantic import BaseModel, ConfigDict

from failover import replicate
from failover.actions import common, fence, restore
from failover.config import models
from failover.core import errors
from failover.core import kubetypes as kt
from failover.playbook import registry
from failover.playbook.engine import StepContext, StepResult
from failover.playbook.model import JSON
from failover.velero import bucket


@registry.action("warm-restore", params=restore.RestoreParams, timeout=1200)
async def warm_restore(ctx: StepContext, p: restore.RestoreParams) -> StepResult:
    """``velero-restore`` under a name of its own (see the module docstring)."""
    return await restore.velero_restore(dataclasses.replace(ctx, run_id=f"{ctx.run_id}-warm"), p)


class MarkTimeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = "now"


@registry.action("mark-time", params=MarkTimeParams, timeout=5, mutating=False)
async def mark_time(ctx: StepContext, p: MarkTimeParams) -> StepResult:
    """Journal the current time (once: a resumed run reads it back from the journal)."""
    at = common.services(ctx).clock().isoformat()
    ctx.progress(f"{p.label}: {at}")
    return {"label": p.label, "at": at}


class ReprotectParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site: str  #: the site the workplace left: it becomes a standby
    active: str  #: the site that serves now


@registry.action("reprotect", params=ReprotectParams, timeout=300)
async def reprotect(ctx: StepContext, p: ReprotectParams) -> StepResult:
    """The left site becomes a standby (stopped, read-only); replicate to every standby now."""
    svc = common.services(ctx)
    if p.site == p.active:
        raise errors.PermanentError("reprotect: site and active are the same site")
    site = svc.site(p.site).site
    kube = svc.kube_for(p.site)
    scaled = await fence.scale_down(kube, list(svc.runtime.profile.components), site.velero_namespace)
    await kube.patch(kt.VELERO_BSLS, site.velero_namespace, site.bsl, {"spec": {"accessMode": "ReadOnly"}})
    roles = common.state_map(ctx.store, "roles")
    roles[p.site] = models.Role.STANDBY.value
    ctx.store.set_state("roles", roles)
    source = svc.site(p.active).storage
    newest = await bucket.newest_complete(source) if source is not None else None
    copied: dict[str, JSON] = {}
    if source is not None and newest is not None:
        for name, role in sorted(roles.items()):
            dst = svc.site(name).storage if name in svc.runtime.sites else None
            if role == models.Role.STANDBY.value and dst is not None:
                copied[name] = await replicate.replicate_backup(source, dst, newest.name)
    ctx.progress(f"{p.site} is a standby again ({scaled} workloads at 0, BSL read-only); backup "
                 f"{newest.name if newest else 'none'} replicated to {', '.join(copied) or 'no standby'}")
    return {"site": p.site, "role": models.Role.STANDBY.value, "scaled": scaled,
            "backup": newest.name if newest else None, "replicated_to": copied}

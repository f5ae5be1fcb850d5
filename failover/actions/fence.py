"""Fencing the old active site: it must never serve or write again without a deliberate failback.

The fence first tries to stop the site, bounded by a short timeout: its workloads are scaled to
zero and its Velero schedule is paused so it stops writing backups. Only what was *confirmed*
is journaled as succeeded. When the site's Kubernetes API cannot be reached, the fence cannot be
confirmed, and then what users see decides (issue 13, defect 4: a managed control-plane outage
does not stop the workloads, and failing over then leaves two live copies that accept writes):

* users can no longer reach the site (every critical component fails through its ingress): the
  site is fenced by epoch and DNS only, the step is journaled **unconfirmed** (never succeeded),
  the run goes on, and the daemon's re-fencer keeps trying until it reaches the site;
* users still reach it: the step fails and the run stops, unless an operator recorded an
  override (``failover run … --force --reason``), which is journaled in the step's output.

The site's role is recorded as ``fenced`` under the run's epoch only when the run goes on, so a
refused fence never leaves a serving site marked fenced. DNS moves away from it in ``dns-switch``.
"""

from __future__ import annotations

import asyncio

import aiohttp
from pydantic import BaseModel, ConfigDict

from failover.actions import common
from failover.config import models
from failover.core import errors
from failover.core import kubetypes as kt
from failover.health import probes
from failover.kube import KubeClient
from failover.playbook import registry
from failover.playbook.engine import StepContext, StepResult
from failover.services import Services


class FenceParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site: str
    timeout: float = 8.0
    override: str = ""  #: an operator's journaled override: go on although users may still reach the site


async def record_fenced(ctx: StepContext, site: str, *, confirmed: bool = True) -> None:
    roles = common.state_map(ctx.store, "roles")
    roles[site] = models.Role.FENCED.value
    ctx.store.set_state("roles", roles)
    fenced = common.state_map(ctx.store, "fenced")
    fenced[site] = ctx.epoch
    ctx.store.set_state("fenced", fenced)
    done = common.state_map(ctx.store, "fence_confirmed")
    if confirmed:
        done[site] = f"epoch {ctx.epoch}"
    else:
        done.pop(site, None)  # the re-fencer journals the confirmation once it reaches the site
    ctx.store.set_state("fence_confirmed", done)


async def scale_down(kube: KubeClient, components: list[models.Component], velero_ns: str) -> int:
    """Scale every workload to 0 and pause the Velero schedules; returns how many were scaled."""
    scaled = await common.scale_components(kube, components, replicas=0, skip_missing=True)
    for schedule in await kube.list(kt.VELERO_SCHEDULES, velero_ns):
        if (schedule.get("spec") or {}).get("paused"):
            continue
        name = str(schedule["metadata"]["name"])
        await kube.patch(kt.VELERO_SCHEDULES, velero_ns, name, {"spec": {"paused": True}})
    return scaled


async def components_serving(svc: Services, site: str) -> list[str]:
    """The critical components whose user-facing probes still pass through ``site``'s ingress."""
    ep = svc.runtime.sites[site]
    if not ep.ingress_address:
        return []
    timeout = svc.runtime.config.health.timeout

    async def one(comp: models.Component) -> str | None:
        for p in comp.probes:
            if p.type != "http" or not p.hostname:
                continue
            try:
                async with asyncio.timeout(timeout):
                    await probes.http_component(svc.probe_session(), scheme=ep.ingress_scheme,
                                                address=str(ep.ingress_address), port=ep.ingress_port,
                                                fqdn=svc.runtime.fqdn(p.hostname), probe=p)
            except (TimeoutError, aiohttp.ClientError, probes.ProbeFailed, OSError):
                return None
            return comp.name
        return None

    critical = [c for c in svc.runtime.profile.components if c.critical and c.probes]
    answered = await asyncio.gather(*(one(c) for c in critical))
    return [name for name in answered if name is not None]


@registry.action("fence", params=FenceParams, timeout=30)
async def fence(ctx: StepContext, p: FenceParams) -> StepResult:
    """Stop the site (confirmed), or fence it by epoch and DNS when users cannot reach it (unconfirmed)."""
    svc = common.services(ctx)
    kube = svc.kube.get(p.site)
    detail = "no Kubernetes API configured"
    if kube is not None:
        try:
            async with asyncio.timeout(p.timeout):
                scaled = await scale_down(kube, list(svc.runtime.profile.components),
                                          svc.site(p.site).site.velero_namespace)
        except (TimeoutError, errors.FailoverError) as exc:
            detail = "timed out" if isinstance(exc, TimeoutError) else str(exc)
        else:
            await record_fenced(ctx, p.site)
            ctx.progress(f"{p.site} fenced: {scaled} workloads scaled to 0, backups paused")
            return {"site": p.site, "epoch": ctx.epoch, "reachable": True, "scaled": scaled, "confirmed": True}
    serving = await components_serving(svc, p.site)
    if serving and not p.override:
        raise errors.PermanentError(
            f"cannot fence {p.site}: its Kubernetes API is unreachable ({detail}) but users still reach it "
            f"({', '.join(serving[:4])} answer through its ingress); failing over now would leave two live "
            "copies of the workplace. Restore the API, or override: `failover run failover --to SITE "
            "--force --reason TEXT`")
    await record_fenced(ctx, p.site, confirmed=False)
    why = f"operator override ({p.override})" if serving else "users cannot reach it (its ingress fails)"
    output: StepResult = {"site": p.site, "epoch": ctx.epoch, "reachable": False, "scaled": 0, "confirmed": False,
                          "users_reach_site": bool(serving), "override": p.override or None}
    raise errors.UnconfirmedError(
        f"{p.site} unreachable ({detail}); fenced by epoch {ctx.epoch} and DNS only, not confirmed; {why}; "
        "the re-fencer keeps trying", output=output)

"""The run's bookends: hand over the active role with its measurements, keep backups going, notify.

``mark-active`` is the commit point of a failover: the target becomes the active site, the old one
stays fenced, and the run's measurements are recorded (RTO from outage start and from detection
to verified service; data-loss window from the restored backup to the outage start).
``enable-backups`` makes the new active site back up again (its BSL becomes ReadWrite and a
Schedule is created), so the remaining standbys keep receiving replicas.
"""

from __future__ import annotations

import logging
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from failover import replicate
from failover.actions import common
from failover.config import models
from failover.core import errors, secrets
from failover.core import kubetypes as kt
from failover.playbook import registry
from failover.playbook.engine import StepContext, StepResult
from failover.playbook.model import JSON

logger = logging.getLogger(__name__)


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MarkActiveParams(_Params):
    to: str
    source: str
    backup: str | None = None
    backup_completed_at: str | None = None
    outage_started_at: str | None = None
    detected_at: str | None = None
    verified_at: str | None = None


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return round((later - earlier).total_seconds(), 3)


@registry.action("mark-active", params=MarkActiveParams, timeout=10)
async def mark_active(ctx: StepContext, p: MarkActiveParams) -> StepResult:
    """Record the target as active, the source as fenced, and the run's RTO and data loss."""
    svc = common.services(ctx)
    now = svc.clock()
    roles: dict[str, JSON] = {s.name: s.role.value for s in svc.runtime.config.sites}
    roles.update(common.state_map(ctx.store, "roles"))
    roles[p.to] = models.Role.ACTIVE.value
    if p.source != p.to:
        roles[p.source] = models.Role.FENCED.value
    ctx.store.set_state("roles", roles)
    ctx.store.set_state("active", p.to)
    ctx.store.set_state("last_failover_at", now.isoformat())
    outage = common.parse_time(p.outage_started_at)
    detected = common.parse_time(p.detected_at)
    verified = common.parse_time(p.verified_at) or now
    completed = common.parse_time(p.backup_completed_at)
    window = _seconds(outage, completed)
    summary: StepResult = {
        "from": p.source, "to": p.to, "backup": p.backup,
        "backup_completed_at": p.backup_completed_at,
        "outage_started_at": p.outage_started_at, "detected_at": p.detected_at,
        "verified_at": verified.isoformat(),
        "rto_s": _seconds(verified, outage), "rto_from_detection_s": _seconds(verified, detected),
        # a backup completed after the outage began (its storage outlived the site) lost nothing
        "data_loss_window_s": None if window is None else max(0.0, window),
        "backup_after_outage_start": window is not None and window < 0,
    }
    ctx.progress(f"{p.to} is now active; {p.source} stays fenced")
    return summary


class EnableBackupsParams(_Params):
    site: str
    schedule: str = "@every 10m"
    name: str = "opendesk"


@registry.action("enable-backups", params=EnableBackupsParams, timeout=60)
async def enable_backups(ctx: StepContext, p: EnableBackupsParams) -> StepResult:
    """Make the (new) active site write backups: BSL ReadWrite, a Schedule for the workplace."""
    svc = common.services(ctx)
    site = svc.site(p.site).site
    kube = svc.kube_for(p.site)
    ns = site.velero_namespace
    await kube.patch(kt.VELERO_BSLS, ns, site.bsl, {"spec": {"accessMode": "ReadWrite"}})
    namespaces = sorted({c.namespace for c in svc.runtime.profile.components})
    schedule = {
        "apiVersion": "velero.io/v1", "kind": "Schedule",
        "metadata": {"name": p.name, "namespace": ns},
        "spec": {"schedule": p.schedule, "template": {"includedNamespaces": namespaces,
                                                        "storageLocation": site.bsl, "ttl": "720h0m0s"}},
    }
    _, created = await kube.ensure(kt.VELERO_SCHEDULES, schedule)
    if not created:
        await kube.patch(kt.VELERO_SCHEDULES, ns, p.name, {"spec": {"paused": False, "schedule": p.schedule}})
    return {"site": p.site, "schedule": p.schedule, "created": created}


class NotifyParams(_Params):
    event: str = "failover"
    message: str = ""
    urls: list[str] | None = None


@registry.action("notify", params=NotifyParams, timeout=20, mutating=False)
async def notify(ctx: StepContext, p: NotifyParams) -> StepResult:
    """POST a JSON notice to every webhook; a failing webhook never fails the run."""
    svc = common.services(ctx)
    urls = p.urls if p.urls is not None else list(svc.runtime.config.notify)
    delivered, failed = 0, list[JSON]()
    for url in urls:
        try:
            r = await svc.http.post(url, json={"event": p.event, "run": ctx.run_id, "message": p.message})
            r.raise_for_status()
            delivered += 1
        except Exception as exc:  # a notifier must never abort a failover
            failed.append(f"{url}: {type(exc).__name__}")
            logger.warning("notify %s failed: %s", url, secrets.redact(str(exc)))
    return {"delivered": delivered, "failed": failed}


class QuiesceParams(_Params):
    site: str
    timeout: float = 60.0


@registry.action("quiesce", params=QuiesceParams, timeout=120)
async def quiesce(ctx: StepContext, p: QuiesceParams) -> StepResult:
    """Stop writes on the source before a planned switchover: scale the stateful apps to zero.

    The final backup then holds them at zero replicas; ``velero-restore`` sets every restored
    workload back to the profile's replica count, so the target serves again."""
    svc = common.services(ctx)
    kube = svc.kube_for(p.site)
    comps = [c for c in common.components_of(svc, strategy=models.Strategy.RESTORE) if c.stateful]
    scaled = await common.scale_components(kube, comps, replicas=0, skip_missing=True)
    ctx.progress(f"{scaled} workloads of {len(comps)} stateful apps stopped; no more writes on {p.site}")
    return {"site": p.site, "scaled": scaled}


class FinalBackupParams(_Params):
    site: str
    timeout: float = 600.0


@registry.action("final-backup", params=FinalBackupParams, timeout=900)
async def final_backup(ctx: StepContext, p: FinalBackupParams) -> StepResult:
    """Take one last backup on the quiesced source (deterministic name: created once)."""
    svc = common.services(ctx)
    site = svc.site(p.site).site
    kube = svc.kube_for(p.site)
    name = common.k8s_name("final", ctx.run_id)
    namespaces = sorted({c.namespace for c in svc.runtime.profile.components})
    await kube.ensure(kt.VELERO_BACKUPS, {
        "apiVersion": "velero.io/v1", "kind": "Backup",
        "metadata": {"name": name, "namespace": site.velero_namespace},
        "spec": {"includedNamespaces": namespaces, "storageLocation": site.bsl, "ttl": "720h0m0s"},
    })

    async def done() -> dict[str, object] | None:
        obj = await kube.get(kt.VELERO_BACKUPS, site.velero_namespace, name)
        phase = str(((obj or {}).get("status") or {}).get("phase") or "New")
        if phase in ("Failed", "FailedValidation"):
            raise errors.PermanentError(f"final backup {name} on {p.site} ended {phase}")
        return obj if phase in ("Completed", "PartiallyFailed") else None

    await common.poll(done, timeout=p.timeout, interval=0.3, what=f"final backup {name}")
    ctx.progress(f"final backup {name} completed")
    return {"backup": name}


class ReplicateBackupParams(_Params):
    source: str
    target: str
    backup: str


@registry.action("replicate-backup", params=ReplicateBackupParams, timeout=900)
async def replicate_backup(ctx: StepContext, p: ReplicateBackupParams) -> StepResult:
    """Copy one backup to the target's bucket now (side files first, metadata last)."""
    svc = common.services(ctx)
    src, dst = svc.site(p.source).storage, svc.site(p.target).storage
    if src is None or dst is None:
        raise errors.PermanentError("both sites need storage configured to replicate")
    copied = await replicate.replicate_backup(src, dst, p.backup)
    return {"backup": p.backup, "objects_copied": copied}

"""Restoring the workplace on the target: pick the backup, restore group by group, wait, scale.

Restores are Velero ``Restore`` objects created through the target cluster's API, one per restore
group, with a **deterministic name** (run id + group): after a crash the resumed step finds the
Restore it created before and waits for it instead of creating a second one. Objects are selected
by namespace *and* labels (openDesk shares one namespace between apps), and
``existingResourcePolicy: update`` makes a repeated restore converge instead of failing.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from failover.actions import common
from failover.config import models
from failover.core import errors
from failover.core import kubetypes as kt
from failover.kube import KubeClient, workload_ready
from failover.playbook import registry
from failover.playbook.engine import StepContext, StepResult
from failover.velero import bucket, verify

#: Velero Restore phases after which nothing changes any more (restore_types.go)
TERMINAL_PHASES = frozenset({"Completed", "PartiallyFailed", "Failed", "FailedValidation"})


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SelectBackupParams(_Params):
    site: str
    rpo: float | None = Field(default=None, description="seconds; default: policy.rpo")
    allow_stale: bool = Field(default=False, description="proceed with a backup older than the RPO")
    backup: str | None = Field(default=None, description="use this backup instead of the newest")


@registry.action("select-backup", params=SelectBackupParams, timeout=120, mutating=False)
async def select_backup(ctx: StepContext, p: SelectBackupParams) -> StepResult:
    """The newest backup in the target's bucket that verifies (within the RPO unless overridden).

    Backups that fail verification are marked bad in the store and skipped: the choice falls back
    to the next good one (see :mod:`failover.velero.verify`).
    """
    svc = common.services(ctx)
    loc = svc.site(p.site).storage
    if loc is None:
        raise errors.PermanentError(f"site {p.site} has no storage configured")
    rpo = p.rpo if p.rpo is not None else svc.runtime.config.policy.rpo
    choice = await verify.choose(loc, bad=verify.bad_backups(ctx.store, p.site), now=svc.clock(), rpo=rpo,
                                 allow_stale=p.allow_stale, name=p.backup or None)
    for name, why in choice.newly_bad:
        verify.mark_bad(ctx.store, p.site, name, why)
        ctx.progress(f"backup {name} on {p.site} is bad and was marked so: {why}")
    skipped = "; ".join(f"{name}: {why}" for name, why in choice.skipped)
    info = choice.info
    if info is None or info.completion_timestamp is None:
        what = f"backup {p.backup}" if p.backup else "no good complete backup"
        raise errors.PermanentError(
            f"{what} on {p.site} can be restored{' (' + skipped + ')' if skipped else ''}; "
            + ("re-run with allow_stale to accept an older one" if not p.allow_stale else "cannot restore"))
    completed = info.completion_timestamp
    age = (svc.clock() - completed).total_seconds()
    groups = sorted({c.group for c in common.components_of(svc, strategy=models.Strategy.RESTORE)})
    ctx.progress(f"selected backup {info.name} ({age:.0f}s old, RPO {rpo:.0f}s, verified)"
                 + (f"; skipped {skipped}" if choice.newly_bad or any("bad" in w for _, w in choice.skipped) else ""))
    return {"backup": info.name, "completed_at": completed.isoformat(), "age_s": round(age, 3),
            "groups": list(groups), "skipped": [{"backup": n, "why": w} for n, w in choice.skipped]}


class RestoreParams(_Params):
    site: str
    backup: str
    group: int
    allow_partially_failed: bool = True
    wait_ready: bool = True
    timeout: float = 900.0


def restore_object(ctx: StepContext, p: RestoreParams, components: list[models.Component],
                   namespace: str) -> dict[str, object]:
    name = common.k8s_name("restore", ctx.run_id, f"g{p.group}")
    return {
        "apiVersion": "velero.io/v1", "kind": "Restore",
        "metadata": {"name": name, "namespace": namespace, "labels": {
            "failover.io/run": common.k8s_name(ctx.run_id), "failover.io/group": str(p.group),
            "failover.io/epoch": str(ctx.epoch)}},
        "spec": {
            "backupName": p.backup,
            "includedNamespaces": sorted({c.namespace for c in components}),
            "orLabelSelectors": [{"matchLabels": dict(c.selector)} for c in components if c.selector],
            "existingResourcePolicy": "update",
            "restorePVs": True,
        },
    }


async def _ensure_namespaces(kube: KubeClient, names: set[str]) -> None:
    for ns in sorted(names):
        await kube.ensure(kt.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})


@registry.action("velero-restore", params=RestoreParams, timeout=1200)
async def velero_restore(ctx: StepContext, p: RestoreParams) -> StepResult:
    """Create (once) and await the Velero Restore of one restore group on the target."""
    svc = common.services(ctx)
    comps = common.components_of(svc, group=p.group, strategy=models.Strategy.RESTORE)
    if not comps:
        return {"restore": None, "phase": "Skipped", "components": []}
    kube = svc.kube_for(p.site)
    velero_ns = svc.site(p.site).site.velero_namespace
    await common.poll(lambda: kube.get(kt.VELERO_BACKUPS, velero_ns, p.backup), timeout=120,
                      what=f"backup {p.backup} to appear on {p.site} (BSL sync)")
    await _ensure_namespaces(kube, {c.namespace for c in comps})
    obj, created = await kube.ensure(kt.VELERO_RESTORES, restore_object(ctx, p, comps, velero_ns))
    name = str(obj["metadata"]["name"])
    ctx.progress(f"{'created' if created else 'resuming'} Restore {name} "
                 f"({', '.join(c.name for c in comps)})")
    last: list[str] = [""]

    async def finished() -> dict[str, Any] | None:
        current = await kube.get(kt.VELERO_RESTORES, velero_ns, name)
        if current is None:
            raise errors.PermanentError(f"Restore {name} disappeared from {p.site}")
        status = current.get("status") or {}
        phase = str(status.get("phase") or "New")
        progress = status.get("progress") or {}
        line = f"Restore {name}: {phase} {progress.get('itemsRestored', 0)}/{progress.get('totalItems', '?')}"
        if line != last[0]:
            last[0] = line
            ctx.progress(line)
        return status if phase in TERMINAL_PHASES else None

    status = await common.poll(finished, timeout=p.timeout, interval=0.3, what=f"Restore {name}")
    phase = str(status.get("phase"))
    result: StepResult = {"restore": name, "phase": phase, "warnings": int(status.get("warnings") or 0),
                          "errors": int(status.get("errors") or 0), "created": created,
                          "components": [c.name for c in comps]}
    if phase == "Completed" or (phase == "PartiallyFailed" and p.allow_partially_failed):
        if p.wait_ready:
            # the backup may hold a workload at zero (a quiesced source): converge to the profile
            await common.scale_components(kube, comps)
            result["workloads_ready"] = await _wait_workloads(ctx, kube, comps, p.timeout)
        return result
    reason = status.get("failureReason") or "; ".join(map(str, status.get("validationErrors") or [])) or phase
    bad = await _backup_is_bad(ctx, p, str(reason))
    raise errors.PermanentError(f"Restore {name} on {p.site} ended {phase}: {reason}"
                                + (f"; backup {p.backup} marked bad ({bad}): the next run restores "
                                   "an older good backup or uses the next ready standby" if bad else ""))


async def _backup_is_bad(ctx: StepContext, p: RestoreParams, reason: str) -> str | None:
    """After a failed Restore: verify the backup again (uncached); a bad one is marked so."""
    svc = common.services(ctx)
    loc = svc.site(p.site).storage
    if loc is None:
        return None
    try:
        info = await bucket.read_backup(loc, p.backup)
        why = await verify.problem(loc, info)
    except errors.TemporaryError:
        return None  # the storage is unreachable: that says nothing about the backup
    except errors.PermanentError as exc:  # metadata gone or unreadable
        why = str(exc)
    if why is None and any(w in reason.lower() for w in ("compressed", "gzip", "tar", "eof", "checksum")):
        why = f"Velero could not read it: {reason}"
    if why is not None:
        verify.mark_bad(ctx.store, p.site, p.backup, why)
    return why


class WaitReadyParams(_Params):
    site: str
    group: int | None = None
    strategy: models.Strategy | None = None
    timeout: float = 600.0


async def _wait_workloads(ctx: StepContext, kube: KubeClient, comps: list[models.Component],
                          timeout: float) -> int:
    pending = {(c.namespace, w.kind, w.name) for c in comps for w in c.workloads}
    total = len(pending)

    async def check() -> bool | None:
        for ns, kind, name in sorted(pending):
            obj = await kube.get(common.workload_type(kind), ns, name)
            if obj is not None and workload_ready(obj):
                pending.discard((ns, kind, name))
        if pending:
            ctx.progress(f"{total - len(pending)}/{total} workloads ready")
            return None
        return True

    await common.poll(check, timeout=timeout, interval=0.3, what="workloads to become ready")
    return total


@registry.action("wait-ready", params=WaitReadyParams, timeout=900, mutating=False)
async def wait_ready(ctx: StepContext, p: WaitReadyParams) -> StepResult:
    """Wait until every workload of the selected components is ready on the site."""
    svc = common.services(ctx)
    comps = common.components_of(svc, group=p.group, strategy=p.strategy)
    count = await _wait_workloads(ctx, svc.kube_for(p.site), comps, p.timeout)
    return {"workloads": count, "components": [c.name for c in comps]}


class ScaleParams(_Params):
    site: str
    strategy: models.Strategy = models.Strategy.SCALE
    to_zero: bool = False
    timeout: float = 600.0


@registry.action("scale", params=ScaleParams, timeout=900)
async def scale(ctx: StepContext, p: ScaleParams) -> StepResult:
    """Scale the pre-deployed components to their configured replicas (or to zero) and wait."""
    svc = common.services(ctx)
    kube = svc.kube_for(p.site)
    comps = common.components_of(svc, strategy=p.strategy)
    scaled = await common.scale_components(kube, comps, replicas=0 if p.to_zero else None)
    ctx.progress(f"scaled {scaled} workloads of {len(comps)} components")
    if not p.to_zero:
        await _wait_workloads(ctx, kube, comps, p.timeout)
    return {"scaled": scaled, "components": [c.name for c in comps]}

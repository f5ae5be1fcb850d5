"""The production-safe test failover: prove on a real standby that the newest replicated backup
restores and serves — without fencing, without DNS, without touching the active site.

Azure Site Recovery's "test failover" in our terms: the newest complete backup in the standby's
bucket is restored with Velero ``namespaceMapping`` into drill namespaces (``<label>-<ns>``), its
workloads are scaled to the profile's replicas, and every app is verified through the standby's
ingress with the drill's own hostnames as ``Host`` headers. Then everything the drill created is
removed. Only the standby's Kubernetes API and bucket are used; the only objects written are in
the journal *before* they are created, so a drill killed at any point is finished by
:func:`cleanup` (``failover drill cleanup``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from failover import kubeaccess
from failover.actions import common
from failover.config import models
from failover.config.runtime import Runtime, SiteEndpoints
from failover.core import errors
from failover.core import kubetypes as kt
from failover.drill import journal as journal_mod
from failover.drill import naming
from failover.drill.model import StepTiming
from failover.kube import KubeClient, workload_ready
from failover.velero import bucket
from providers import registry
from providers.base import Provider

logger = logging.getLogger(__name__)

TERMINAL = frozenset({"Completed", "PartiallyFailed", "Failed", "FailedValidation"})
Say = Callable[[str], None]


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class TestFailoverResult:
    standby: str
    backup: str | None = None
    backup_completed_at: datetime | None = None
    verified_at: datetime | None = None
    steps: list[StepTiming] = field(default_factory=list)
    verification: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    left_over: list[str] = field(default_factory=list)


def kube_for(rt: Runtime, ep: SiteEndpoints) -> KubeClient:
    """The standby's client exactly as the daemon builds it (kubeconfig, api+token, or the provider's)."""

    def provider(name: str) -> Provider | None:
        settings = rt.providers.get(name)
        return None if settings is None else registry.create(settings)

    return kubeaccess.client_for(ep, timeout=kubeaccess.request_timeout(rt.config.health), provider=provider)


class _Step:
    """Times one drill step and appends it to the result (an error is recorded, then re-raised)."""

    def __init__(self, result: TestFailoverResult, key: str, say: Say) -> None:
        self.result, self.key, self.say = result, key, say
        self.detail = ""

    async def __aenter__(self) -> _Step:
        self.started = now()
        self.say(f"step {self.key} ...")
        return self

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        end = now()
        status = "succeeded" if exc is None else "failed"
        detail = self.detail if exc is None else str(exc)
        self.result.steps.append(StepTiming(key=self.key, status=status, started_at=self.started, finished_at=end,
                                            duration_s=round((end - self.started).total_seconds(), 3),
                                            detail=detail))
        self.say(f"step {self.key} {status} in {(end - self.started).total_seconds():.1f}s {detail}")


async def run(rt: Runtime, journal: journal_mod.DrillJournal, row: journal_mod.DrillRow, *, standby: str,
              say: Say, timeout: float = 600.0) -> TestFailoverResult:
    """Restore, scale, verify, clean up. Raises only for what stops the drill before it restored."""
    ep = rt.sites[standby]
    if ep.storage is None:
        raise errors.PermanentError(f"standby {standby} has no bucket configured")
    result = TestFailoverResult(standby=standby)
    kube = kube_for(rt, ep)
    try:
        try:
            await _restore_and_verify(rt, journal, row, kube, ep, result, say, timeout)
        except errors.FailoverError as exc:
            result.failed.append(str(exc))
        async with _Step(result, "cleanup", say) as step:
            result.left_over = await cleanup_drill(rt, journal, row, kube=kube, say=say)
            step.detail = "nothing left" if not result.left_over else f"LEFT: {', '.join(result.left_over)}"
    finally:
        await kube.aclose()
    return result


async def _restore_and_verify(rt: Runtime, journal: journal_mod.DrillJournal, row: journal_mod.DrillRow,
                              kube: KubeClient, ep: SiteEndpoints, result: TestFailoverResult, say: Say,
                              timeout: float) -> None:
    assert ep.storage is not None
    profile, velero_ns = rt.profile, ep.site.velero_namespace
    async with _Step(result, "select-backup", say) as step:
        info = await bucket.newest_complete(ep.storage)
        if info is None or info.completion_timestamp is None:
            raise errors.PermanentError(f"no complete backup in the bucket of {ep.name}")
        result.backup, result.backup_completed_at = info.name, info.completion_timestamp
        step.detail = f"{info.name} (completed {info.completion_timestamp.isoformat()})"
        await common.poll(lambda: kube.get(kt.VELERO_BACKUPS, velero_ns, info.name), timeout=120,
                          what=f"backup {info.name} to appear on {ep.name} (BSL sync)")
    mapping = {ns: naming.namespace(row.label, ns) for ns in sorted({c.namespace for c in profile.components})}
    async with _Step(result, "restore", say) as step:
        for target in mapping.values():
            journal.plan_resource(row.seq, site=ep.name, kind="namespace", namespace=None, name=target)
            await kube.ensure(kt.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {
                "name": target, "labels": {naming.LABEL_KEY: row.label}}})
        name = f"{row.label}-restore"
        journal.plan_resource(row.seq, site=ep.name, kind="restore", namespace=velero_ns, name=name)
        await kube.ensure(kt.VELERO_RESTORES, _restore(name, velero_ns, row.label, str(result.backup), mapping,
                                                       profile.components))
        status = await common.poll(lambda: _terminal(kube, velero_ns, name), timeout=timeout, interval=0.3,
                                   what=f"Restore {name}")
        progress = status.get("progress")
        restored = progress.get("itemsRestored", 0) if isinstance(progress, dict) else 0
        step.detail = f"Restore {name}: {status.get('phase')} ({restored} items)"
        if status.get("phase") not in ("Completed", "PartiallyFailed"):
            raise errors.PermanentError(f"Restore {name} ended {status.get('phase')}: "
                                        f"{status.get('failureReason') or status.get('validationErrors')}")
    async with _Step(result, "scale", say) as step:
        count = await _scale(kube, profile.components, mapping)
        await common.poll(lambda: _all_ready(kube, profile.components, mapping), timeout=timeout, interval=0.3,
                          what="drill workloads to become ready")
        step.detail = f"{count} workloads ready in {', '.join(mapping.values())}"
    async with _Step(result, "verify", say) as step:
        result.verification = await _verify(rt, ep, row.label)
        result.verified_at = now()
        step.detail = f"{len(result.verification)} checks passed through {ep.name}'s ingress"


def _restore(name: str, velero_ns: str, label: str, backup: str, mapping: dict[str, str],
             components: tuple[models.Component, ...]) -> dict[str, object]:
    return {
        "apiVersion": "velero.io/v1", "kind": "Restore",
        "metadata": {"name": name, "namespace": velero_ns, "labels": {naming.LABEL_KEY: label}},
        "spec": {"backupName": backup, "includedNamespaces": sorted(mapping),
                 "namespaceMapping": mapping,
                 "orLabelSelectors": [{"matchLabels": dict(c.selector)} for c in components if c.selector],
                 "existingResourcePolicy": "none", "restorePVs": True},
    }


async def _terminal(kube: KubeClient, namespace: str, name: str) -> dict[str, object] | None:
    obj = await kube.get(kt.VELERO_RESTORES, namespace, name)
    if obj is None:
        raise errors.PermanentError(f"Restore {name} disappeared")
    status = obj.get("status") or {}
    return dict(status) if status.get("phase") in TERMINAL else None


async def _scale(kube: KubeClient, components: tuple[models.Component, ...], mapping: dict[str, str]) -> int:
    count = 0
    for c in components:
        for w in c.workloads:
            rt = common.workload_type(w.kind)
            obj = await kube.get(rt, mapping[c.namespace], w.name)
            if obj is None:
                raise errors.PermanentError(f"{w.kind} {mapping[c.namespace]}/{w.name} was not restored")
            if int((obj.get("spec") or {}).get("replicas", 1)) != w.replicas:
                await kube.scale(rt, mapping[c.namespace], w.name, w.replicas)
            count += 1
    return count


async def _all_ready(kube: KubeClient, components: tuple[models.Component, ...],
                     mapping: dict[str, str]) -> bool | None:
    for c in components:
        for w in c.workloads:
            obj = await kube.get(common.workload_type(w.kind), mapping[c.namespace], w.name)
            if obj is None or not workload_ready(obj):
                return None
    return True


async def _verify(rt: Runtime, ep: SiteEndpoints, label: str) -> list[str]:
    """Every component's HTTP probe through the standby's ingress, with the drill's hostnames."""
    passed: list[str] = []
    async with httpx.AsyncClient(timeout=rt.config.health.timeout, verify=rt.config.health.verify_tls) as client:
        for comp in rt.profile.components:
            for probe in comp.probes:
                if probe.type != "http" or not probe.hostname:
                    continue
                host = naming.hostname(label, probe.hostname, rt.zone)
                url = f"{ep.ingress_scheme}://{ep.ingress_address}:{ep.ingress_port}{probe.path}"

                async def once(url: str = url, host: str = host,
                               probe: models.Probe = probe) -> httpx.Response | None:
                    try:
                        response = await client.get(url, headers={"Host": host}, extensions={"sni_hostname": host})
                    except httpx.HTTPError:
                        return None
                    return response if response.status_code == probe.expect_status else None

                response = await common.poll(once, timeout=30, interval=0.5, what=f"{host}{probe.path}")
                if probe.expect_body and probe.expect_body not in response.text:
                    raise errors.PermanentError(f"{host}{probe.path}: body lacks {probe.expect_body!r}")
                passed.append(f"{comp.name}: {host}{probe.path} -> {response.status_code}")
    return passed


# --- cleanup -----------------------------------------------------------------------------------------

async def cleanup_drill(rt: Runtime, journal: journal_mod.DrillJournal, row: journal_mod.DrillRow, *,
                        kube: KubeClient | None = None, say: Say = lambda _: None) -> list[str]:
    """Remove everything ``row`` created (journaled, plus anything carrying its label); returns
    what is still there afterwards (empty when clean)."""
    left: list[str] = []
    by_site: dict[str, list[journal_mod.Resource]] = {}
    for res in journal.resources(row.seq):
        by_site.setdefault(res.site, []).append(res)
    for site, resources in by_site.items():
        client = kube or kube_for(rt, rt.sites[site])
        try:
            left += await _cleanup_site(journal, row, client, resources, rt.sites[site].site.velero_namespace, say)
        finally:
            if kube is None:
                await client.aclose()
    return left


async def _cleanup_site(journal: journal_mod.DrillJournal, row: journal_mod.DrillRow, kube: KubeClient,
                        resources: list[journal_mod.Resource], velero_ns: str, say: Say) -> list[str]:
    restores = [r for r in resources if r.kind == "restore"]
    # a Restore still running would recreate what we delete: let it end first (bounded)
    for res in restores:
        try:
            await common.poll(lambda res=res: _gone_or_terminal(kube, str(res.namespace), res.name),  # type: ignore[misc]
                              timeout=120, interval=0.5, what=f"Restore {res.name} to end")
        except errors.TemporaryError as exc:
            say(f"cleanup: {exc}; deleting it anyway")
    labelled = await kube.list(kt.VELERO_RESTORES, velero_ns, label_selector=f"{naming.LABEL_KEY}={row.label}")
    names = {r.name for r in restores} | {str(o["metadata"]["name"]) for o in labelled}
    for name in sorted(names):
        if await kube.delete(kt.VELERO_RESTORES, velero_ns, name):
            say(f"cleanup: deleted Restore {name}")
    spaces = {r.name for r in resources if r.kind == "namespace"}
    spaces |= {str(o["metadata"]["name"]) for o in await kube.list(kt.NAMESPACES)
               if str(o["metadata"]["name"]).startswith(row.label + "-")}
    for ns in sorted(spaces):
        if await kube.delete(kt.NAMESPACES, None, ns):
            say(f"cleanup: deleted namespace {ns} (and its workloads)")
    for res in resources:
        journal.resource_removed(res.id)
    await asyncio.sleep(0)
    left = [f"namespace {o['metadata']['name']}" for o in await kube.list(kt.NAMESPACES)
            if str(o["metadata"]["name"]).startswith(row.label + "-")]
    left += [f"Restore {o['metadata']['name']}" for o in await kube.list(
        kt.VELERO_RESTORES, velero_ns, label_selector=f"{naming.LABEL_KEY}={row.label}")]
    return left


async def _gone_or_terminal(kube: KubeClient, namespace: str, name: str) -> bool | None:
    obj = await kube.get(kt.VELERO_RESTORES, namespace, name)
    if obj is None:
        return True
    return True if (obj.get("status") or {}).get("phase") in TERMINAL else None


async def cleanup_open(rt: Runtime, journal: journal_mod.DrillJournal, *, say: Say,
                       force: bool = False) -> list[tuple[str, list[str]]]:
    """Clean up every drill whose process is gone (or all open ones with ``force``)."""
    done: list[tuple[str, list[str]]] = []
    for row in journal.open_drills():
        if journal_mod.process_alive(row) and not force:
            say(f"drill {row.id} is still running (pid {row.pid}); not touching it (use --force)")
            continue
        journal.set_status(row.seq, "cleaning")
        left = await cleanup_drill(rt, journal, row, say=say)
        journal.event(row.seq, "cleanup", "cleaned up after the drill was interrupted" if not left
                      else f"cleanup left: {', '.join(left)}")
        journal.set_status(row.seq, "interrupted" if not left else "cleaning")
        done.append((row.id, left))
    return done


async def cleanup_at_start(rt: Runtime) -> list[tuple[str, list[str]]]:
    """What the daemon runs once when it starts: clean up every drill whose process is gone (a
    drill killed with kill -9 leaves Restores, namespaces and workloads on a standby). Never raises:
    a cleanup that fails is logged, and ``failover drill cleanup`` remains."""
    try:
        journal = journal_mod.DrillJournal.open(rt.state_dir)
    except errors.FailoverError as exc:
        logger.warning("drill cleanup at start skipped: %s", exc)
        return []
    try:
        if not journal.open_drills():
            return []
        done = await cleanup_open(rt, journal, say=lambda text: logger.warning("drill cleanup: %s", text))
    except Exception as exc:  # a guard: the daemon's start must not depend on a drill's leftovers
        logger.warning("drill cleanup at start failed (run `failover drill cleanup`): %s", exc)
        return []
    finally:
        journal.close()
    for drill, left in done:
        logger.warning("drill %s was interrupted; cleaned up at daemon start%s", drill,
                       f"; LEFT: {', '.join(left)}" if left else "")
    return done

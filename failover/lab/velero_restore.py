"""One Velero Restore, executed by the lab's controller: validate, read the tarball, create objects.

Split from :mod:`failover.lab.velero_controller` because a restore is the part the failover product
depends on most: its validation messages, phases, ``warnings``/``errors`` counters and the order
objects appear in are what the product's restore step waits on and reports. The rules follow
Velero's restore controller (``pkg/restore/restore.go``): namespaces first, then Velero's priority
list; server-set metadata and status stripped; ``velero.io/backup-name`` and
``velero.io/restore-name`` labels added; an existing object is skipped with a warning (policy
``none``) or replaced (policy ``update``, an error if that fails).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from failover import s3
from failover.core import errors, retry, secrets
from failover.lab.kube import types as kt
from failover.velero import bucket, models, selection, tarball

if TYPE_CHECKING:
    from failover.lab.velero_controller import VeleroController

logger = logging.getLogger(__name__)

BACKUP_NAME_LABEL = "velero.io/backup-name"
RESTORE_NAME_LABEL = "velero.io/restore-name"
POLICIES = ("", "none", "update")
BSL_UNAVAILABLE_MESSAGE = "The BSL %s is unavailable, cannot retrieve the backup"
_PVC_ANNOTATIONS = ("pv.kubernetes.io/bind-completed", "pv.kubernetes.io/bound-by-controller")


@dataclass
class _Tally:
    restored: int = 0
    warnings: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    resource_list: dict[str, list[str]] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    @staticmethod
    def _add(target: dict[str, list[str]], scope: str, message: str) -> None:
        target.setdefault(scope, []).append(message)

    def warn(self, scope: str, message: str) -> None:
        self._add(self.warnings, scope, message)
        self.log.append(f"warning: {message}")

    def error(self, scope: str, message: str) -> None:
        self._add(self.errors, scope, message)
        self.log.append(f"error: {message}")

    def result(self, which: dict[str, list[str]]) -> models.Result:
        return models.Result(velero=tuple(which.get("", [])), cluster=tuple(which.get("cluster", [])),
                             namespaces={k: tuple(v) for k, v in which.items() if k not in ("", "cluster")})


class RestoreRun:
    """The work of one Restore object; :meth:`validate` is synchronous, :meth:`execute` async."""

    def __init__(self, controller: VeleroController, obj: kt.KubeObject) -> None:
        self.c = controller
        self.obj = obj
        self.name = str(obj["metadata"]["name"])
        self.spec: Mapping[str, Any] = obj.get("spec") or {}
        self.backup: kt.KubeObject | None = None
        self.tally = _Tally()
        self.claims: set[tuple[str, str]] = set()  #: (namespace, name) of the claims restored or present

    # --- validation -------------------------------------------------------------------------------
    def validate(self) -> list[str]:
        """Every problem of the spec (Velero collects them all into status.validationErrors)."""
        spec, problems = self.spec, []
        backup_name, schedule = spec.get("backupName") or "", spec.get("scheduleName") or ""
        if bool(backup_name) == bool(schedule):
            problems.append("Either a backup or schedule must be specified as a source for the restore, but not both")
        if spec.get("existingResourcePolicy", "") not in POLICIES:
            problems.append(f"Invalid ExistingResourcePolicy: {spec.get('existingResourcePolicy')}")
        if spec.get("labelSelector") is not None and spec.get("orLabelSelectors"):
            problems.append("encountered labelSelector as well as orLabelSelectors in restore spec, "
                            "only one can be specified")
        if backup_name and not schedule:
            try:
                self.backup = self.c.store.get(kt.VELERO_BACKUPS, self.c.namespace, str(backup_name))
            except kt.NotFound:
                problems.append(f"Error retrieving backup: backups.velero.io \"{backup_name}\" not found")
        elif schedule and not backup_name:
            self.backup = self._newest_of_schedule(str(schedule))
            if self.backup is None:
                problems.append(f"No completed backups found for schedule {schedule}")
        if self.backup is not None:
            phase = (self.backup.get("status") or {}).get("phase")
            if phase not in (models.BackupPhase.COMPLETED, models.BackupPhase.PARTIALLY_FAILED):
                problems.append(f"backup {self.backup['metadata']['name']} is in phase {phase!r}; "
                                "only Completed or PartiallyFailed backups can be restored")
        return problems

    def _newest_of_schedule(self, schedule: str) -> kt.KubeObject | None:
        found = self.c.store.list(kt.VELERO_BACKUPS, self.c.namespace,
                                  label_selector=f"velero.io/schedule-name={schedule}")[0]
        done = [b for b in found if (b.get("status") or {}).get("phase") == models.BackupPhase.COMPLETED]
        return max(done, key=lambda b: str((b.get("status") or {}).get("startTimestamp", "")), default=None)

    # --- execution --------------------------------------------------------------------------------
    async def execute(self) -> None:
        assert self.backup is not None  # validate() succeeded
        backup_name = str(self.backup["metadata"]["name"])
        bsl_name = str((self.backup.get("spec") or {}).get("storageLocation")
                       or self.backup["metadata"].get("labels", {}).get("velero.io/storage-location") or "default")
        bsl = self.c.bsl(bsl_name)
        loc = self.c.location_of(bsl)[0] if bsl is not None else None
        if self.spec.get("scheduleName"):
            self.c.store.patch(kt.VELERO_RESTORES, self.c.namespace, self.name, {"spec": {"backupName": backup_name}})
        if bsl is None or loc is None or not await self.c.bsl_available(bsl_name):
            return self._finish(models.RestorePhase.FAILED, failure=BSL_UNAVAILABLE_MESSAGE % bsl_name)
        try:
            contents = await retry.call(lambda: bucket.read_contents(loc, backup_name), attempts=3, base_delay=0.2)
        except errors.FailoverError as exc:
            return self._finish(models.RestorePhase.FAILED,
                                failure=secrets.redact(f"error reading backup {backup_name}: {exc}"))
        plan = self.plan(contents.items)
        self._progress(len(plan), 0)
        for item in plan:
            if self.c.item_delay > 0:
                await asyncio.sleep(self.c.item_delay)
            self.restore_item(item, backup_name)
            self._progress(len(plan), self.tally.restored)
        await self._restore_volumes(loc, backup_name)
        phase = models.RestorePhase.PARTIALLY_FAILED if self.tally.errors else models.RestorePhase.COMPLETED
        if (bsl.get("spec") or {}).get("accessMode", "ReadWrite") != "ReadOnly":
            await self._upload(loc)  # as Velero: results and logs are in the bucket before the terminal phase
        self._finish(phase)
        return None

    async def _restore_volumes(self, loc: s3.S3Location, backup_name: str) -> None:
        """PodVolumeRestores: the restored claims' data from the kopia repository (errors counted)."""
        if self.c.fsb is None or not self.claims:
            return
        mapping = {str(k): str(v) for k, v in (self.spec.get("namespaceMapping") or {}).items()}
        done, problems = await self.c.fsb.restore(loc, backup_name, restored=self.claims, mapping=mapping)
        for scope, message in problems:
            self.tally.error(scope, message)
        self.tally.log.append(f"restored {done} pod volumes from kopia")

    def plan(self, items: tuple[tarball.Item, ...]) -> list[tarball.Item]:
        """The selected items in Velero's restore order (namespaces included for selected namespaces)."""
        sel = selection.Selection.from_spec(self.spec)
        chosen = []
        for item in items:
            if item.group_resource in selection.NON_RESTORABLE:
                continue
            labels = (item.obj.get("metadata") or {}).get("labels") or {}
            if item.group_resource == "namespaces":
                ok = sel.namespaces.matches(item.name)
            else:
                ok = sel.matches(group=item.group, plural=item.resource, kind=str(item.obj.get("kind", "")),
                                 namespace=item.namespace, labels=labels)
            if ok:
                chosen.append(item)
        return sorted(chosen, key=lambda i: (selection.restore_rank(i.group_resource), i.namespace or "", i.name))

    def _target_ns(self, namespace: str) -> str:
        mapping = self.spec.get("namespaceMapping") or {}
        return str(mapping.get(namespace, namespace))

    def _prepare(self, item: tarball.Item, backup_name: str) -> dict[str, Any]:
        status_sel = self.spec.get("restoreStatus")
        keep = isinstance(status_sel, Mapping) and selection.ResourceFilter(
            tuple(status_sel.get("includedResources") or ()), tuple(status_sel.get("excludedResources") or ())
        ).matches(group=item.group, plural=item.resource, kind=str(item.obj.get("kind", ""))) and bool(
            status_sel.get("includedResources"))
        obj = selection.strip_for_restore(item.obj, keep_status=keep)
        meta = obj["metadata"]
        meta["labels"] = {**(meta.get("labels") or {}), BACKUP_NAME_LABEL: backup_name, RESTORE_NAME_LABEL: self.name}
        if item.group_resource == "namespaces":
            meta["name"] = self._target_ns(item.name)
        elif item.namespace is not None:
            meta["namespace"] = self._target_ns(item.namespace)
        if item.group_resource == "services" and isinstance(obj.get("spec"), dict):
            obj["spec"] = {k: v for k, v in obj["spec"].items() if k not in ("clusterIP", "clusterIPs")}
        if item.group_resource == "persistentvolumeclaims":
            meta["annotations"] = {k: v for k, v in (meta.get("annotations") or {}).items()
                                   if k not in _PVC_ANNOTATIONS}
        return obj

    def _ensure_namespace(self, namespace: str, backup_name: str) -> None:
        try:
            self.c.store.get(kt.NAMESPACES, None, namespace)
        except kt.NotFound:
            self.c.store.create(kt.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {
                "name": namespace, "labels": {BACKUP_NAME_LABEL: backup_name, RESTORE_NAME_LABEL: self.name}}})

    def restore_item(self, item: tarball.Item, backup_name: str) -> None:
        """Create (or update, or skip) one object and count the outcome."""
        rt = kt.BY_KEY.get(item.group_resource)
        scope = self._target_ns(item.namespace) if item.namespace else "cluster"
        what = f"{item.group_resource} {scope}/{item.name}" if item.namespace else f"{item.group_resource} {item.name}"
        if rt is None:
            self.tally.warn(scope, f"{what}: resource is not served by this cluster; skipped")
            return
        if rt is kt.PODS and any(o.get("controller") for o in (item.obj.get("metadata") or {}).get(
                "ownerReferences") or []):
            self.tally.log.append(f"skipped {what}: owned by a controller that recreates it")
            return
        obj = self._prepare(item, backup_name)
        outcome = "created"
        try:
            if item.namespace is not None:
                self._ensure_namespace(obj["metadata"]["namespace"], backup_name)
            created = self.c.store.create(rt, obj)
            if "status" in obj and rt.subresources and "status" in rt.subresources:
                self.c.store.update(rt, {**created, "status": obj["status"]}, subresource="status")
        except kt.AlreadyExists:
            outcome = self._existing(rt, obj, what, scope)
        except kt.KubeStoreError as exc:
            outcome = "failed"
            self.tally.error(scope, f"error restoring {what}: {exc.reason}: {exc}")
        if outcome in ("created", "updated", "exists"):
            self.tally.restored += 1
            if rt is kt.PVCS:
                self.claims.add((str(obj["metadata"]["namespace"]), str(obj["metadata"]["name"])))
        key = f"{item.obj.get('apiVersion', '')}/{item.obj.get('kind', '')}"
        where = f"{obj['metadata'].get('namespace', '')}/" if item.namespace else ""
        self.tally.resource_list.setdefault(key, []).append(f"{where}{obj['metadata']['name']}({outcome})")
        self.tally.log.append(f"{outcome} {what}")

    def _existing(self, rt: kt.ResourceType, obj: dict[str, Any], what: str, scope: str) -> str:
        if rt is kt.NAMESPACES:
            return "exists"
        if self.spec.get("existingResourcePolicy") == "update":
            meta = obj["metadata"]
            try:
                current = self.c.store.get(rt, meta.get("namespace"), meta["name"])
                self.c.store.update(rt, {**obj, "metadata": {**meta, "resourceVersion": current["metadata"].get(
                    "resourceVersion")}})
                return "updated"
            except kt.KubeStoreError as exc:
                self.tally.error(scope, f"could not update existing {what}: {exc}")
                return "failed"
        self.tally.warn(scope, f"could not restore, {what} already exists. Warning: the in-cluster version is "
                               "different than the backed-up version")
        return "skipped"

    # --- status -----------------------------------------------------------------------------------
    def _progress(self, total: int, restored: int) -> None:
        progress = {"totalItems": total, "itemsRestored": restored}
        self.c.write_status(kt.VELERO_RESTORES, self.name, {"progress": progress})

    def _finish(self, phase: models.RestorePhase, *, failure: str | None = None) -> None:
        warnings, errs = self.tally.result(self.tally.warnings), self.tally.result(self.tally.errors)
        status: dict[str, Any] = {"phase": phase.value, "completionTimestamp": self.c.now_text(),
                                  "warnings": warnings.count, "errors": errs.count}
        if failure:
            status["failureReason"] = failure
        self.c.write_status(kt.VELERO_RESTORES, self.name, status)

    async def _upload(self, loc: s3.S3Location) -> None:
        try:
            await bucket.write_restore_files(
                loc, self.name, results=(self.tally.result(self.tally.warnings), self.tally.result(self.tally.errors)),
                log_lines=self.tally.log, resource_list=self.tally.resource_list)
        except errors.FailoverError as exc:
            logger.warning("restore %s: uploading results failed: %s", self.name, exc)

"""The lab's in-cluster Velero: Backups, Restores, Schedules and BSLs against real S3 buckets.

No real Velero runs in the lab, but the product must meet Velero's behaviour there: backups appear
in the bucket in Velero's exact layout (so replication and the bucket reader are exercised for
real), a ReadOnly standby BSL imports replicated backups by *sync*, and a Restore creates the
selected objects in Velero's priority order with Velero's phases, counters and failure messages.
Reconcilers own phases as Velero's do: only ``New`` Backups/Restores are picked up, and an
``InProgress`` one found at start-up is marked Failed (Velero's own rule), so a controller restart
never re-runs a terminal or half-done Restore.

Simplifications, on purpose: cron schedules are reported as unsupported (``@every`` works); no
volume snapshots or hooks; pods owned by a controller are backed up but skipped on restore (the
lab's workload controller recreates them); the update policy replaces the object wholesale.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from failover import s3
from failover.core import errors, retry, secrets, tasks
from failover.lab.kube import types as kt
from failover.lab.velero_restore import RestoreRun
from failover.lab.velero_volumes import VolumeBackups
from failover.lab.volumes import VolumeStore
from failover.velero import bucket, models, selection, tarball

logger = logging.getLogger(__name__)

STORAGE_LOCATION_LABEL = "velero.io/storage-location"
SCHEDULE_LABEL = "velero.io/schedule-name"
READ_ONLY_MESSAGE = "backup can't be created because backup storage location %s is currently in read-only mode"
DEFAULT_TTL = timedelta(hours=720)
_SKIP_BACKUP = frozenset({"nodes", "backups.velero.io", "restores.velero.io"})
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str) -> timedelta | None:
    """``1m30s`` → 90 s; None if ``text`` is not a Go duration."""
    text = text.strip()
    if not text or _DURATION.sub("", text):
        return None
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(text)))


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


class VeleroController:
    """Reconciles velero.io/v1 objects of one emulated cluster against the site's buckets."""

    def __init__(self, store: kt.Store, *, locations: Mapping[str, s3.S3Location], namespace: str = "velero",
                 sync_period: float = 2.0, item_delay: float = 0.0,
                 clock: Callable[[], datetime] = _utcnow, volumes: VolumeStore | None = None) -> None:
        self.store = store
        #: file-system backups (kopia) of the cluster's volumes; None: no volume data in this cluster
        self.fsb = VolumeBackups(store, volumes) if volumes is not None else None
        self.locations = dict(locations)
        self.namespace = namespace
        self.sync_period = sync_period
        self.item_delay = item_delay
        self.clock = clock
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._pending: set[tuple[str, str]] = set()
        self._active: dict[tuple[str, str], asyncio.Task[Any]] = {}
        self._coros: dict[tuple[str, str], Coroutine[Any, Any, Any]] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False
        self._listening = False

    # --- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Fail leftovers from a previous run, then watch and reconcile until :meth:`stop`."""
        if self._running:
            return
        self._loop = asyncio.get_running_loop()
        self._running = True
        if not self._listening:
            self.store.add_listener(self._on_event)  # the Store protocol has no remove: we gate instead
            self._listening = True
        self._fail_interrupted()
        for rt in (kt.VELERO_BACKUPS, kt.VELERO_RESTORES):
            for obj in self.store.list(rt, self.namespace)[0]:
                self._enqueue(rt.key, str(_meta(obj).get("name", "")))
        self._tasks = [
            tasks.create_guarded_task(self._worker(), name="velero worker", eternal=True),
            tasks.create_guarded_task(self._storage_loop(), name="velero bsl validation and sync", eternal=True),
            tasks.create_guarded_task(self._schedule_loop(), name="velero schedules", eternal=True),
        ]

    async def stop(self) -> None:
        """Stop reconciling; running backups/restores are cancelled (they stay InProgress)."""
        self._running = False
        active = dict(self._active)
        await tasks.cancel_and_wait(*self._tasks, *active.values())
        for coro in self._coros.values():
            coro.close()  # a task cancelled before its first step never awaited its coroutine
        self._tasks, self._active, self._coros = [], {}, {}

    def _fail_interrupted(self) -> None:
        for rt, what in ((kt.VELERO_BACKUPS, "backup"), (kt.VELERO_RESTORES, "restore")):
            for obj in self.store.list(rt, self.namespace)[0]:
                if (obj.get("status") or {}).get("phase") == "InProgress":
                    self.write_status(rt, str(_meta(obj)["name"]), {
                        "phase": "Failed", "completionTimestamp": self.now_text(),
                        "failureReason": f'found a {what} with status "InProgress" during the server starting, '
                                         "mark it as failed"})

    # --- plumbing ---------------------------------------------------------------------------------
    def now_text(self) -> str:
        return models.format_timestamp(self.clock())

    def write_status(self, rt: kt.ResourceType, name: str, status: Mapping[str, Any]) -> None:
        try:
            self.store.patch(rt, self.namespace, name, {"status": dict(status)}, subresource="status")
        except kt.NotFound:
            logger.info("%s %s vanished before its status was written", rt.kind, name)

    def _on_event(self, rt: kt.ResourceType, event: kt.WatchEvent) -> None:
        if not self._running or event.type not in (kt.EventType.ADDED, kt.EventType.MODIFIED):
            return
        meta = _meta(event.object)
        if meta.get("namespace") != self.namespace:
            return
        if rt in (kt.VELERO_BACKUPS, kt.VELERO_RESTORES) or (rt is kt.VELERO_BSLS and event.type is kt.EventType.ADDED):
            key = (rt.key, str(meta.get("name", "")))
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._enqueue, *key)

    def _enqueue(self, kind: str, name: str) -> None:
        if (kind, name) not in self._pending:
            self._pending.add((kind, name))
            self._queue.put_nowait((kind, name))

    async def _worker(self) -> None:
        while True:
            kind, name = await self._queue.get()
            self._pending.discard((kind, name))
            try:
                if kind == kt.VELERO_BACKUPS.key:
                    self._reconcile_backup(name)
                elif kind == kt.VELERO_RESTORES.key:
                    self._reconcile_restore(name)
                elif ("bsl", name) not in self._active:  # S3 may be slow: never block the worker on it
                    self._spawn("bsl", name, self._validate_bsl(name))
            except Exception:
                logger.exception("reconciling %s %s failed", kind, name)

    def _spawn(self, kind: str, name: str, coro: Coroutine[Any, Any, Any]) -> None:
        task = tasks.create_guarded_task(coro, name=f"velero {kind} {name}")
        self._active[(kind, name)] = task
        self._coros[(kind, name)] = coro

        def done(_task: asyncio.Task[Any]) -> None:
            self._active.pop((kind, name), None)
            self._coros.pop((kind, name), None)

        task.add_done_callback(done)

    # --- backup storage locations -----------------------------------------------------------------
    def _bsl(self, name: str) -> kt.KubeObject | None:
        try:
            return self.store.get(kt.VELERO_BSLS, self.namespace, name)
        except kt.NotFound:
            return None

    def location_of(self, bsl: Mapping[str, Any]) -> tuple[s3.S3Location | None, str | None]:
        """The S3 location a BSL object points at, or why it has none."""
        name = str(_meta(bsl).get("name", ""))
        loc = self.locations.get(name)
        storage = (bsl.get("spec") or {}).get("objectStorage") or {}
        if loc is None:
            return None, f"no bucket is configured for backup storage location {name} in the lab"
        if storage.get("bucket") and storage.get("bucket") != loc.bucket:
            return None, f"BSL {name} names bucket {storage.get('bucket')!r}, the lab serves {loc.bucket!r}"
        prefix = storage.get("prefix")
        return (loc.model_copy(update={"prefix": str(prefix)}) if prefix else loc), None

    async def _validate_bsl(self, name: str) -> bool:
        """Validate one BSL now (Velero's IsValid) and record the result; True if Available."""
        bsl = self._bsl(name)
        if bsl is None:
            return False
        loc, message = self.location_of(bsl)
        if loc is not None:
            try:
                message = await bucket.validate_bucket(loc)
            except errors.FailoverError as exc:
                message = secrets.redact(f"BackupStorageLocation {name} is unavailable: {exc}")
        phase = models.BslPhase.AVAILABLE if message is None else models.BslPhase.UNAVAILABLE
        self.write_status(kt.VELERO_BSLS, name, {"phase": phase.value, "message": message or "",
                                             "lastValidationTime": self.now_text()})
        return message is None

    async def _storage_loop(self) -> None:
        while True:
            for bsl in self.store.list(kt.VELERO_BSLS, self.namespace)[0]:
                name = str(_meta(bsl)["name"])
                try:
                    if await self._validate_bsl(name):
                        await self._sync(name)
                except (errors.FailoverError, kt.KubeStoreError) as exc:
                    logger.warning("validation/sync of BSL %s failed: %s", name, exc)
            await asyncio.sleep(self.sync_period)

    async def _sync(self, bsl_name: str) -> int:
        """Import backups present in the bucket but not in the cluster; returns how many."""
        bsl = self._bsl(bsl_name)
        loc = self.location_of(bsl)[0] if bsl is not None else None
        if loc is None:
            return 0
        present = {str(_meta(b)["name"]) for b in self.store.list(kt.VELERO_BACKUPS, self.namespace)[0]}
        imported = 0
        for name in await bucket.list_backups(loc):
            if name in present:
                continue
            try:
                info = await bucket.read_backup(loc, name)
            except (s3.ObjectNotFound, errors.ProtocolError) as exc:
                logger.info("sync %s: skipping %s: %s", bsl_name, name, exc)
                continue
            if not info.phase.is_terminal:
                continue  # still being written or copied; a later sync imports the final version
            self._import(bsl_name, info)
            imported += 1
        self.write_status(kt.VELERO_BSLS, bsl_name, {"lastSyncedTime": self.now_text()})
        return imported

    def _import(self, bsl_name: str, info: models.BackupInfo) -> None:
        raw = dict(info.raw)
        meta = {k: v for k, v in _meta(raw).items() if k not in selection.SERVER_SET_METADATA}
        meta["namespace"] = self.namespace
        meta["labels"] = {**(meta.get("labels") or {}), STORAGE_LOCATION_LABEL: bsl_name}
        doc = {**raw, "metadata": meta, "spec": {**(raw.get("spec") or {}), "storageLocation": bsl_name}}
        status = doc.pop("status", {}) or {}
        try:
            self.store.create(kt.VELERO_BACKUPS, doc)
        except kt.AlreadyExists:
            return
        self.write_status(kt.VELERO_BACKUPS, info.name, status)  # no await in between: never seen as New

    def _default_bsl(self) -> str:
        for bsl in self.store.list(kt.VELERO_BSLS, self.namespace)[0]:
            if (bsl.get("spec") or {}).get("default"):
                return str(_meta(bsl)["name"])
        return "default"

    # --- schedules --------------------------------------------------------------------------------
    async def _schedule_loop(self) -> None:
        while True:
            for schedule in self.store.list(kt.VELERO_SCHEDULES, self.namespace)[0]:
                try:
                    self._schedule_tick(schedule)
                except (errors.FailoverError, kt.KubeStoreError) as exc:
                    logger.warning("schedule %s: %s", _meta(schedule).get("name"), exc)
            await asyncio.sleep(min(0.2, self.sync_period))

    def _schedule_tick(self, schedule: kt.KubeObject) -> None:
        name = str(_meta(schedule)["name"])
        spec, status = schedule.get("spec") or {}, schedule.get("status") or {}
        expr = str(spec.get("schedule", "")).strip()
        interval = parse_go_duration(expr[len("@every"):]) if expr.startswith("@every") else None
        if interval is None or interval <= timedelta(0):
            if status.get("phase") != "FailedValidation":
                self.write_status(kt.VELERO_SCHEDULES, name, {"phase": "FailedValidation", "validationErrors": [
                    f"invalid schedule {expr!r}: the lab supports only '@every <duration>' "
                    "(cron is unsupported in lab)"]})
            return
        if status.get("phase") != "Enabled":
            self.write_status(kt.VELERO_SCHEDULES, name, {"phase": "Enabled", "validationErrors": None})
        if spec.get("paused"):
            return
        last = models.parse_timestamp(status.get("lastBackup") or status.get("lastSkipped"),
                                      where=f"schedule {name}", what="lastBackup")
        now = self.clock()
        if last is None and spec.get("skipImmediately"):
            self.write_status(kt.VELERO_SCHEDULES, name, {"lastSkipped": models.format_timestamp(now)})
            return
        if last is not None and now - last < interval:
            return  # a new schedule (no lastBackup) is due at once, as in Velero
        template = dict(spec.get("template") or {})
        backup = {"apiVersion": "velero.io/v1", "kind": "Backup",
                  "metadata": {"name": f"{name}-{now.astimezone(UTC).strftime('%Y%m%d%H%M%S')}",
                               "namespace": self.namespace,
                               "labels": {**(template.pop("metadata", {}) or {}).get("labels", {}),
                                          SCHEDULE_LABEL: name}},
                  "spec": template}
        try:
            self.store.create(kt.VELERO_BACKUPS, backup)
        except kt.AlreadyExists:
            pass
        self.write_status(kt.VELERO_SCHEDULES, name, {"lastBackup": models.format_timestamp(now)})

    # --- backups ----------------------------------------------------------------------------------
    def _reconcile_backup(self, name: str) -> None:
        try:
            obj = self.store.get(kt.VELERO_BACKUPS, self.namespace, name)
        except kt.NotFound:
            return
        if (obj.get("status") or {}).get("phase") not in (None, "", "New") or ("backup", name) in self._active:
            return
        spec = obj.get("spec") or {}
        bsl_name = str(spec.get("storageLocation") or self._default_bsl())
        bsl = self._bsl(bsl_name)
        problems: list[str] = []
        loc = None
        if bsl is None:
            problems.append(f"an existing backup storage location wasn't specified at backup creation time "
                            f"and the default '{bsl_name}' wasn't found")
        else:
            if (bsl.get("spec") or {}).get("accessMode") == "ReadOnly":
                problems.append(READ_ONLY_MESSAGE % bsl_name)
            if (bsl.get("status") or {}).get("phase") == models.BslPhase.UNAVAILABLE:
                problems.append(f"backup can't be created because BackupStorageLocation {bsl_name} is in "
                                "Unavailable status.")
            loc, why = self.location_of(bsl)
            if why:
                problems.append(why)
        if problems or loc is None:
            self.write_status(kt.VELERO_BACKUPS, name, {"phase": "FailedValidation", "validationErrors": problems})
            return
        start = self.clock()
        ttl = parse_go_duration(str(spec.get("ttl", ""))) or DEFAULT_TTL
        self.store.patch(kt.VELERO_BACKUPS, self.namespace, name, {
            "metadata": {"labels": {STORAGE_LOCATION_LABEL: bsl_name}}, "spec": {"storageLocation": bsl_name}})
        self.write_status(kt.VELERO_BACKUPS, name, {
            "phase": "InProgress", "startTimestamp": models.format_timestamp(start), "version": 1,
            "formatVersion": tarball.FORMAT_VERSION, "expiration": models.format_timestamp(start + ttl)})
        self._spawn("backup", name, self._run_backup(name, loc))

    def collect(self, spec: Mapping[str, Any]) -> list[tarball.Item]:
        """The objects a Backup ``spec`` selects from this cluster (namespaces of included ones too)."""
        sel = selection.Selection.from_spec(spec)
        items: list[tarball.Item] = []
        for rt in kt.ALL:
            if rt.key in _SKIP_BACKUP:
                continue
            for obj in self.store.list(rt)[0]:
                meta = _meta(obj)
                name, ns = str(meta.get("name", "")), meta.get("namespace")
                if rt is kt.NAMESPACES:
                    chosen = sel.namespaces.matches(name)
                else:
                    chosen = sel.matches(group=rt.group, plural=rt.plural, kind=rt.kind,
                                         namespace=ns if rt.namespaced else None, labels=meta.get("labels") or {})
                if chosen:
                    items.append(tarball.Item(rt.group, rt.plural, ns if rt.namespaced else None, name, obj))
        return items

    async def _run_backup(self, name: str, loc: s3.S3Location) -> None:
        obj = self.store.get(kt.VELERO_BACKUPS, self.namespace, name)
        items = self.collect(obj.get("spec") or {})
        self.write_status(kt.VELERO_BACKUPS, name, {"progress": {"totalItems": len(items), "itemsBackedUp": 0}})
        doc = self.store.get(kt.VELERO_BACKUPS, self.namespace, name)
        lines = [f"Backing up {len(items)} items of backup {self.namespace}/{name}"]
        bsl, fsb = str((doc.get("spec") or {}).get("storageLocation") or "default"), self.fsb
        try:
            pvbs = [] if fsb is None else await retry.call(  # volume data first, as the node agents write it
                lambda: fsb.back_up(doc, items, loc=loc, bsl=bsl, now=self.now_text()), attempts=3, base_delay=0.2)
            lines.append(f"Backed up {len(pvbs)} pod volumes with kopia")
            final = await retry.call(lambda: bucket.write_backup(loc, doc, items=items, completed_at=self.clock(),
                                                                 log_lines=lines, pod_volume_backups=pvbs),
                                     attempts=3, base_delay=0.2)
        except errors.FailoverError as exc:
            self.write_status(kt.VELERO_BACKUPS, name, {"phase": "Failed", "completionTimestamp": self.now_text(),
                                                    "failureReason": secrets.redact(str(exc))})
            return
        self.write_status(kt.VELERO_BACKUPS, name, final["status"])

    # --- restores ---------------------------------------------------------------------------------
    def _reconcile_restore(self, name: str) -> None:
        try:
            obj = self.store.get(kt.VELERO_RESTORES, self.namespace, name)
        except kt.NotFound:
            return
        if (obj.get("status") or {}).get("phase") not in (None, "", "New") or ("restore", name) in self._active:
            return
        run = RestoreRun(self, obj)
        problems = run.validate()
        if problems:
            self.write_status(kt.VELERO_RESTORES, name, {"phase": "FailedValidation", "validationErrors": problems,
                                                     "completionTimestamp": self.now_text()})
            return
        self.write_status(kt.VELERO_RESTORES, name, {"phase": "InProgress", "startTimestamp": self.now_text()})
        self._spawn("restore", name, run.execute())

    async def bsl_available(self, name: str) -> bool:
        """Validate ``name`` now (restores must not trust a stale status)."""
        return await self._validate_bsl(name)

    def bsl(self, name: str) -> kt.KubeObject | None:
        return self._bsl(name)

"""The lab Velero's file-system backup and restore (node agent + kopia), on the lab's volume files.

Backup (as Velero's PodVolumeBackups do, before the backup is finalised): every selected
PersistentVolumeClaim whose volume holds files becomes one snapshot in the kopia repository of
its namespace (``kopia/<namespace>/`` in the BSL's bucket; packs first, the index last), and one
Completed PodVolumeBackup in ``<b>-podvolumebackups.json.gz``. Restore (PodVolumeRestore): for
each PodVolumeBackup of the backup whose claim the restore created, the snapshot is read from the
*source* namespace's repository on the target's bucket and written into the claim's volume on the
target; a snapshot that cannot be read (an index pointing at a missing pack: "BLOB not found")
is a restore error, so the Restore ends PartiallyFailed, as Velero's does.

Simplified: every claim with data is backed up (Velero needs ``defaultVolumesToFsBackup`` or the
pod annotation); no PodVolumeBackup/PodVolumeRestore objects are created in the cluster.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from failover import s3
from failover.core import errors
from failover.lab.kube import types as kt
from failover.lab.volumes import VolumeStore
from failover.velero import kopia, kopia_volumes, tarball

logger = logging.getLogger(__name__)


class VolumeBackups:
    """File-system backups of one cluster's volumes (one per Velero controller)."""

    def __init__(self, store: kt.Store, volumes: VolumeStore) -> None:
        self.store = store
        self.volumes = volumes
        self._repos: dict[tuple[str, str, str], kopia.Repository] = {}

    def _repo(self, client: Any, loc: s3.S3Location, namespace: str) -> kopia.Repository:
        key = (loc.endpoint, loc.bucket, kopia.repo_dir(loc.prefix, namespace))
        repo = self._repos.get(key)
        if repo is None:
            repo = self._repos[key] = kopia.Repository(client, loc, namespace)
        repo.client = client  # the index read so far stays cached; the client is the caller's
        return repo

    def _pod_of(self, namespace: str, claim_labels: Mapping[str, str], claim: str) -> tuple[str, str]:
        for pod in self.store.list(kt.PODS, namespace)[0]:
            labels = (pod.get("metadata") or {}).get("labels") or {}
            if claim_labels and all(labels.get(k) == v for k, v in claim_labels.items()):
                return str(pod["metadata"]["name"]), str(pod["metadata"].get("uid", ""))
        return f"{claim}-pod", ""

    async def back_up(self, backup: Mapping[str, Any], items: Sequence[tarball.Item], *, loc: s3.S3Location,
                      bsl: str, now: str) -> list[dict[str, Any]]:
        """Snapshot every selected claim with data; the PodVolumeBackups to list in the backup."""
        claims = [i for i in items if i.group_resource == "persistentvolumeclaims" and i.namespace]
        by_ns: dict[str, dict[str, tuple[str, str, str, dict[str, bytes]]]] = {}
        for item in claims:
            assert item.namespace is not None
            files = self.volumes.files(item.namespace, item.name)
            if not files:
                continue
            labels = (item.obj.get("metadata") or {}).get("labels") or {}
            pod, uid = self._pod_of(item.namespace, labels, item.name)
            source = kopia.snapshot_source(item.namespace, pod, item.name)
            by_ns.setdefault(item.namespace, {})[source] = (item.name, pod, uid, files)
        pvbs: list[dict[str, Any]] = []
        if not by_ns:
            return pvbs  # no volume holds data: no repository to open
        async with s3.open_client(loc) as client:
            for namespace, volumes in sorted(by_ns.items()):
                snaps = await self._repo(client, loc, namespace).write_snapshots(
                    {source: files for source, (_, _, _, files) in volumes.items()})
                for source, (claim, pod, uid, _) in sorted(volumes.items()):
                    snap = snaps[source]
                    pvbs.append(kopia_volumes.build(
                        backup=backup, bsl=bsl, namespace=namespace, pod=pod, pod_uid=uid, claim=claim,
                        snapshot_id=snap.id, total_bytes=snap.total_bytes, incremental_bytes=snap.incremental_bytes,
                        started=now, completed=now))
        return pvbs

    async def restore(self, loc: s3.S3Location, backup_name: str, *, restored: set[tuple[str, str]],
                      mapping: Mapping[str, str]) -> tuple[int, list[tuple[str, str]]]:
        """Restore the volumes of the claims in ``restored`` ((target namespace, claim) pairs).

        Returns (volumes restored, [(scope, error message)])."""
        try:
            pvbs = await kopia_volumes.read(loc, backup_name)
        except errors.FailoverError as exc:
            return 0, [("", f"reading the pod volume backups of {backup_name}: {exc}")]
        done, problems = 0, []
        async with s3.open_client(loc) as client:
            for pvb in pvbs:
                target_ns = mapping.get(pvb.namespace, pvb.namespace)
                if not pvb.snapshot_id or pvb.claim is None or (target_ns, pvb.claim) not in restored:
                    continue
                if pvb.phase != "Completed":
                    continue
                try:
                    files = await self._repo(client, loc, pvb.namespace).read_snapshot(pvb.snapshot_id)
                except errors.FailoverError as exc:
                    problems.append((target_ns, f"pod volume restore of {target_ns}/{pvb.claim} "
                                                f"(snapshot {pvb.snapshot_id}) failed: {exc}"))
                    continue
                self.volumes.replace(target_ns, pvb.claim, files)
                done += 1
        return done, problems


"""PodVolumeBackups: which volume snapshots a Velero backup holds, as Velero records them.

Velero lists a backup's file-system backups in ``backups/<b>/<b>-podvolumebackups.json.gz``, a
gzipped JSON array of complete PodVolumeBackup objects (``pkg/controller/backup_controller.go``).
A restore on another cluster finds them there (backup sync recreates them), and needs the kopia
repository of the *source* namespace (``spec.pod.namespace``) to hold each ``status.snapshotID``.
The product reads them to verify a restored backup's volumes; the lab writes them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from failover import s3
from failover.core import errors
from failover.velero import bucket, layout

PVC_NAME_ANNOTATION = "velero.io/pvc-name"
BACKUP_NAME_LABEL = "velero.io/backup-name"


@dataclass(frozen=True)
class PodVolume:
    """One PodVolumeBackup, the fields a restore needs."""

    name: str
    namespace: str  #: the pod's (source) namespace: the kopia repository is ``kopia/<namespace>/``
    pod: str
    volume: str
    claim: str | None  #: the PVC the volume mounts (annotation ``velero.io/pvc-name``)
    snapshot_id: str
    phase: str
    total_bytes: int


def build(*, backup: Mapping[str, Any], bsl: str, namespace: str, pod: str, pod_uid: str, claim: str,
          snapshot_id: str, total_bytes: int, incremental_bytes: int, started: str, completed: str,
          velero_namespace: str = "velero") -> dict[str, Any]:
    """A Completed PodVolumeBackup as Velero's node agent leaves it (v1.17+, uploader kopia)."""
    meta = backup.get("metadata") or {}
    backup_name, backup_uid = str(meta.get("name", "")), str(meta.get("uid", ""))
    name = f"{backup_name}-{hashlib.sha256(f'{namespace}/{pod}/{claim}'.encode()).hexdigest()[:5]}"
    tags = {"backup": backup_name, "backup-uid": backup_uid, "pod": pod, "pod-uid": pod_uid, "ns": namespace,
            "volume": "data"}
    return {
        "apiVersion": "velero.io/v1", "kind": "PodVolumeBackup",
        "metadata": {"name": name, "namespace": velero_namespace,
                     "labels": {BACKUP_NAME_LABEL: backup_name, "velero.io/backup-uid": backup_uid},
                     "annotations": {PVC_NAME_ANNOTATION: claim}},
        "spec": {"node": "lab-node", "pod": {"kind": "Pod", "namespace": namespace, "name": pod, "uid": pod_uid},
                 "volume": "data", "backupStorageLocation": bsl, "repoIdentifier": "", "uploaderType": "kopia",
                 "tags": tags},
        "status": {"phase": "Completed", "path": f"/host_pods/{pod_uid}/volumes/kubernetes.io~csi/{claim}/mount",
                   "snapshotID": snapshot_id, "startTimestamp": started, "completionTimestamp": completed,
                   "progress": {"totalBytes": total_bytes, "bytesDone": total_bytes},
                   "incrementalBytes": incremental_bytes},
    }


def parse(docs: Any, *, where: str) -> list[PodVolume]:
    """The PodVolumeBackups of a ``-podvolumebackups.json.gz`` document (ProtocolError if malformed)."""
    if not isinstance(docs, Sequence) or isinstance(docs, str | bytes):
        raise errors.ProtocolError(f"{where}: expected a JSON array of PodVolumeBackups")
    out: list[PodVolume] = []
    for doc in docs:
        try:
            meta, spec, status = doc["metadata"], doc["spec"], doc.get("status") or {}
            out.append(PodVolume(
                name=str(meta["name"]), namespace=str(spec["pod"]["namespace"]), pod=str(spec["pod"]["name"]),
                volume=str(spec["volume"]), claim=(meta.get("annotations") or {}).get(PVC_NAME_ANNOTATION),
                snapshot_id=str(status.get("snapshotID") or ""), phase=str(status.get("phase") or ""),
                total_bytes=int((status.get("progress") or {}).get("totalBytes") or 0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise errors.ProtocolError(f"{where}: malformed PodVolumeBackup: {exc}") from exc
    return out


async def read(loc: s3.S3Location, backup: str) -> list[PodVolume]:
    """The backup's PodVolumeBackups ([] when the backup has no such file, as before Velero 1.x)."""
    key = layout.backup_pod_volume_backups(loc.prefix, backup)
    try:
        docs = await bucket.read_gz_json(loc, key)
    except s3.ObjectNotFound:
        return []
    return parse(docs, where=f"{loc.bucket}/{key}")

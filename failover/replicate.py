"""Cross-provider backup replication: the active site's Velero backups, copied to every standby.

A provider outage takes its object storage with it, so a standby can only restore what was copied
to *its own* bucket on *its own* provider before the outage. For each complete backup
(``velero-backup.json`` phase Completed/PartiallyFailed) this copies every side file first and
``velero-backup.json`` **last**, verifying each copy's size and checksum: until the metadata file
lands, Velero's backup sync does not see the backup, so a crash mid-copy leaves nothing half
visible, and the next pass resumes by copying only what is missing or different. A backup still
``Finalizing`` is never copied. Lag is exported per standby.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from failover import s3
from failover.core import errors
from failover.velero import bucket, layout, models, verify

logger = logging.getLogger(__name__)

METADATA = "velero-backup.json"


@dataclass(frozen=True)
class StandbyLag:
    site: str
    newest_source: str | None
    newest_replicated: str | None
    lag_s: float | None  #: completion time of newest on source minus newest replicated (0 = in sync)
    age_s: float | None  #: now minus completion of the newest replicated backup
    copied: int = 0
    error: str | None = None


async def _copy(src_client: Any, dst_client: Any, src: s3.S3Location, dst: s3.S3Location,
                key: str, dst_key: str) -> None:
    with s3.translating(f"GET {src.bucket}/{key}"):
        response = await src_client.get_object(Bucket=src.bucket, Key=key)
        async with response["Body"] as stream:
            data = await stream.read()
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    with s3.translating(f"PUT {dst.bucket}/{dst_key}"):
        put = await dst_client.put_object(Bucket=dst.bucket, Key=dst_key, Body=data)
        head = await dst_client.head_object(Bucket=dst.bucket, Key=dst_key)
    etag = str(put.get("ETag", "")).strip('"')
    if int(head["ContentLength"]) != len(data) or (etag and etag != md5):
        raise errors.TemporaryError(f"copy of {key} to {dst.bucket} failed verification (size/checksum)")


def _dst_key(key: str, src: s3.S3Location, dst: s3.S3Location) -> str:
    src_prefix, dst_prefix = layout.root(src.prefix), layout.root(dst.prefix)
    return dst_prefix + key[len(src_prefix):]


async def replicate_backup(src: s3.S3Location, dst: s3.S3Location, name: str) -> int:
    """Copy one complete backup from ``src`` to ``dst``; returns how many objects were copied.

    Idempotent: objects already present with the same size and checksum are skipped.
    Raises PermanentError for an incomplete backup, TemporaryError on storage trouble.
    """
    info = await bucket.read_backup(src, name)
    if not info.is_complete:
        raise errors.PermanentError(f"backup {name} is {info.phase}; only complete backups are replicated")
    source = {o.key: (o.size, o.etag) for o in await bucket.list_backup_objects(src, name)}
    present = {o.key: (o.size, o.etag) for o in await bucket.list_backup_objects(dst, name)}
    await verify.record_manifest(src, dst, name)  # sizes and checksums, verified before a restore
    copied = 0
    async with s3.open_client(src) as sc, s3.open_client(dst) as dc:
        keys = sorted(k for k in source if not k.endswith("/" + METADATA))
        meta = [k for k in source if k.endswith("/" + METADATA)]
        for key in [*keys, *meta]:  # metadata last: the backup becomes visible only when complete
            dst_key = _dst_key(key, src, dst)
            if present.get(dst_key) == source[key]:
                continue
            await _copy(sc, dc, src, dst, key, dst_key)
            copied += 1
    return copied


class Replicator:
    """Replication with memory: complete source backups are read once, copies verified once.

    Each pass copies the **newest** missing backups first (at most ``max_per_pass``), because the
    newest backup is what bounds the data loss of a failover; older ones are back-filled by later
    passes. Backups already present on the standby (metadata there, so complete by construction)
    are not listed again.
    """

    def __init__(self, *, max_per_pass: int = 3, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.max_per_pass = max_per_pass
        self.clock = clock
        self._done: dict[tuple[str, str, str], set[str]] = {}

    async def replicate(self, src: s3.S3Location, dst: s3.S3Location, *, site: str) -> StandbyLag:
        """One pass to ``dst``; never raises (errors go in the result)."""
        copied = 0
        done = self._done.setdefault((dst.endpoint, dst.bucket, dst.prefix), set())
        try:
            complete = [i for i in await bucket.backup_infos(src) if i.is_complete and i.completion_timestamp]
            if not done:
                done.update(await _replicated(dst))
            todo = [i for i in sorted(complete, key=_completed, reverse=True) if i.name not in done]
            for info in todo[:self.max_per_pass]:
                copied += await replicate_backup(src, dst, info.name)
                done.add(info.name)
        except errors.FailoverError as exc:
            logger.warning("replication to %s: %s", site, exc)
            return StandbyLag(site, None, None, None, None, copied, str(exc))
        newest_src = max(complete, key=_completed, default=None)
        replicated = [i for i in complete if i.name in done]
        newest_dst = max(replicated, key=_completed, default=None)
        src_done = newest_src.completion_timestamp if newest_src else None
        dst_done = newest_dst.completion_timestamp if newest_dst else None
        lag = max(0.0, (src_done - dst_done).total_seconds()) if src_done and dst_done else None
        age = (self.clock() - dst_done).total_seconds() if dst_done else None
        return StandbyLag(site, newest_src.name if newest_src else None, newest_dst.name if newest_dst else None,
                          lag, age, copied)


async def _replicated(dst: s3.S3Location) -> set[str]:
    """Backups whose metadata is already in ``dst`` (metadata is copied last: they are complete)."""
    return {i.name for i in await bucket.backup_infos(dst)}


def _completed(info: models.BackupInfo) -> datetime:
    assert info.completion_timestamp is not None
    return info.completion_timestamp


async def replicate_all(src: s3.S3Location, dst: s3.S3Location, *, site: str,
                        clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> StandbyLag:
    """Replicate every complete backup missing on ``dst`` in one go (newest first)."""
    replicator = Replicator(max_per_pass=10_000, clock=clock)
    return await replicator.replicate(src, dst, site=site)

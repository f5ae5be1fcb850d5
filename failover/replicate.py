"""Cross-provider backup replication: the active site's Velero backups, copied to every standby.

A provider outage takes its object storage with it, so a standby can only restore what was copied
to *its own* bucket on *its own* provider before the outage. For each complete backup
(``velero-backup.json`` phase Completed/PartiallyFailed) this copies every side file first and
``velero-backup.json`` **last**: until the metadata file lands, Velero's backup sync does not see
the backup, so a crash mid-copy leaves nothing half visible, and the next pass resumes by copying
only what is missing or different. A backup still ``Finalizing`` is never copied. Before the
backups of a pass, the kopia repositories under ``kopia/`` (file-system backups of the volumes) are
synchronised packs first, indexes last (:mod:`failover.velero.kopia_sync`), so a backup's volume
data is on the standby before the backup becomes visible there.

Copies stream (:mod:`failover.s3copy`: multipart above 8 MiB, at most two parts in memory per
copy), run concurrently (``concurrency`` copies at a time across all backups of a pass), and use
one client per endpoint for the replicator's life. A copy counts as done when its size matches and
its ETag or recorded source ETag does (multipart sources included). Each copy is verified in band:
the bytes read must equal the source's length, and every PUT and part carries Content-MD5, which
the receiving server checks (see :mod:`failover.s3copy`). Lag is exported per standby.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from failover import s3, s3copy
from failover.core import errors
from failover.velero import bucket, kopia_sync, layout, models, verify

logger = logging.getLogger(__name__)

METADATA = "velero-backup.json"
CONCURRENCY = 16


@dataclass(frozen=True)
class StandbyLag:
    site: str
    newest_source: str | None
    newest_replicated: str | None
    lag_s: float | None  #: completion time of newest on source minus newest replicated (0 = in sync)
    age_s: float | None  #: now minus completion of the newest replicated backup
    copied: int = 0
    error: str | None = None
    volume_blobs_copied: int = 0  #: kopia blobs copied this pass


@dataclass
class Copier:
    """What a pass shares: the client pool and the bound on concurrent copies."""

    pool: s3.ClientPool
    limit: asyncio.Semaphore
    part_size: int = s3copy.PART_SIZE
    copies: list[s3copy.Copied] = field(default_factory=list)  #: every verified copy (key, size, sha256)

    async def copy(self, src: s3.S3Location, dst: s3.S3Location, key: str, dst_key: str) -> s3copy.Copied:
        sc, dc = await self.pool.client(src), await self.pool.client(dst)
        async with self.limit:
            done = await s3copy.copy_object(sc, dc, src, dst, key=key, dst_key=dst_key, part_size=self.part_size)
        self.copies.append(done)
        return done


def _dst_key(key: str, src: s3.S3Location, dst: s3.S3Location) -> str:
    src_prefix, dst_prefix = layout.root(src.prefix), layout.root(dst.prefix)
    return dst_prefix + key[len(src_prefix):]


async def _copy_backup(copier: Copier, src: s3.S3Location, dst: s3.S3Location, name: str, *,
                       info: models.BackupInfo | None = None, on_dst: bool = True) -> int:
    """Copy backup ``name`` (metadata last); ``info`` if already read, ``on_dst`` False if its dir is absent."""
    sc, dc = await copier.pool.client(src), await copier.pool.client(dst)
    if info is None:
        meta_key = layout.backup_metadata(src.prefix, name)
        info = models.parse_backup(await s3.get_bytes(sc, src, meta_key), where=f"{src.bucket}/{meta_key}")
    if not info.is_complete:
        raise errors.PermanentError(f"backup {name} is {info.phase}; only complete backups are replicated")
    source = await s3.list_objects(sc, src, layout.backup_dir(src.prefix, name))
    base = len(layout.backup_dir(src.prefix, name))
    # sizes and checksums as the source lists them, checked before a restore (failover.velero.verify)
    await s3.put_bytes(dc, dst, verify.manifest_key(dst.prefix, name),
                       verify.manifest_bytes(name, [(o.key[base:], o.size, o.etag) for o in source]))
    present = {o.key: o for o in await s3.list_objects(dc, dst, layout.backup_dir(dst.prefix, name))} \
        if on_dst else {}

    async def one(obj: s3.Listed) -> int:
        dst_key = _dst_key(obj.key, src, dst)
        if await s3copy.same(dc, dst, obj, present.get(dst_key)):
            return 0
        await copier.copy(src, dst, obj.key, dst_key)
        return 1

    side = [o for o in source if not o.key.endswith("/" + METADATA)]
    meta = [o for o in source if o.key.endswith("/" + METADATA)]
    copied = sum(await asyncio.gather(*(one(o) for o in side)))
    for obj in meta:  # last: the backup becomes visible only when complete
        copied += await one(obj)
    return copied


async def replicate_backup(src: s3.S3Location, dst: s3.S3Location, name: str, *,
                           pool: s3.ClientPool | None = None, concurrency: int = CONCURRENCY) -> int:
    """Copy one complete backup from ``src`` to ``dst``; returns how many objects were copied.

    Idempotent: objects already present with the same size and checksum are skipped. Volume data
    of the backup's namespaces (kopia) is synchronised first. Raises PermanentError for an
    incomplete backup, TemporaryError on storage trouble. ``pool`` reuses the caller's clients.
    """
    own = pool is None
    copier = Copier(pool or s3.ClientPool(), asyncio.Semaphore(concurrency))
    try:
        await kopia_sync.sync_all(copier.pool, src, dst, limit=copier.limit)
        return await _copy_backup(copier, src, dst, name)
    finally:
        if own:
            await copier.pool.aclose()


class Replicator:
    """Replication with memory: complete source backups are read once, copies verified once.

    Each pass copies the **newest** missing backups first (at most ``max_per_pass``), because the
    newest backup is what bounds the data loss of a failover; older ones are back-filled by later
    passes. Backups already present on the standby (metadata there, so complete by construction)
    are not listed again. Clients are pooled per endpoint for the replicator's life (:meth:`aclose`).
    """

    def __init__(self, *, max_per_pass: int = 3, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 concurrency: int = CONCURRENCY, part_size: int = s3copy.PART_SIZE) -> None:
        self.max_per_pass = max_per_pass
        self.clock = clock
        self.concurrency = concurrency
        self.part_size = part_size
        self.pool = s3.ClientPool(max_connections=max(10, concurrency * 2))
        self._done: dict[tuple[str, str, str], set[str]] = {}
        self._kopia: kopia_sync.Memory = {}  #: repositories unchanged since their last complete sync
        self.last_copies: list[s3copy.Copied] = []  #: the verified copies of the last pass (key, size, sha256)

    async def aclose(self) -> None:
        await self.pool.aclose()

    async def replicate(self, src: s3.S3Location, dst: s3.S3Location, *, site: str) -> StandbyLag:
        """One pass to ``dst``; never raises (errors go in the result)."""
        copied = blobs = 0
        done = self._done.setdefault((dst.endpoint, dst.bucket, dst.prefix), set())
        copier = Copier(self.pool, asyncio.Semaphore(self.concurrency), self.part_size)
        try:
            complete = [i for i in await bucket.backup_infos(src) if i.is_complete and i.completion_timestamp]
            if not done:
                done.update(await _replicated(dst))
            todo = [i for i in sorted(complete, key=_completed, reverse=True) if i.name not in done]
            todo = todo[:self.max_per_pass]
            # volume data before the backups that reference it (listed after them: it is all there)
            blobs = await kopia_sync.sync_all(self.pool, src, dst, limit=copier.limit, part_size=self.part_size,
                                              memory=self._kopia)
            on_dst = set(await bucket.list_backups(dst)) if todo else set()  # dirs, complete or not
            counts = await asyncio.gather(*(_copy_backup(copier, src, dst, i.name, info=i, on_dst=i.name in on_dst)
                                            for i in todo))
            copied = sum(counts)
            done.update(i.name for i in todo)
        except errors.FailoverError as exc:
            logger.warning("replication to %s: %s", site, exc)
            return StandbyLag(site, None, None, None, None, copied, str(exc), blobs)
        finally:
            self.last_copies = copier.copies
        newest_src = max(complete, key=_completed, default=None)
        replicated = [i for i in complete if i.name in done]
        newest_dst = max(replicated, key=_completed, default=None)
        src_done = newest_src.completion_timestamp if newest_src else None
        dst_done = newest_dst.completion_timestamp if newest_dst else None
        lag = max(0.0, (src_done - dst_done).total_seconds()) if src_done and dst_done else None
        age = (self.clock() - dst_done).total_seconds() if dst_done else None
        return StandbyLag(site, newest_src.name if newest_src else None, newest_dst.name if newest_dst else None,
                          lag, age, copied, None, blobs)


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
    try:
        return await replicator.replicate(src, dst, site=site)
    finally:
        await replicator.aclose()

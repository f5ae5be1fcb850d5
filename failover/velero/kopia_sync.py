"""Replicating kopia repositories (Velero file-system backups) to a standby's bucket.

The copy must never show a standby's Velero an index that points at a pack it does not have
(kopia reports "BLOB not found" and the repository is unusable, velero#8222), so each repository
is copied in kopia's own write order, one class at a time, each finished before the next starts:

1. the **indexes are listed first**, then the whole repository: kopia writes a flush's packs before
   its index, so every pack an index from the first listing references is in the second;
2. missing packs (``p``/``q``) are copied; content-addressed and write-once, so a key present
   with the same size is the same blob and is never copied again (incremental);
3. then the missing indexes of the first listing;
4. then the format blobs (``kopia.repository`` & co., and the rewritten ``kopia.maintenance``).

Killed at any point, the standby holds only packs nobody references yet (invisible; a later pass
adds their index) or complete snapshots; the next pass lists again and copies what is missing
(resumable). Session markers and logs are not copied. Deletions are not propagated: a pack deleted
by kopia's GC on the source stays on the standby until its own (ReadOnly: never) maintenance.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from failover import s3, s3copy
from failover.velero import kopia

logger = logging.getLogger(__name__)


async def namespaces(client: Any, loc: s3.S3Location) -> list[str]:
    """The volume namespaces that have a repository under ``kopia/``."""
    base = kopia.kopia_dir(loc.prefix)
    out: list[str] = []
    with s3.translating(f"LIST {loc.bucket}/{base}"):
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=loc.bucket, Prefix=base, Delimiter="/"):
            out.extend(str(cp["Prefix"])[len(base):].strip("/") for cp in page.get("CommonPrefixes", []) or [])
    return sorted(n for n in out if n)


#: what a completed sync saw: (dst endpoint, bucket, repo dir) -> the source's index and format blobs
Memory = dict[tuple[str, str, str], frozenset[tuple[str, str]]]


async def sync_repository(pool: s3.ClientPool, src: s3.S3Location, dst: s3.S3Location, namespace: str, *,
                          limit: asyncio.Semaphore, part_size: int = s3copy.PART_SIZE,
                          memory: Memory | None = None) -> int:
    """Copy what ``dst`` lacks of one repository, packs → indexes → format; returns blobs copied.

    Idempotent and resumable. Raises TemporaryError on storage trouble (nothing half visible).
    With ``memory``, a repository whose indexes and format blobs are unchanged since the last
    complete sync costs two small listings and no more (new packs without an index are invisible).
    """
    sc, dc = await pool.client(src), await pool.client(dst)
    src_dir, dst_dir = kopia.repo_dir(src.prefix, namespace), kopia.repo_dir(dst.prefix, namespace)
    indexes = await s3.list_objects(sc, src, src_dir + "x")
    formats_now = await s3.list_objects(sc, src, src_dir + "kopia.")
    seen = frozenset((b.key, b.etag) for b in (*indexes, *formats_now))
    mark = (dst.endpoint, dst.bucket, dst_dir)
    if memory is not None and memory.get(mark) == seen:
        return 0
    blobs = await s3.list_objects(sc, src, src_dir)
    present = {b.key[len(dst_dir):]: b for b in await s3.list_objects(dc, dst, dst_dir)}

    async def copy(blob: s3.Listed, *, exact: bool) -> int:
        name = blob.key[len(src_dir):]
        have = present.get(name)
        if have is not None and (have.size == blob.size if not exact else await s3copy.same(dc, dst, blob, have)):
            return 0
        async with limit:
            await s3copy.copy_object(sc, dc, src, dst, key=blob.key, dst_key=dst_dir + name, part_size=part_size)
        logger.debug("kopia %s: copied %s to %s", namespace, name, dst.bucket)
        return 1

    packs = [b for b in blobs if kopia.classify(b.key[len(src_dir):]) is kopia.BlobClass.PACK]
    formats = [b for b in blobs if kopia.classify(b.key[len(src_dir):]) is kopia.BlobClass.FORMAT]
    copied = sum(await asyncio.gather(*(copy(b, exact=False) for b in packs)))
    copied += sum(await asyncio.gather(*(copy(b, exact=False) for b in indexes)))
    for blob in sorted(formats, key=lambda b: _FORMAT_ORDER.get(b.key[len(src_dir):], 9)):
        copied += await copy(blob, exact=True)
    if memory is not None:
        memory[mark] = seen
    return copied


_FORMAT_ORDER = {kopia.BLOBCFG_BLOB: 0, kopia.FORMAT_BLOB: 1, kopia.UDMREPO_BLOB: 2, kopia.MAINTENANCE_BLOB: 3}


async def sync_all(pool: s3.ClientPool, src: s3.S3Location, dst: s3.S3Location, *,
                   limit: asyncio.Semaphore, part_size: int = s3copy.PART_SIZE, memory: Memory | None = None) -> int:
    """:func:`sync_repository` for every namespace's repository in ``src``; blobs copied."""
    names = await namespaces(await pool.client(src), src)
    counts = await asyncio.gather(*(sync_repository(pool, src, dst, ns, limit=limit, part_size=part_size,
                                                    memory=memory) for ns in names))
    return sum(counts)


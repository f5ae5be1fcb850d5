"""Replicating the workplace's object-storage buckets (Nextcloud, OpenProject, OX) to every standby.

openDesk keeps users' files in S3 buckets, outside Kubernetes and outside Velero's backups, so
they cross providers only if copied bucket to bucket. Provider-side replication needs the same
S3 implementation on both ends (MinIO's needs MinIO and versioning; AWS's needs AWS), so the
daemon does it as a client, like ``mc mirror`` or rclone:

* **incremental by key + checksum**: one listing of each side per pass; an object is copied when
  the standby lacks the key, or its size differs, or neither its ETag nor its recorded source ETag
  matches (:func:`failover.s3copy.same`; a multipart object is therefore copied once). Verified
  pairs are remembered, so a multipart object costs no HEAD on later passes;
* **deletes propagated after a grace period**: a key on the standby that the source no longer
  has is deleted only once it has been missing for ``delete_after`` seconds (a mistaken or
  malicious delete on the active site does not reach the standbys at once);
* **lag**: the time since the start of the last pass that left the standby holding everything
  the source held when that pass listed it (None before the first complete pass).

Copies stream through :mod:`failover.s3copy` with the pool's clients, ``concurrency`` at a time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from failover import s3, s3copy
from failover.config import models
from failover.core import errors
from failover.health.model import SiteView

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BucketLag:
    """One application bucket's replication to one standby, after a pass."""

    site: str
    bucket: str
    objects: int  #: objects on the source at the last listing
    copied: int = 0
    deleted: int = 0
    pending_deletes: int = 0  #: keys only the standby holds, inside the grace period
    lag_s: float | None = None
    synced_at: datetime | None = None  #: start of the last complete pass
    error: str | None = None


class BucketReplicator:
    """Passes that make a standby bucket mirror the active site's (state kept between passes)."""

    def __init__(self, pool: s3.ClientPool, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 concurrency: int = 16) -> None:
        self.pool = pool
        self.clock = clock
        self.concurrency = concurrency
        self._missing_since: dict[tuple[str, str, str], datetime] = {}
        self._synced: dict[tuple[str, str], datetime] = {}
        self._verified: set[tuple[str, str, str, str]] = set()  #: (endpoint, bucket, key, source etag)
        self._errors: dict[tuple[str, str], str] = {}

    async def replicate(self, src: s3.S3Location, dst: s3.S3Location, *, site: str, name: str,
                        delete_after: float) -> BucketLag:
        """One pass; never raises (errors go in the result, with the last known lag)."""
        started = self.clock()
        target = (dst.endpoint, dst.bucket)
        try:
            copied, deleted, pending, objects = await self._pass(src, dst, delete_after=delete_after, now=started)
        except errors.FailoverError as exc:
            if self._errors.get(target) != str(exc):  # once per distinct problem, not every pass
                logger.warning("bucket %s to %s: %s", name, site, exc)
            self._errors[target] = str(exc)
            return BucketLag(site, name, 0, error=str(exc), lag_s=self._lag(target),
                             synced_at=self._synced.get(target))
        self._synced[target] = started
        self._errors.pop(target, None)
        return BucketLag(site, name, objects, copied, deleted, pending, self._lag(target), started)

    def _lag(self, target: tuple[str, str]) -> float | None:
        synced = self._synced.get(target)
        return None if synced is None else max(0.0, (self.clock() - synced).total_seconds())

    async def _pass(self, src: s3.S3Location, dst: s3.S3Location, *, delete_after: float,
                    now: datetime) -> tuple[int, int, int, int]:
        sc, dc = await self.pool.client(src), await self.pool.client(dst)
        source = await s3.list_objects(sc, src, src.prefix)
        held = {o.key: o for o in await s3.list_objects(dc, dst, dst.prefix)}
        limit = asyncio.Semaphore(self.concurrency)

        async def one(obj: s3.Listed) -> int:
            dst_key = dst.prefix + obj.key[len(src.prefix):]
            mark = (dst.endpoint, dst.bucket, dst_key, obj.etag)
            have = held.get(dst_key)
            if have is not None and have.size == obj.size and mark in self._verified:
                return 0
            async with limit:
                if await s3copy.same(dc, dst, obj, have):
                    self._verified.add(mark)
                    return 0
                await s3copy.copy_object(sc, dc, src, dst, key=obj.key, dst_key=dst_key)
            self._verified.add(mark)
            return 1

        copied = sum(await asyncio.gather(*(one(o) for o in source)))
        wanted = {dst.prefix + o.key[len(src.prefix):] for o in source}
        deleted = pending = 0
        for key in sorted(set(held) - wanted):
            first = self._missing_since.setdefault((dst.endpoint, dst.bucket, key), now)
            if (now - first).total_seconds() < delete_after:
                pending += 1
                continue
            with s3.translating(f"DELETE {dst.bucket}/{key}"):
                await dc.delete_object(Bucket=dst.bucket, Key=key)
            self._missing_since.pop((dst.endpoint, dst.bucket, key), None)
            deleted += 1
        for gone in [k for k in self._missing_since if k[:2] == (dst.endpoint, dst.bucket) and k[2] in wanted]:
            del self._missing_since[gone]  # it came back on the source: no delete
        return copied, deleted, pending, len(source)


def location(storage: s3.S3Location, site: models.Site, bucket: str) -> s3.S3Location:
    """Application bucket ``bucket`` on ``site``'s object storage (same endpoint and credentials)."""
    return storage.model_copy(update={"bucket": site.storage.app_buckets.get(bucket, bucket), "prefix": ""})


def readiness(view: SiteView, lags: dict[str, BucketLag], profile: models.WorkplaceProfile) -> SiteView:
    """``view`` not ready when a bucket with ``max_lag`` is further behind (or never synced)."""
    reasons = []
    for _, data in profile.buckets():
        if data.max_lag is None:
            continue
        lag = lags.get(data.bucket)
        if lag is None or lag.lag_s is None:
            reasons.append(f"bucket {data.bucket} not replicated yet")
        elif lag.lag_s > data.max_lag:
            reasons.append(f"bucket {data.bucket} {lag.lag_s:.0f}s behind (max {data.max_lag:.0f}s)")
    if not reasons:
        return view
    return dataclasses.replace(view, ready=False, ready_reasons=(*view.ready_reasons, *reasons))


def lag_document(lags: dict[str, BucketLag]) -> dict[str, dict[str, object]]:
    """The ``buckets`` entry of a site in ``status --json``."""
    return {name: {"lag_s": None if lag.lag_s is None else round(lag.lag_s, 1), "objects": lag.objects,
                   "pending_deletes": lag.pending_deletes, "error": lag.error,
                   "synced_at": lag.synced_at.isoformat() if lag.synced_at else None}
            for name, lag in sorted(lags.items())}

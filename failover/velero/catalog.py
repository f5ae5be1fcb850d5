"""A cache of complete backups per bucket, so that watching backup age stays cheap.

A backup's ``velero-backup.json`` no longer changes once it is Completed or PartiallyFailed, so
each complete backup is read once; every later round costs one listing of ``backups/`` plus a
read of each backup that was not complete (or not readable) the last time.
"""

from __future__ import annotations

import logging
from datetime import datetime

from failover import errors, s3
from failover.velero import bucket, models

logger = logging.getLogger(__name__)


class BackupCatalog:
    def __init__(self) -> None:
        self._complete: dict[tuple[str, str, str], dict[str, models.BackupInfo]] = {}

    @staticmethod
    def _key(loc: s3.S3Location) -> tuple[str, str, str]:
        return (loc.endpoint, loc.bucket, loc.prefix)

    async def newest_complete(self, loc: s3.S3Location) -> models.BackupInfo | None:
        """The newest complete backup in the bucket (by completion time), or None."""
        return max(await self.complete(loc), key=_completed, default=None)

    async def complete(self, loc: s3.S3Location) -> list[models.BackupInfo]:
        """Every complete backup in the bucket now."""
        known = self._complete.setdefault(self._key(loc), {})
        names = await bucket.list_backups(loc)
        for gone in set(known) - set(names):  # deleted (TTL) backups
            known.pop(gone)
        for name in names:
            if name in known:
                continue
            try:
                info = await bucket.read_backup(loc, name)
            except errors.PermanentError as exc:  # metadata not there yet (replication in progress)
                logger.debug("backup %s in %s not readable yet: %s", name, loc.bucket, exc)
                continue
            if info.is_complete and info.completion_timestamp is not None:
                known[name] = info
        return list(known.values())


def _completed(info: models.BackupInfo) -> datetime:
    assert info.completion_timestamp is not None  # only complete backups are cached
    return info.completion_timestamp

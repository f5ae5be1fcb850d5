"""What each standby's repository holds: its newest archived WAL segment, read from the bucket.

pgBackRest keeps segments as ``<repo>/archive/<stanza>/<pg version>-<id>/<timeline+log>/<segment>-
<sha1>.<ext>``. The newest one is found with three listings (the highest database id, its highest
timeline+log directory, the segments in it), so the cost does not grow with the archive. Its
``LastModified`` is when the segment reached this provider: how old it is, is how much the
standby would lose if the active site died now (the database's own RPO, beside the Velero backup
age). Read straight from the bucket, as the S3 client the daemon already has: no pgBackRest on the
daemon's host is needed for ``status``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from failover import s3
from failover.config import models
from failover.core import errors
from failover.health.model import SiteView

BACKUP_LABEL = re.compile(r"/\d{8}-\d{6}F(_\d{8}-\d{6}[DI])?/$")
SEGMENT = re.compile(r"^([0-9A-F]{24})-[0-9a-f]{40}(\.[a-z0-9]+)?$")


@dataclass(frozen=True)
class Segment:
    name: str  #: 24 hex digits: timeline, log, segment
    key: str
    archived_at: datetime

    @property
    def timeline(self) -> int:
        return int(self.name[:8], 16)


@dataclass(frozen=True)
class WalStatus:
    """One database's archive on one standby, as last read."""

    stanza: str
    newest: Segment | None
    checked_at: datetime
    error: str | None = None
    backups: int = 0  #: base backups in the repository (a recovery needs one)

    def age(self, now: datetime) -> float | None:
        return None if self.newest is None else max(0.0, (now - self.newest.archived_at).total_seconds())


def repo_location(storage: s3.S3Location, site: models.Site, data: models.PostgresData) -> s3.S3Location:
    """The bucket holding ``data``'s repository on ``site`` (same endpoint and credentials as its storage)."""
    return storage.model_copy(update={"bucket": site.storage.app_buckets.get(data.bucket, data.bucket), "prefix": ""})


def archive_prefix(data: models.PostgresData) -> str:
    return f"{data.repo_path.strip('/')}/archive/{data.stanza}/".lstrip("/")


def backup_prefix(data: models.PostgresData) -> str:
    return f"{data.repo_path.strip('/')}/backup/{data.stanza}/".lstrip("/")


async def backups(client: Any, loc: s3.S3Location, data: models.PostgresData) -> int:
    """How many base backups (full, differential, incremental) the repository holds."""
    return sum(1 for p in await s3.list_prefixes(client, loc, backup_prefix(data)) if BACKUP_LABEL.search(p))


async def _segments(client: Any, loc: s3.S3Location, prefix: str) -> list[Segment]:
    out: list[Segment] = []
    with s3.translating(f"LIST {loc.bucket}/{prefix}"):
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=loc.bucket, Prefix=prefix):
            for obj in page.get("Contents", []) or []:
                key = str(obj["Key"])
                match = SEGMENT.match(key.rsplit("/", 1)[-1])
                if match:
                    out.append(Segment(match.group(1), key, obj["LastModified"]))
    return sorted(out, key=lambda s: s.name)


def _db_id(prefix: str) -> int:
    """``.../15-2/`` -> 2 (pgBackRest's database history id; a stanza upgrade adds one)."""
    tail = prefix.rstrip("/").rsplit("/", 1)[-1]
    return int(tail.rsplit("-", 1)[-1]) if tail.rsplit("-", 1)[-1].isdigit() else -1


async def current_db(client: Any, loc: s3.S3Location, data: models.PostgresData) -> str | None:
    """The archive directory of the newest database id, or None when nothing was archived."""
    dbs = await s3.list_prefixes(client, loc, archive_prefix(data))
    return max(dbs, key=_db_id) if dbs else None


async def newest(client: Any, loc: s3.S3Location, data: models.PostgresData) -> Segment | None:
    """The newest archived segment (highest name: the latest timeline and position)."""
    db = await current_db(client, loc, data)
    if db is None:
        return None
    logs = sorted(await s3.list_prefixes(client, loc, db))
    for log in reversed(logs):  # a timeline switch leaves an empty-looking dir only for a moment
        segments = await _segments(client, loc, log)
        if segments:
            return segments[-1]
    return None


async def segments(client: Any, loc: s3.S3Location, data: models.PostgresData) -> list[Segment]:
    """Every archived segment of the newest database id (for naming a gap)."""
    db = await current_db(client, loc, data)
    return [] if db is None else await _segments(client, loc, db)


async def read(pool: s3.ClientPool, loc: s3.S3Location, data: models.PostgresData, *, now: datetime) -> WalStatus:
    """The archive's state on one standby; never raises (an error is part of the result)."""
    try:
        client = await pool.client(loc)
        segment = await newest(client, loc, data)
        count = await backups(client, loc, data)
    except errors.FailoverError as exc:
        return WalStatus(data.stanza, None, now, error=str(exc))
    return WalStatus(data.stanza, segment, now, backups=count)


def readiness(view: SiteView, statuses: dict[str, WalStatus], profile: models.WorkplaceProfile, *,
              max_wal_age: float | None, now: datetime) -> SiteView:
    """``view`` not ready when a database's newest archived WAL there is older than ``max_wal_age``
    (``policy.max_wal_age``), missing, or unreadable."""
    reasons: list[str] = []
    for _, data in profile.databases() if max_wal_age is not None else []:
        status = statuses.get(data.stanza)
        age = status.age(now) if status is not None else None
        if status is None:
            reasons.append(f"database {data.stanza}: archived WAL not read yet")
            continue
        if status.error and age is None:
            reasons.append(f"database {data.stanza}: cannot read the WAL archive ({status.error})")
            continue
        if age is None:
            reasons.append(f"database {data.stanza}: no WAL archived to this site")
        elif max_wal_age is not None and age > max_wal_age:
            reasons.append(f"database {data.stanza}: newest archived WAL is {age:.0f}s old (max {max_wal_age:.0f}s)")
        if status.backups == 0:
            reasons.append(f"database {data.stanza}: no base backup in this site's repository yet")
    if not reasons:
        return view
    return dataclasses.replace(view, ready=False, ready_reasons=(*view.ready_reasons, *reasons))


def document(statuses: dict[str, WalStatus], *, now: datetime) -> dict[str, dict[str, object]]:
    """The ``wal`` entry of a site in ``status --json``."""
    out: dict[str, dict[str, object]] = {}
    for stanza, st in sorted(statuses.items()):
        age = st.age(now)
        out[stanza] = {"newest_segment": st.newest.name if st.newest else None,
                       "archived_at": st.newest.archived_at.isoformat() if st.newest else None,
                       "age_s": None if age is None else round(age, 1), "backups": st.backups, "error": st.error}
    return out

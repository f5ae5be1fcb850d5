"""The databases in a failover: recover the target's PostgreSQL to the newest archived point, and
(planned switchover) archive the source's last segment first so nothing is lost.

``pg-recover`` restores every ``data: [{kind: postgresql}]`` database of the profile on the target
from the pgBackRest repository in the target's own bucket and replays the archived WAL up to its end
(:mod:`failover.pgwal.recovery`); it is idempotent and resumes after ``kill -9`` without recovering
twice. A gap in the archive (a missing or corrupt segment) ends the recovery at the last consistent
point and is reported as a finding naming the segment; a recovery that cannot reach consistency
fails the step and leaves the database stopped. The output carries ``recovered_to`` (the last
replayed commit): the database tier's data-loss window is the outage start minus that time.

``pg-final-archive`` (switchover, after the quiesce) switches the source's WAL segment and waits
until the archiver has pushed it to every standby repository: the target then recovers every
acknowledged write.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, ConfigDict, Field

from failover import s3
from failover.actions import common
from failover.config import models
from failover.config.runtime import SiteEndpoints
from failover.core import errors
from failover.pgwal import archive, pgbackrest, recovery
from failover.playbook import registry
from failover.playbook.engine import StepContext, StepResult


class RecoverParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site: str
    outage_started_at: str = Field(default="", description="ISO time: the data-loss window is measured from it")


def _repo(site: SiteEndpoints, data: models.PostgresData) -> pgbackrest.Repo:
    db, loc = site.database, site.storage
    if db is None or loc is None:
        raise errors.PermanentError(f"site {site.name} has no database (sites[].database) or bucket configured")
    bucket = archive.repo_location(loc, site.site, data).bucket
    return pgbackrest.Repo(host=db.repo_host, port=db.repo_port, bucket=bucket, region=loc.region,
                           path=data.repo_path, access_key=loc.access_key.get_secret_value(),
                           secret_key=loc.secret_key.get_secret_value(), verify_tls=db.verify_tls,
                           ca_file=db.ca_file)


@registry.action("pg-recover", params=RecoverParams, timeout=900)
async def pg_recover(ctx: StepContext, p: RecoverParams) -> StepResult:
    """Recover each archived database on the target to the end of its archive (exactly once)."""
    svc = common.services(ctx)
    site = svc.site(p.site)
    found = svc.runtime.profile.databases()
    if not found:
        return {"site": p.site, "databases": {}}
    if site.database is None or site.storage is None:  # the database comes back with the Velero backup only
        ctx.progress(f"{p.site} has no database configured (sites[].database): no WAL recovery, "
                     "the database is as old as the restored backup")
        return {"site": p.site, "databases": {}, "skipped": "no database configured on the target"}
    outage = common.parse_time(p.outage_started_at)
    out: dict[str, dict[str, str | int | float | None]] = {}
    findings: list[str] = []
    for _, data in found:
        target = recovery.Target(site=p.site, key=f"{ctx.run_id}/{ctx.key}/{data.stanza}", db=site.database,
                                 stanza=data.stanza, repo=_repo(site, data), timeout=data.recovery_timeout)
        loc = archive.repo_location(site.storage, site.site, data)

        async def listing(loc: s3.S3Location = loc, data: models.PostgresData = data) -> list[archive.Segment]:
            async with s3.ClientPool() as pool:
                return await archive.segments(await pool.client(loc), loc, data)

        result = await recovery.recover(target, list_segments=listing, progress=ctx.progress)
        window = None
        recovered_to = common.parse_time(result.recovered_to)
        if outage is not None and recovered_to is not None:
            window = round(max(0.0, (outage - recovered_to).total_seconds()), 3)
        if result.gap:
            findings.append(result.gap)
            ctx.log.warning("%s", result.gap)
        loss = f", data-loss window {window:.1f}s" if window is not None else ""
        ctx.progress(f"database {data.stanza} on {p.site} recovered to {result.recovered_to or 'its base backup'} "
                     f"(timeline {result.timeline}{loss}{', WAL GAP' if result.gap else ''})")
        out[data.stanza] = {"recovered_to": result.recovered_to, "timeline": result.timeline,
                            "switch_lsn": result.switch_lsn, "newest_archived": result.newest_archived,
                            "end_segment": result.end_segment, "data_loss_window_s": window, "gap": result.gap}
    first = next(iter(out.values()))
    return {"site": p.site, "databases": out, "findings": findings,  # type: ignore[dict-item]
            "recovered_to": first["recovered_to"], "data_loss_window_s": first["data_loss_window_s"]}


class FinalArchiveParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site: str
    timeout: float = 60.0
    stop: bool = Field(default=True, description="stop the source's database once its last segment is archived")


@registry.action("pg-final-archive", params=FinalArchiveParams, timeout=120)
async def pg_final_archive(ctx: StepContext, p: FinalArchiveParams) -> StepResult:
    """Switch the source's WAL segment and wait until it is archived (idempotent: a second switch
    of an idle segment is a no-op, and the wait is for the segment the switch returned)."""
    svc = common.services(ctx)
    site = svc.site(p.site)
    if not svc.runtime.profile.databases() or site.database is None:
        return {"site": p.site, "segment": None}
    data = svc.runtime.profile.databases()[0][1]
    target = recovery.Target(site=p.site, key="", db=site.database, stanza=data.stanza, repo=None,
                             timeout=p.timeout)
    if not recovery.postmaster_running(site.database):
        ctx.progress(f"the database on {p.site} is stopped: it archived its completed segments before "
                     "(a resumed step, or stopped by hand)")
        return {"site": p.site, "segment": None}
    segment = await recovery.psql(target, "SELECT pg_walfile_name(pg_switch_wal())")
    if not segment:
        raise errors.TemporaryError(f"the database on {p.site} did not answer pg_switch_wal()")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + p.timeout
    while loop.time() < deadline:
        archived = await recovery.psql(target, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
        if archived and archived[:24] >= segment:
            ctx.progress(f"{p.site}: segment {segment} archived to every standby")
            if p.stop:  # nothing may be written on the source any more
                await recovery.stop(target, mode="fast")
            return {"site": p.site, "segment": segment}
        await asyncio.sleep(0.2)
    raise errors.TemporaryError(f"{p.site}: segment {segment} was not archived within {p.timeout:g}s")

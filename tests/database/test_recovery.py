"""Point-in-time recovery from a standby's own repository: to the end of the archive in a failover
(resumed exactly once after ``kill -9``), and stopped at the last consistent point, with a finding
naming the segment, when the archive has a gap. Runs after the archive tests (it breaks the active site)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from failover import daemon as daemon_mod
from failover import s3
from failover.actions.database import _repo
from failover.config.runtime import Runtime
from failover.core import errors
from failover.lab import postgres as lab_postgres
from failover.lab.control import ControlClient
from failover.lab.generator import WorkloadGenerator
from failover.pgwal import archive, recovery
from failover.store import sqlite
from tests.e2e.conftest import Lab, wait_for

pytestmark = pytest.mark.timeout(480)

ACTIVE, TARGET = "ionos-de-fra", "stackit-eu01"


def target(rt: Runtime, site: str, key: str) -> recovery.Target:
    data = rt.profile.databases()[0][1]
    ep = rt.sites[site]
    assert ep.database is not None
    return recovery.Target(site=site, key=key, db=ep.database, stanza=data.stanza, repo=_repo(ep, data), timeout=120)


def bucket(rt: Runtime, site: str) -> s3.S3Location:
    loc = rt.sites[site].storage
    assert loc is not None
    return archive.repo_location(loc, rt.sites[site].site, rt.profile.databases()[0][1])


async def segments(rt: Runtime, site: str) -> list[archive.Segment]:
    data = rt.profile.databases()[0][1]
    async with s3.ClientPool() as pool:
        return await archive.segments(await pool.client(bucket(rt, site)), bucket(rt, site), data)


async def recover(rt: Runtime, site: str, key: str) -> recovery.Recovered:
    return await recovery.recover(target(rt, site, key), list_segments=lambda: segments(rt, site),
                                  progress=lambda _: None)


async def backup_stop(rt: Runtime, site: str) -> str | None:
    """The last WAL segment the repository's newest base backup needs (from its ``backup.info``)."""
    data = rt.profile.databases()[0][1]
    loc = bucket(rt, site)
    async with s3.ClientPool() as pool:
        try:
            text = (await s3.get_bytes(await pool.client(loc), loc,
                                       f"{archive.backup_prefix(data)}backup.info")).decode()
        except errors.PermanentError:
            return None
    stops = re.findall(r'"backup-archive-stop":"([0-9A-F]{24})"', text)
    return max(stops) if stops else None


async def a_late_segment(rt: Runtime, site: str) -> archive.Segment:
    """A segment archived a few segments after the base backup's end (the lab takes it after `lab up`)."""

    async def late() -> archive.Segment | None:
        stop = await backup_stop(rt, site)
        after = [s for s in await segments(rt, site) if stop is not None and s.name > stop]
        return after[2] if len(after) >= 5 else None

    found: archive.Segment = await wait_for(late, timeout=120, what=f"a base backup and segments after it on {site}")
    return found


async def test_a_missing_segment_stops_recovery_at_the_last_consistent_point_and_is_named(pg_lab: Lab) -> None:
    rt = pg_lab.runtime()
    gone = await a_late_segment(rt, "otc-eu-de")
    async with s3.ClientPool() as pool:
        await (await pool.client(bucket(rt, "otc-eu-de"))).delete_object(Bucket=bucket(rt, "otc-eu-de").bucket,
                                                                           Key=gone.key)
    result = await recover(rt, "otc-eu-de", "test/missing")
    assert result.gap is not None and gone.name in result.gap and "missing" in result.gap, result
    assert result.end_segment == gone.name and result.timeline == 2
    db = rt.sites["otc-eu-de"].database
    assert db is not None and await lab_postgres.record_ids(db.port) is not None
    assert await recovery.psql(target(rt, "otc-eu-de", "test/missing"), "SELECT pg_is_in_recovery()") == "f"


async def test_a_corrupt_segment_is_named_as_such(pg_lab: Lab) -> None:
    rt = pg_lab.runtime()
    bad = await a_late_segment(rt, "scs-pco-prod1")
    loc = bucket(rt, "scs-pco-prod1")
    async with s3.ClientPool() as pool:
        await s3.put_bytes(await pool.client(loc), loc, bad.key, b"\x00garbage, not lz4" * 64)
    result = await recover(rt, "scs-pco-prod1", "test/corrupt")
    assert result.gap is not None and bad.name in result.gap and "corrupt" in result.gap, result


async def test_a_gap_before_consistency_fails_and_leaves_the_database_stopped(pg_lab: Lab) -> None:
    rt = pg_lab.runtime()
    t = target(rt, "otc-eu-de", "test/inconsistent")
    needed = await backup_stop(rt, "otc-eu-de")  # the base backup's last WAL: needed for consistency
    loc = bucket(rt, "otc-eu-de")
    victims = [s for s in await segments(rt, "otc-eu-de") if s.name == needed]
    assert victims, needed
    async with s3.ClientPool() as pool:
        await (await pool.client(loc)).delete_object(Bucket=loc.bucket, Key=victims[0].key)
    with pytest.raises(errors.PermanentError, match="stopped during recovery"):
        await recover(rt, "otc-eu-de", "test/inconsistent")
    assert not recovery.postmaster_running(t.db)  # never a half-recovered database that answers


def start_daemon(lab: Lab) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "failover.cli", "--config", str(lab.config), "daemon"],
                            env=lab.env(FAILOVER_NODE="pgwal-test"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def recovery_phase(rt: Runtime, site: str) -> str | None:
    db = rt.sites[site].database
    assert db is not None
    path = db.data_dir.parent / f"{db.data_dir.name}.failover-recovery.json"
    try:
        return str(json.loads(path.read_text(encoding="utf-8")).get("phase"))
    except (OSError, ValueError):
        return None


async def test_failover_recovers_the_database_to_the_outage_and_resumes_after_kill_9(
        pg_lab: Lab, tmp_path: Path) -> None:
    rt = pg_lab.runtime()
    store = daemon_mod.open_store(rt)
    assert isinstance(store, sqlite.SqliteStore)
    gen = WorkloadGenerator.for_runtime(rt, state_dir=tmp_path, rate=5.0)
    writing = asyncio.ensure_future(gen.run())
    proc = start_daemon(pg_lab)
    try:
        def target_ready() -> bool:
            doc = store.get_state("status")
            return isinstance(doc, dict) and bool(doc["sites"][TARGET]["ready"])

        await wait_for(target_ready, timeout=180, what=f"{TARGET} ready (a replicated backup, fresh WAL)")
        await wait_for(lambda: len(gen.acked) >= 15, timeout=60, what="15 acknowledged records")
        pg_lab.cli("lab", "break", ACTIVE, "--mode", "down")
        await wait_for(lambda: recovery_phase(rt, TARGET) in ("restoring", "restored"), timeout=120,
                       what=f"the database recovery on {TARGET}", interval=0.05)
        gen.stop()
        proc.kill()  # kill -9 in the middle of the recovery
        proc.wait()
        proc = start_daemon(pg_lab)

        def finished() -> str | None:
            runs = store.list_runs(limit=1)
            return str(runs[0].phase) if runs and str(runs[0].phase) in daemon_mod.TERMINAL else None

        assert await wait_for(finished, timeout=240, what="the failover run to end") == "succeeded"
    finally:
        gen.stop()
        await writing
        proc.kill()
        proc.wait()
    runs = store.list_runs(limit=5)
    assert len(runs) == 1
    doc = daemon_mod.run_document(store, str(runs[0].id))
    succeeded = Counter(s["key"] for s in doc["steps"] if s["status"] == "succeeded")
    assert succeeded["recover-databases"] == 1, succeeded
    step = next(s for s in doc["steps"] if s["key"] == "recover-databases" and s["status"] == "succeeded")
    out = step["output"]["databases"]["opendesk"]
    assert out["gap"] is None and out["timeline"] == 2, out  # recovered once: one new timeline
    t = target(rt, TARGET, "")
    assert await recovery.psql(t, "SELECT count(*) FROM pg_ls_waldir() WHERE name LIKE '%.history'") == "1"
    db = rt.sites[TARGET].database
    assert db is not None
    in_db = await lab_postgres.record_ids(db.port)
    control = ControlClient(str(pg_lab.runtime().lab["control"]))  # type: ignore[index]
    in_backup = set(await control.records(TARGET))
    lost_db, lost_backup = gen.lost(in_db), gen.lost(in_backup)
    assert set(lost_db) <= set(lost_backup), (lost_db, lost_backup)  # WAL keeps all the backup kept, and more
    held = [gen.acked[i] for i in in_db if i in gen.acked]
    assert held and all(gen.acked[i] > max(held) for i in lost_db)  # only the newest writes are lost: no hole

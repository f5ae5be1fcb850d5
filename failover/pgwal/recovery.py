"""Point-in-time recovery of a site's database from its own repository, resumable after ``kill -9``.

The target restores the newest base backup from the pgBackRest repository in its own bucket and
replays every archived WAL segment (``--type=default``: to the end of the archive), then promotes.
The procedure keeps a small state file beside the data directory, keyed by the step that owns it:

* ``restoring`` — the restore may be half done: it is wiped and done again (the target never served);
* ``restored`` — the data directory is whole: the cluster is started (again) and recovery goes on
  where PostgreSQL left it; a cluster that already promoted is only inspected, never restored
  again (a second recovery would be a second timeline: the run recovers exactly once);
* ``recovered`` — done: the stored result is returned.

Where recovery ended is read from the new timeline's history file (the switch point) and compared
with the archive's listing: when the archive holds segments beyond it, the segment at the switch
point is named as the **gap** (missing, or present but unreadable/corrupt) — the database is
consistent at the last point before it, and the finding says what was not replayed. A database that
cannot reach consistency (a segment missing before the end of the base backup) fails the step: it
is stopped and never reported ready.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from failover.config.runtime import DatabaseEndpoint
from failover.core import errors
from failover.pgwal import archive, pgbackrest

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recovered:
    """Where a recovery ended."""

    timeline: int
    switch_lsn: str  #: where the new timeline starts (recovery ended here)
    end_segment: str  #: the first segment (parent timeline) not fully replayed
    recovered_to: str | None  #: commit time of the last replayed transaction (ISO 8601)
    newest_archived: str | None  #: the newest segment the repository held
    gap: str | None  #: a finding naming the gap, None when recovery reached the end of the archive


@dataclass(frozen=True)
class Target:
    """What to recover, where from."""

    site: str
    key: str  #: the owner (run + step): a resumed step finds its own state
    db: DatabaseEndpoint
    stanza: str
    repo: pgbackrest.Repo | None  #: None: only queries (the source of a switchover)
    timeout: float

    @property
    def home(self) -> Path:
        return self.db.data_dir.parent

    @property
    def state_file(self) -> Path:
        return self.home / f"{self.db.data_dir.name}.failover-recovery.json"

    @property
    def config(self) -> Path:
        return self.home / "failover-pgbackrest.conf"


def read_state(t: Target) -> dict[str, object]:
    try:
        doc = json.loads(t.state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) and doc.get("key") == t.key else {}


def write_state(t: Target, **doc: object) -> None:
    tmp = t.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"key": t.key, **doc}), encoding="utf-8")
    os.replace(tmp, t.state_file)


async def psql(t: Target, sql: str, *, timeout: float = 10.0) -> str | None:
    """One query's single value over the socket (None when the server does not answer)."""
    db = t.db
    try:
        result = await pgbackrest.run([str(db.bin_dir / "psql"), "-X", "-A", "-t", "-q", "-h", str(db.socket_dir),
                                       "-p", str(db.port), "-U", "postgres", "-d", "postgres", "-c", sql],
                                      user=db.os_user, timeout=timeout)
    except TimeoutError:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def postmaster_running(db: DatabaseEndpoint) -> bool:
    try:
        pid = int((db.data_dir / "postmaster.pid").read_text(encoding="utf-8").splitlines()[0])
        return b"postgres" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return False


async def _pg_ctl(t: Target, *args: str, timeout: float = 60.0) -> pgbackrest.Result:
    db = t.db
    return await pgbackrest.run([str(db.bin_dir / "pg_ctl"), "-D", str(db.data_dir), *args],
                                user=db.os_user, timeout=timeout)


async def stop(t: Target, *, mode: str = "immediate") -> None:
    if postmaster_running(t.db):
        await _pg_ctl(t, "stop", "-m", mode, "-w")


async def start(t: Target) -> None:
    """Start the cluster on the site's port and socket (no wait: recovery may take long)."""
    if postmaster_running(t.db):
        return
    options = f"-p {t.db.port} -k {t.db.socket_dir} -c listen_addresses=127.0.0.1 -c archive_mode=off"
    result = await _pg_ctl(t, "-l", str(t.home / "postgresql-recovery.log"), "-o", options, "-W", "start")
    if result.returncode != 0:
        raise errors.PermanentError(f"pg_ctl start on {t.site} failed: {result.tail()}")


async def restore(t: Target, *, newest: str | None, progress: Callable[[str], None]) -> None:
    """Wipe the data directory and restore the newest backup (replay to the end of the archive).

    ``newest`` is the newest segment the archive held when the recovery began: a segment at or
    before it that recovery could not replay is a gap; later ones arrived meanwhile (a live source)."""
    if t.repo is None:
        raise errors.PermanentError(f"no repository to restore {t.site} from")
    await stop(t)
    write_state(t, phase="restoring", newest=newest)
    db = t.db
    if db.data_dir.exists():
        for child in db.data_dir.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    db.data_dir.mkdir(mode=0o700, exist_ok=True)
    pgbackrest.chown(db.data_dir, db.os_user)
    for sub in ("failover-pgbackrest-log", "failover-pgbackrest-lock", "failover-pgbackrest-spool"):
        (t.home / sub).mkdir(exist_ok=True)
        pgbackrest.chown(t.home / sub, db.os_user)
    pgbackrest.write_private(t.config, pgbackrest.render(
        stanza=t.stanza, repos=[t.repo], log_dir=t.home / "failover-pgbackrest-log",
        lock_dir=t.home / "failover-pgbackrest-lock", spool_dir=t.home / "failover-pgbackrest-spool", prefetch=True,
        cluster=pgbackrest.Cluster(data_dir=db.data_dir, port=db.port, socket_dir=db.socket_dir)), owner=db.os_user)
    progress(f"restoring the newest base backup of {t.stanza} on {t.site} from its repository")
    await pgbackrest.pgbackrest(t.config, t.stanza, "restore", "--type=default", "--archive-mode=off",
                                user=db.os_user, timeout=t.timeout)
    write_state(t, phase="restored", newest=newest)


async def wait_promoted(t: Target, *, progress: Callable[[str], None]) -> None:
    """Until the cluster has replayed the archive and promoted; PermanentError if it dies."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + t.timeout
    said = False
    while loop.time() < deadline:
        if not postmaster_running(t.db):
            await asyncio.sleep(0.3)  # pg_ctl -W: the postmaster may not have written its pid yet
            if not postmaster_running(t.db):
                raise errors.PermanentError(
                    f"the database on {t.site} stopped during recovery (not ready): {_log_tail(t)}")
        answer = await psql(t, "SELECT pg_is_in_recovery()")
        if answer == "f":
            return
        if answer == "t" and not said:
            progress(f"replaying archived WAL on {t.site}")
            said = True
        await asyncio.sleep(0.3)
    raise errors.TemporaryError(f"the database on {t.site} did not finish recovery within {t.timeout:g}s")


def _log_tail(t: Target, lines: int = 4) -> str:
    try:
        text = (t.home / "postgresql-recovery.log").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "no log"
    wanted = [ln for ln in text.splitlines() if "FATAL" in ln or "PANIC" in ln] or text.splitlines()
    return " | ".join(wanted[-lines:])


def segment_name(timeline: int, lsn: int, segment_size: int) -> str:
    number = lsn // segment_size
    per_log = 0x100000000 // segment_size
    return f"{timeline:08X}{number // per_log:08X}{number % per_log:08X}"


def parse_lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


async def inspect(t: Target, segments: list[archive.Segment], *, newest_at_start: str | None) -> Recovered:
    """Where recovery ended (the newest history file), compared with what the archive holds."""
    history_name = await psql(t, "SELECT name FROM pg_ls_waldir() WHERE name LIKE '%.history' "
                                 "ORDER BY name DESC LIMIT 1")
    size = int(await psql(t, "SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'") or 16777216)
    replayed = await psql(t, "SELECT pg_last_xact_replay_timestamp()")
    if not history_name:
        raise errors.PermanentError(f"the database on {t.site} promoted without a new timeline")
    history = await psql(t, f"SELECT pg_read_file('pg_wal/{history_name}')") or ""
    last = [ln.split() for ln in history.splitlines() if ln.strip() and not ln.startswith("#")][-1]
    parent, switch = int(last[0]), last[1]
    end = segment_name(parent, parse_lsn(switch), size)
    on_parent = [s for s in segments if s.timeline == parent and (newest_at_start is None or s.name <= newest_at_start)]
    newest = on_parent[-1].name if on_parent else None
    gap = None
    if newest is not None and newest >= end:
        held = {s.name for s in on_parent}
        what = "present but unreadable (corrupt)" if end in held else "missing"
        later = sum(1 for s in on_parent if s.name > end)
        gap = (f"WAL gap on {t.site}: segment {end} is {what}; recovery stopped at {switch} (the last consistent "
               f"point), {later} later archived segment(s) up to {newest} were not replayed")
    return Recovered(timeline=int(history_name[:8], 16), switch_lsn=switch, end_segment=end,
                     recovered_to=_iso(replayed), newest_archived=newest, gap=gap)


def _iso(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace(" ", "T")).isoformat()
    except ValueError:
        return None


async def recover(t: Target, *, list_segments: Callable[[], Awaitable[list[archive.Segment]]],
                  progress: Callable[[str], None]) -> Recovered:
    """Recover ``t`` exactly once (see the module docstring for the resume rules)."""
    state = read_state(t)
    if state.get("phase") == "recovered" and isinstance(state.get("result"), dict):
        await start(t)
        await wait_promoted(t, progress=progress)
        return Recovered(**state["result"])  # type: ignore[arg-type]
    newest = state.get("newest") if isinstance(state.get("newest"), str) else None
    if state.get("phase") != "restored":
        available = await list_segments()
        newest = available[-1].name if available else None
        await restore(t, newest=newest, progress=progress)
    else:
        progress(f"resuming the recovery on {t.site} (restore already complete)")
    await start(t)
    try:
        await wait_promoted(t, progress=progress)
    except errors.PermanentError:
        await stop(t)
        raise
    segments = await list_segments()
    result = await inspect(t, segments, newest_at_start=str(newest) if newest else None)
    write_state(t, phase="recovered", result=asdict(result))
    return result

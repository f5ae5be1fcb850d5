"""The lab's databases: a PostgreSQL 15 cluster per site, WAL archived to the standbys' buckets.

With ``lab: {postgres: true}`` the lab gives every site a database place (data directory, port,
socket directory) in one private directory under the system temp dir, owned by ``postgres``
(``initdb``/``postgres`` refuse root; pytest's and the state dir's parents may be private, so
the directory is not under them). Only the active site's cluster is created and started: its
``archive_command`` is ``pgbackrest archive-push`` to one repository per standby, each in that
standby's bucket on its own provider's ``moto_server``. pgBackRest 2.45 speaks only https to S3,
so one ``stunnel`` serves TLS in front of each provider's storage fault proxy (a ``storage``
fault cuts archiving too), with the lab CA's server certificate; pgBackRest verifies it against
the lab CA (``repo-storage-verify-tls`` stays on). A standby's place stays empty until a
failover recovers into it (:mod:`failover.pgwal.recovery`, the product's).

The archive settings are passed on the ``postgres`` command line, not written into the data
directory, so a cluster restored from a backup never archives into the old site's repositories.
A provider outage (``down``, ``blackhole``) freezes the site's database (SIGSTOP of its process
group): nothing more leaves the lost site, as with a real outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from failover import s3
from failover.core import errors, tasks
from failover.lab import pdns
from failover.pgwal import pgbackrest

logger = logging.getLogger(__name__)

BIN = Path("/usr/lib/postgresql/15/bin")
OS_USER = "postgres"
STANZA_TIMEOUT = 60.0
BACKUP_TIMEOUT = 120.0
RECORDS_TABLE = """CREATE TABLE IF NOT EXISTS records (
    id text PRIMARY KEY, component text NOT NULL, body text NOT NULL,
    written_at timestamptz NOT NULL DEFAULT clock_timestamp())"""


@dataclass(frozen=True)
class Storage:
    """A provider's storage as the lab's database reaches it: its fault proxy, and credentials."""

    kind: str
    proxy_port: int
    access_key: str
    secret_key: str = field(repr=False)
    location: Callable[[str], s3.S3Location]  #: a bucket on this storage, as the lab's S3 clients reach it


@dataclass(frozen=True)
class SitePlan:
    name: str
    kind: str  #: provider kind
    bucket: str
    active: bool
    standby: bool


@dataclass
class SiteDb:
    """One site's database place (and, on the active site, its running cluster)."""

    name: str
    kind: str  #: the site's provider kind (its storage's TLS front)
    root: Path
    port: int
    process: asyncio.subprocess.Process | None = None
    frozen: bool = False

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        first = (data_dir / "postmaster.pid").read_text(encoding="utf-8").splitlines()[0]
        return int(first)
    except (OSError, ValueError, IndexError):
        return None


def _processes_with(needle: str) -> list[int]:
    """PIDs whose command line contains ``needle``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def stop_clusters(directory: Path) -> None:
    """Stop every PostgreSQL running on a data directory under ``directory`` (immediate; idempotent).

    Also what ``lab down`` does after a supervisor crash: a cluster the product started with
    ``pg_ctl`` (a recovered standby) is no child of anyone the records name."""
    for pidfile in directory.glob("*/data/postmaster.pid"):
        pid = _postmaster_pid(pidfile.parent)
        if pid is None:
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"postgres" in cmdline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGQUIT)  # immediate shutdown: the lab keeps nothing
    for other in _processes_with(f"--config={directory}/"):  # pgBackRest's own sessions (async push, restore)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(other, signal.SIGCONT)
            os.kill(other, signal.SIGTERM)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        alive = [p for p in directory.glob("*/data/postmaster.pid")
                 if (pid := _postmaster_pid(p.parent)) is not None and Path(f"/proc/{pid}").exists()]
        if not alive and not _processes_with(f"--config={directory}/"):
            return
        time.sleep(0.05)


class LabDatabases:
    """Every site's database place, the active site's cluster, and the TLS fronts of the storages."""

    def __init__(self, *, root: Path, stanza: str, repo_path: str, archive_timeout: int, region: str) -> None:
        self.root = root
        self.stanza = stanza
        self.repo_path = repo_path
        self.archive_timeout = archive_timeout
        self.region = region
        self.sites: dict[str, SiteDb] = {}
        self.tls_ports: dict[str, int] = {}  #: provider kind -> stunnel's port
        self.stunnel: asyncio.subprocess.Process | None = None
        self.ca_file = root / "ca.crt"
        self.conf = root / "pgbackrest.conf"
        self._heartbeat: asyncio.Task[None | None] | None = None
        self._backups: asyncio.Task[None | None] | None = None
        self.backups_done: list[int] = []  #: repositories that hold a base backup

    @classmethod
    def make_root(cls) -> Path:
        root = Path(tempfile.mkdtemp(prefix="failover-pg-"))
        pgbackrest.chown(root, OS_USER)
        return root

    # --- start ----------------------------------------------------------------------------------
    async def start(self, *, plans: list[SitePlan], storages: dict[str, Storage], ca_file: Path, cert: Path,
                    key: Path, logs: Path, on_spawn: Callable[[str, int, str], None]) -> None:
        shutil.copyfile(ca_file, self.ca_file)
        os.chmod(self.ca_file, 0o644)
        for d in ("log", "lock", "spool"):
            (self.root / d).mkdir(exist_ok=True)
            pgbackrest.chown(self.root / d, OS_USER)
        await self._start_stunnel(storages, cert=cert, key=key, logs=logs, on_spawn=on_spawn)
        for plan in plans:
            site_root = self.root / plan.name
            site_root.mkdir()
            for sub in ("data", "sock"):
                (site_root / sub).mkdir(mode=0o700)
                pgbackrest.chown(site_root / sub, OS_USER)
            pgbackrest.chown(site_root, OS_USER)
            self.sites[plan.name] = SiteDb(plan.name, plan.kind, site_root, pdns.free_port())
        active = next(p for p in plans if p.active)
        for plan in plans:  # the repositories' buckets (the sites create them too; idempotent)
            if plan.standby:
                await s3.ensure_bucket(storages[plan.kind].location(plan.bucket))
        repos = [self.repo(p, storages[p.kind]) for p in plans if p.standby]
        db = self.sites[active.name]
        pgbackrest.write_private(self.conf, pgbackrest.render(
            stanza=self.stanza, repos=repos, log_dir=self.root / "log", lock_dir=self.root / "lock",
            spool_dir=self.root / "spool", push_async=True,
            cluster=pgbackrest.Cluster(data_dir=db.data_dir, port=db.port, socket_dir=db.socket_dir)), owner=OS_USER)
        await self._initdb(db)
        await self._start_cluster(db, logs=logs, on_spawn=on_spawn)
        await self._create_schema(db)
        self._heartbeat = tasks.create_guarded_task(self._beat(db), name=f"database heartbeat {db.name}")
        await pgbackrest.pgbackrest(self.conf, self.stanza, "stanza-create", user=OS_USER, timeout=STANZA_TIMEOUT)
        # the base backups run after `lab up` returns (each takes seconds); a standby is ready only
        # once its repository holds one (the product's readiness reads the repository)
        self._backups = tasks.create_guarded_task(self._base_backups(active.name, len(repos)),
                                                  name="database base backups")

    async def _base_backups(self, site: str, repos: int) -> None:
        t0 = time.monotonic()
        for n in range(1, repos + 1):  # a base backup in every standby's repository
            # its WAL reaches the repositories with every other segment (the standbys' readiness
            # checks the archive's age); not waiting for it in the backup saves seconds per repository
            await pgbackrest.pgbackrest(self.conf, self.stanza, "backup", f"--repo={n}", "--type=full",
                                        "--no-archive-check", user=OS_USER, timeout=BACKUP_TIMEOUT)
            self.backups_done.append(n)
        logger.info("database %s: %d base backups in %.1fs", site, repos, time.monotonic() - t0)

    def repo(self, plan: SitePlan, storage: Storage) -> pgbackrest.Repo:
        return pgbackrest.Repo(host="localhost", port=self.tls_ports[plan.kind], bucket=plan.bucket,
                               region=self.region, path=self.repo_path, access_key=storage.access_key,
                               secret_key=storage.secret_key, verify_tls=True, ca_file=self.ca_file)

    async def _start_stunnel(self, storages: dict[str, Storage], *, cert: Path, key: Path, logs: Path,
                             on_spawn: Callable[[str, int, str], None]) -> None:
        lines = ["foreground = yes", "pid =", "syslog = no", f"output = {logs / 'stunnel.log'}", ""]
        for kind, storage in sorted(storages.items()):
            self.tls_ports[kind] = pdns.free_port()
            lines += [f"[{kind}]", f"accept = 127.0.0.1:{self.tls_ports[kind]}",
                      f"connect = 127.0.0.1:{storage.proxy_port}", f"cert = {cert}", f"key = {key}", ""]
        conf = self.root / "stunnel.conf"
        conf.write_text("\n".join(lines), encoding="utf-8")
        binary = shutil.which("stunnel4") or shutil.which("stunnel")
        if binary is None:
            raise errors.PermanentError("stunnel is not installed (apt-get install stunnel4)")
        self.stunnel = await asyncio.create_subprocess_exec(
            binary, str(conf), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
        on_spawn("stunnel", self.stunnel.pid, "stunnel")
        for port in self.tls_ports.values():
            await _wait_port(port, what="stunnel", process=self.stunnel)

    async def _initdb(self, db: SiteDb) -> None:
        result = await pgbackrest.run(
            [str(BIN / "initdb"), "-D", str(db.data_dir), "--auth=trust", "--username=postgres", "--no-sync",
             "--wal-segsize=1", "-E", "UTF8", "--locale=C"], user=OS_USER, timeout=60.0)
        if result.returncode != 0:
            raise errors.PermanentError(f"initdb for {db.name} failed: {result.tail()}")

    async def _start_cluster(self, db: SiteDb, *, logs: Path, on_spawn: Callable[[str, int, str], None]) -> None:
        archive = f"pgbackrest --config={self.conf} --stanza={self.stanza} archive-push %p"
        settings = {"port": db.port, "listen_addresses": "127.0.0.1", "unix_socket_directories": db.socket_dir,
                    "wal_level": "replica", "archive_mode": "on", "archive_command": archive,
                    "archive_timeout": self.archive_timeout, "fsync": "off", "shared_buffers": "16MB",
                    "max_connections": 40, "max_wal_size": "64MB", "min_wal_size": "8MB"}
        argv = [str(BIN / "postgres"), "-D", str(db.data_dir)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        log = open(logs / f"postgres-{db.name}.log", "ab")
        try:
            db.process = await asyncio.create_subprocess_exec(
                *pgbackrest.as_user(argv, OS_USER), stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)
        finally:
            log.close()
        on_spawn(f"postgres-{db.name}", db.process.pid, "postgres")
        await _wait_port(db.port, what=f"postgres of {db.name}", process=db.process)

    async def _beat(self, db: SiteDb) -> None:
        """One small write per ``archive_timeout``, as a monitoring heartbeat does: an idle database
        still switches segments, so a standby's archived-WAL age measures loss, not idleness."""
        while True:
            with contextlib.suppress(Exception):
                conn = await asyncpg.connect(host="127.0.0.1", port=db.port, user="postgres", database="postgres",
                                             timeout=2)
                try:
                    while True:
                        await asyncio.wait_for(conn.execute(
                            "INSERT INTO heartbeat (id, at) VALUES (1, clock_timestamp()) "
                            "ON CONFLICT (id) DO UPDATE SET at = excluded.at"), 2.0)
                        await asyncio.sleep(self.archive_timeout)
                finally:
                    conn.terminate()
            await asyncio.sleep(self.archive_timeout)

    async def _create_schema(self, db: SiteDb) -> None:
        conn = await asyncpg.connect(host="127.0.0.1", port=db.port, user="postgres", database="postgres",
                                     timeout=10)
        try:
            await conn.execute(RECORDS_TABLE)
            await conn.execute("CREATE TABLE IF NOT EXISTS heartbeat (id int PRIMARY KEY, at timestamptz)")
        finally:
            await conn.close()

    # --- faults, status, stop --------------------------------------------------------------------
    def freeze(self, site: str, frozen: bool) -> None:
        """Stop (or continue) every process of the site's cluster and its archiving (pgBackRest's
        asynchronous pusher runs in a session of its own): a lost provider sends nothing more."""
        db = self.sites.get(site)
        pid = _postmaster_pid(db.data_dir) if db is not None else None
        if db is None or pid is None or db.frozen == frozen:
            return
        sig = signal.SIGSTOP if frozen else signal.SIGCONT
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(os.getpgid(pid), sig)
        for other in _processes_with(f"--config={self.conf}"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(other, sig)
        db.frozen = frozen

    def describe(self, site: str) -> dict[str, Any] | None:
        db = self.sites.get(site)
        if db is None:
            return None
        return {"data_dir": str(db.data_dir), "port": db.port, "socket_dir": str(db.socket_dir),
                "bin_dir": str(BIN), "os_user": OS_USER, "ca_file": str(self.ca_file), "stanza": self.stanza,
                "frozen": db.frozen, "repo_host": "localhost", "repo_port": self.tls_ports[db.kind],
                "repo_path": self.repo_path}

    async def close(self) -> None:
        for task in (self._backups, self._heartbeat):
            if task is not None:
                await tasks.cancel_and_wait(task)
        for db in self.sites.values():
            self.freeze(db.name, False)
        await asyncio.to_thread(stop_clusters, self.root)
        for db in self.sites.values():
            if db.process is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(db.process.wait(), 5.0)
        if self.stunnel is not None and self.stunnel.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.stunnel.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stunnel.wait(), 5.0)
        shutil.rmtree(self.root, ignore_errors=True)


async def _wait_port(port: int, *, what: str, process: asyncio.subprocess.Process, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise errors.PermanentError(f"{what} exited with {process.returncode} at start (see the lab's logs)")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
        except (OSError, TimeoutError):
            await asyncio.sleep(0.05)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
    raise errors.TemporaryError(f"{what} did not listen on port {port} within {timeout:.0f}s")


class RecordsDb:
    """The app's database connection on one site (lazy; reconnects after a failure)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._pool: asyncpg.Pool | None = None

    async def insert(self, component: str, record_id: str, body: str) -> None:
        """Commit one record; raises when the site's database cannot take it."""
        if self._pool is None:
            self._pool = await asyncpg.create_pool(host="127.0.0.1", port=self.port, user="postgres",
                                                   database="postgres", min_size=0, max_size=4, timeout=2)
        try:
            await asyncio.wait_for(self._pool.execute(
                "INSERT INTO records (id, component, body) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
                record_id, component, body), 2.0)
        except BaseException:
            pool, self._pool = self._pool, None
            pool.terminate()
            raise

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pool.close(), 2.0)


async def record_ids(port: int) -> set[str]:
    """Ids of the records a site's database holds (empty when it does not run or has no table)."""
    try:
        conn = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="postgres", timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return set()
    try:
        rows = await conn.fetch("SELECT id FROM records")
    except asyncpg.PostgresError:
        return set()
    finally:
        await conn.close()
    return {str(r["id"]) for r in rows}

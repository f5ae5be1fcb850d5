"""The lab's DNS: a real PowerDNS Authoritative server (sqlite backend), driven only through its API.

Failover ends with a DNS switch, so the lab answers real DNS queries: users (the workload
generator) and the product's verification resolve names exactly as in production. The recipe is
the verified one (``reference/real-parts.md`` §2): a private config dir, ``--config-dir`` so the
system config is ignored, API and webserver on loopback, run as ``nobody`` when we are root (the
directory must then be writable by ``nobody``, so it lives in a fresh directory under the system
temp dir rather than in a possibly private state dir). All writes go through the API, which purges
PowerDNS's caches, so no cache tuning is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets as pysecrets
import shutil
import socket
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from failover.core import errors, secrets

PDNS_SERVER = "pdns_server"
SCHEMA = Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql")
START_TIMEOUT = 10.0

_CONF = """\
launch=gsqlite3
gsqlite3-database={db}
gsqlite3-pragma-journal-mode=WAL
local-address={host}
local-port={dns_port}
api=yes
api-key={api_key}
webserver=yes
webserver-address={host}
webserver-port={api_port}
webserver-allow-from=127.0.0.0/8
socket-dir={dir}
daemon=no
guardian=no
disable-syslog=yes
loglevel=4
security-poll-suffix=
default-soa-content=ns1.@ hostmaster.@ 0 10800 3600 604800 60
"""


@dataclass
class PowerDnsProcess:
    """A running ``pdns_server``; ``api_key`` is a lab-only secret (registered for redaction)."""

    host: str
    dns_port: int
    api_port: int
    api_key: str = field(repr=False)
    directory: Path
    process: asyncio.subprocess.Process

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    async def stop(self, *, timeout: float = 5.0) -> None:
        """Terminate (then kill) the server and remove its directory. Idempotent."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), timeout=timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def free_port(host: str = "127.0.0.1", *, udp_too: bool = False) -> int:
    """A port that is free now on ``host`` (TCP, and UDP when asked)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
            if not udp_too:
                return port
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.bind((host, port))
            except OSError:
                continue
            return port
    raise errors.TemporaryError(f"no free port on {host}")


def _prepare(directory: Path, *, host: str, dns_port: int, api_port: int, api_key: str) -> None:
    db = directory / "pdns.sqlite3"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.executescript(SCHEMA.read_text(encoding="utf-8"))
        conn.commit()
    conf = _CONF.format(db=db, host=host, dns_port=dns_port, api_port=api_port, api_key=api_key, dir=directory)
    (directory / "pdns.conf").write_text(conf, encoding="utf-8")
    if os.geteuid() == 0:
        directory.chmod(0o777)
        for path in (directory, *directory.iterdir()):
            shutil.chown(path, user="nobody", group="nogroup")


async def start_powerdns(*, host: str = "127.0.0.1", log_path: Path | None = None, api_key: str | None = None,
                         on_spawn: Callable[[int, Path], None] | None = None) -> PowerDnsProcess:
    """Start ``pdns_server`` on free ports and wait until its API answers (bounded).

    ``on_spawn(pid, directory)`` is called as soon as the process exists (the lab records both,
    so ``lab down`` can stop it and remove its directory even after a supervisor crash)."""
    if shutil.which(PDNS_SERVER) is None and not Path("/usr/sbin/pdns_server").exists():
        raise errors.PermanentError("pdns_server is not installed (apt-get install pdns-server pdns-backend-sqlite3)")
    api_key = api_key or pysecrets.token_hex(16)
    secrets.register(api_key)
    directory = Path(tempfile.mkdtemp(prefix="failover-pdns-"))
    dns_port = free_port(host, udp_too=True)
    api_port = free_port(host)
    await asyncio.to_thread(_prepare, directory, host=host, dns_port=dns_port, api_port=api_port, api_key=api_key)
    binary = shutil.which(PDNS_SERVER) or "/usr/sbin/pdns_server"
    argv = [binary, f"--config-dir={directory}"]
    if os.geteuid() == 0:
        argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--init-groups", *argv]
    log = open(log_path or directory / "pdns.log", "ab")
    try:
        # in the caller's session (no new one): a supervisor killed before on_spawn records the pid
        # still has its PowerDNS swept with its session by `lab down`
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log)
    finally:
        log.close()
    if on_spawn is not None:
        on_spawn(process.pid, directory)
    pdns = PowerDnsProcess(host=host, dns_port=dns_port, api_port=api_port, api_key=api_key,
                           directory=directory, process=process)
    try:
        await _wait_ready(pdns)
    except BaseException:
        await pdns.stop()
        raise
    return pdns


async def _wait_ready(pdns: PowerDnsProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    url = f"{pdns.api_url}/api/v1/servers/localhost"
    async with httpx.AsyncClient(timeout=1.0, verify=False) as client:  # plain HTTP
        while time.monotonic() < deadline:
            if pdns.process.returncode is not None:
                raise errors.PermanentError(f"pdns_server exited with {pdns.process.returncode} at start")
            try:
                response = await client.get(url, headers={"X-API-Key": pdns.api_key})
                if response.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise errors.TemporaryError(f"pdns_server API did not answer within {START_TIMEOUT:.0f} s")

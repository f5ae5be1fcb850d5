"""The lab's coordination backend: a real three-member etcd cluster on loopback.

Several failover daemons agree on one leader through etcd (``failover/store/etcd.py``); the lab
runs the real ``etcd`` binary (Debian ``etcd-server``, 3.4), one member "at" each standby
provider in spirit, each with its data directory under the lab's state directory and free
loopback ports. The members start concurrently (a cluster forms only once a majority is up, so
starting them one by one would wait for each election timeout in turn).

``stop(i)`` / ``start(i)`` take one member away and bring it back with its data (``lab break
etcd-N``): two of three keep the quorum; stopping two takes it away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from failover.core import errors
from failover.lab.pdns import free_port

logger = logging.getLogger(__name__)

ETCD = "etcd"
START_TIMEOUT = 20.0


@dataclass
class EtcdMember:
    name: str
    host: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"http://{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        return int(self.process.pid) if self.process is not None else 0


@dataclass
class EtcdCluster:
    """The running members; ``endpoints`` are the client URLs daemons use."""

    members: list[EtcdMember]
    token: str
    on_spawn: Callable[[EtcdMember], None] | None = field(default=None, repr=False)

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    def member(self, name: str) -> EtcdMember:
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(name)

    def _initial_cluster(self) -> str:
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    def _spawn(self, m: EtcdMember, *, state: str) -> None:
        m.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            "--name", m.name, "--data-dir", str(m.data_dir),
            "--listen-client-urls", m.client_url, "--advertise-client-urls", m.client_url,
            "--listen-peer-urls", m.peer_url, "--initial-advertise-peer-urls", m.peer_url,
            "--initial-cluster", self._initial_cluster(), "--initial-cluster-token", self.token,
            "--initial-cluster-state", state,
            # the lab's timings are short: a lost member is noticed within a second
            "--heartbeat-interval", "100", "--election-timeout", "1000",
            "--log-level", "warn", "--logger", "zap",
        ]
        log = m.log_path.open("ab")
        try:
            # Popen, not an asyncio subprocess: a member outlives the event loop that started it
            # (a test session's fixture, the supervisor's loop) and is stopped from either
            m.process = subprocess.Popen([ETCD, *args], stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        except FileNotFoundError as exc:
            raise errors.PermanentError("etcd is not installed (Debian package etcd-server); run scripts/bootstrap") \
                from exc
        finally:
            log.close()
        if self.on_spawn is not None:
            self.on_spawn(m)

    async def start_all(self) -> None:
        for m in self.members:
            self._spawn(m, state="new")
        await self.wait_healthy(self.members)

    async def wait_healthy(self, members: list[EtcdMember], *, timeout: float = START_TIMEOUT) -> None:
        """Until every member in ``members`` answers a linearizable read (the cluster has a leader)."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1.0) as client:
            pending = list(members)
            while pending:
                m = pending[0]
                if m.process is not None and m.process.poll() is not None:
                    raise errors.PermanentError(f"etcd member {m.name} exited with {m.process.returncode}; "
                                                f"see {m.log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    r = await client.post(f"{m.client_url}/v3/kv/range", json={"key": "aGVhbHRo"})
                    if r.status_code == 200:
                        pending.pop(0)
                        continue
                if time.monotonic() > deadline:
                    raise errors.TemporaryError(f"etcd member {m.name} not healthy within {timeout:.0f}s")
                await asyncio.sleep(0.05)

    async def stop_member(self, name: str) -> None:
        """Stop one member (SIGTERM, then SIGKILL); its data stays for :meth:`start_member`."""
        proc = self.member(name).process
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)

    def kill_member(self, name: str) -> None:
        """SIGKILL one member now (synchronous; for fixtures and benchmarks)."""
        proc = self.member(name).process
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    async def start_member(self, name: str, *, wait: bool = True) -> None:
        """Restart a stopped member with its data directory (it rejoins the cluster)."""
        m = self.member(name)
        if m.running:
            return
        self._spawn(m, state="existing")
        if wait:
            await self.wait_healthy([m])

    async def close(self) -> None:
        await asyncio.gather(*(self.stop_member(m.name) for m in self.members), return_exceptions=True)

    def close_sync(self) -> None:
        for m in self.members:
            if m.process is not None and m.process.poll() is None:
                m.process.terminate()
        for m in self.members:
            if m.process is not None:
                try:
                    m.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    m.process.kill()
                    m.process.wait()


async def start_cluster(directory: Path, *, size: int = 3, host: str = "127.0.0.1", token: str = "failover-lab",
                        on_spawn: Callable[[EtcdMember], None] | None = None) -> EtcdCluster:
    """Start ``size`` etcd members concurrently with data under ``directory`` (a new cluster: old
    data there is removed, its members' addresses are gone); wait for a leader."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    members = [EtcdMember(name=f"etcd-{i}", host=host, client_port=free_port(host), peer_port=free_port(host),
                          data_dir=directory / f"etcd-{i}", log_path=directory / f"etcd-{i}.log")
               for i in range(1, size + 1)]
    cluster = EtcdCluster(members=members, token=token, on_spawn=on_spawn)
    try:
        await cluster.start_all()
    except BaseException:
        await cluster.close()
        raise
    logger.info("etcd cluster up: %s", ", ".join(cluster.endpoints))
    return cluster

"""Users, simulated: a steady stream of writes through DNS, so data loss is counted, not guessed.

The generator behaves like a user's client: it resolves the app's hostname through the lab's
PowerDNS (never a cached config value), connects to whatever address DNS returns with the app's
``Host`` header and writes a record, then uploads a file (which lands in the app's volume, carried
only by Velero's file-system backup). Only what the app **acknowledged** (201) is kept, with
their timestamps, in a JSON file beside the lab state. After a failover, the ids the new site
holds are compared with the acknowledged ones: every acknowledged id that is missing is a
record (or file) a user lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import dns.asyncresolver
import dns.exception
import httpx

from failover import buckets, s3
from failover.core import errors
from failover.lab import runtime as lab_runtime

if TYPE_CHECKING:
    from failover.config.runtime import Runtime

logger = logging.getLogger(__name__)


class WorkloadGenerator:
    """Writes one record every ``1/rate`` seconds, rotating over ``hostnames`` (FQDNs)."""

    def __init__(
        self,
        *,
        resolver_host: str,
        resolver_port: int,
        zone: str,
        hostnames: Sequence[str],
        rate: float = 5.0,
        port: int = 80,
        state_file: Path | None = None,
        timeout: float = 2.0,
        prefix: str = "u",
        app_buckets: Mapping[str, s3.S3Location] | None = None,
        files: bool = False,
    ) -> None:
        if not hostnames:
            raise ValueError("the generator needs at least one hostname of a stateful app")
        self.zone = zone
        self.hostnames = tuple(h.rstrip(".") for h in hostnames)
        self.rate = rate
        self.port = port
        self.state_file = state_file
        self.timeout = timeout
        self.prefix = f"{prefix}{int(time.time() * 1000) % 10**9}"
        self.acked: dict[str, float] = {}  #: acknowledged id -> epoch seconds of the ack
        self.files: dict[str, float] = {}  #: acknowledged file id -> epoch seconds (a file in the app's volume)
        self.objects: dict[str, float] = {}  #: object key -> epoch seconds (in the app's S3 bucket)
        self.app_buckets = dict(app_buckets or {})  #: site -> the app bucket the site's app writes to
        self.write_files = files  #: after each record, upload a file (volume) and an object (bucket)
        self._pool = s3.ClientPool()
        self.failures = 0
        self._resolver = dns.asyncresolver.Resolver(configure=False)
        self._resolver.nameservers = [resolver_host]
        self._resolver.port = resolver_port
        self._counter = itertools.count(1)
        self._stopping = asyncio.Event()

    @classmethod
    def for_runtime(cls, rt: Runtime, *, state_dir: Path | None = None, rate: float = 5.0) -> WorkloadGenerator:
        """A generator for the running lab: its resolver, zone, ingress port and stateful apps.

        ``state_dir`` is where ``generator.json`` goes (default: ``<state>/lab``)."""
        if rt.resolver is None:
            raise ValueError("the runtime has no DNS resolver configured")
        hostnames = [f"{c.hostnames[0]}.{rt.zone}".rstrip(".")
                     for c in rt.profile.components if c.stateful and c.hostnames]
        port = next(iter(rt.sites.values())).ingress_port
        lab_dir = state_dir if state_dir is not None else lab_runtime.LabPaths(rt.state_dir).root
        first = next(iter(rt.profile.buckets()), None)
        app_buckets = {name: buckets.location(ep.storage, ep.site, first[1].bucket)
                       for name, ep in rt.sites.items() if ep.storage is not None} if first else {}
        return cls(resolver_host=rt.resolver[0], resolver_port=rt.resolver[1], zone=rt.zone,
                   hostnames=hostnames, rate=rate, port=port, state_file=lab_dir / "generator.json",
                   app_buckets=app_buckets, files=True)

    async def resolve(self, hostname: str) -> str:
        answer = await self._resolver.resolve(hostname + ".", "A", lifetime=self.timeout)
        return str(answer[0].to_text())

    async def write_one(self, client: httpx.AsyncClient, hostname: str) -> str | None:
        """Write one record; return its id when the app acknowledged it, else None."""
        record_id = f"{self.prefix}-{next(self._counter):06d}"
        try:
            address = await self.resolve(hostname)
            response = await client.post(f"http://{address}:{self.port}/lab/records",
                                         json={"id": record_id, "body": f"written at {time.time():.3f}"},
                                         headers={"Host": hostname})
        except (dns.exception.DNSException, httpx.HTTPError, OSError):
            self.failures += 1
            return None
        if response.status_code != 201:
            self.failures += 1
            return None
        self.acked[record_id] = time.time()
        return record_id

    async def write_file(self, client: httpx.AsyncClient, hostname: str) -> str | None:
        """Upload one file (it lands in the app's volume); its id when the app acknowledged it."""
        file_id = f"{self.prefix}-f{next(self._counter):06d}"
        try:
            address = await self.resolve(hostname)
            response = await client.post(f"http://{address}:{self.port}/lab/files",
                                         json={"id": file_id, "body": f"a user's file, {time.time():.3f}"},
                                         headers={"Host": hostname})
        except (dns.exception.DNSException, httpx.HTTPError, OSError):
            self.failures += 1
            return None
        if response.status_code != 201:
            self.failures += 1
            return None
        self.files[file_id] = time.time()
        site = str(response.json().get("site", ""))
        if site in self.app_buckets:  # the app keeps a copy in its object storage, as Nextcloud does
            await self.write_object(self.app_buckets[site], f"users/{file_id}")
        return file_id

    async def write_object(self, loc: s3.S3Location, key: str) -> None:
        try:
            await s3.put_bytes(await self._pool.client(loc), loc, key, f"object {key}".encode())
        except errors.FailoverError:
            self.failures += 1
            return
        self.objects[key] = time.time()

    async def run(self) -> None:
        """Write at the configured rate until :meth:`stop`; persists the acknowledged ids."""
        interval = 1.0 / self.rate
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                for hostname in itertools.cycle(self.hostnames):
                    if self._stopping.is_set():
                        break
                    started = time.monotonic()
                    if await self.write_one(client, hostname) is not None:
                        if self.write_files:  # only to an app that answers
                            await self.write_file(client, hostname)
                        self.save()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(),
                                               max(0.0, interval - (time.monotonic() - started)))
        finally:
            await asyncio.shield(self._pool.aclose())
            self.save()

    def stop(self) -> None:
        self._stopping.set()

    def save(self) -> None:
        if self.state_file is not None:
            lab_runtime.write_json_atomic(self.state_file, {"acked": self.acked, "files": self.files,
                                                            "objects": self.objects, "failures": self.failures})

    def lost(self, site_records: Iterable[str]) -> list[str]:
        """Acknowledged ids the site does not hold, oldest first."""
        held = set(site_records)
        return sorted((i for i in self.acked if i not in held), key=lambda i: self.acked[i])

    def count_lost(self, site_records: Iterable[str]) -> int:
        return len(self.lost(site_records))

    def lost_files(self, site_files: Iterable[str]) -> list[str]:
        """Acknowledged file ids the site's volumes do not hold, oldest first."""
        held = set(site_files)
        return sorted((i for i in self.files if i not in held), key=lambda i: self.files[i])


def load_acked(path: Path) -> dict[str, float]:
    """The acknowledged ids a (possibly finished) generator persisted."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    acked = data.get("acked") if isinstance(data, dict) else None
    return {str(k): float(v) for k, v in acked.items()} if isinstance(acked, dict) else {}

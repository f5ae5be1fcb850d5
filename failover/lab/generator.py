"""Users, simulated: a steady stream of writes through DNS, so data loss is counted, not guessed.

The generator behaves like a user's client: it resolves the app's hostname through the lab's
PowerDNS (never a cached config value), connects to whatever address DNS returns with the app's
``Host`` header and writes a record. Only records the app **acknowledged** (201) are kept, with
their timestamps, in a JSON file beside the lab state. After a failover, the ids the new site
holds are compared with the acknowledged ones: every acknowledged id that is missing is a
record a user lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import dns.asyncresolver
import dns.exception
import httpx

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
        return cls(resolver_host=rt.resolver[0], resolver_port=rt.resolver[1], zone=rt.zone,
                   hostnames=hostnames, rate=rate, port=port, state_file=lab_dir / "generator.json")

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

    async def run(self) -> None:
        """Write at the configured rate until :meth:`stop`; persists the acknowledged ids."""
        interval = 1.0 / self.rate
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            for hostname in itertools.cycle(self.hostnames):
                if self._stopping.is_set():
                    break
                started = time.monotonic()
                if await self.write_one(client, hostname) is not None:
                    self.save()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), max(0.0, interval - (time.monotonic() - started)))
        self.save()

    def stop(self) -> None:
        self._stopping.set()

    def save(self) -> None:
        if self.state_file is not None:
            lab_runtime.write_json_atomic(self.state_file, {"acked": self.acked, "failures": self.failures})

    def lost(self, site_records: Iterable[str]) -> list[str]:
        """Acknowledged ids the site does not hold, oldest first."""
        held = set(site_records)
        return sorted((i for i in self.acked if i not in held), key=lambda i: self.acked[i])

    def count_lost(self, site_records: Iterable[str]) -> int:
        return len(self.lost(site_records))


def load_acked(path: Path) -> dict[str, float]:
    """The acknowledged ids a (possibly finished) generator persisted."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    acked = data.get("acked") if isinstance(data, dict) else None
    return {str(k): float(v) for k, v in acked.items()} if isinstance(acked, dict) else {}

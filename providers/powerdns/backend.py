"""The PowerDNS HTTP API as a record store: shared by the adapter and the vendor DNS emulators.

The vendor API emulators (IONOS DNS, STACKIT DNS, OTC DNS, SCS) keep their records in a
:class:`~providers.emulator.DnsBackend`; in the lab that backend is :class:`PowerDnsBackend`, so a
record changed through a vendor API is answered by a real DNS server. PowerDNS applies a
``PATCH`` with ``changetype: REPLACE`` synchronously (204) and purges its caches, so a set is
visible to resolvers as soon as the call returns.
"""

from __future__ import annotations

import asyncio
from typing import Any

from failover.core import http, secrets
from providers import base


def dotted(name: str) -> str:
    """``name`` with exactly one trailing dot (PowerDNS requires absolute names)."""
    return name.rstrip(".") + "."


#: one writer at a time per PowerDNS server (from this process): its sqlite backend answers 500
#: "database is locked" to concurrent PATCHes; a 500 that still happens is retried as temporary
_WRITE_LOCKS: dict[str, asyncio.Lock] = {}


def _write_lock(api_url: str) -> asyncio.Lock:
    return _WRITE_LOCKS.setdefault(api_url, asyncio.Lock())


class PowerDnsApi:
    """A thin client of ``/api/v1/servers/{server_id}`` (errors mapped by :mod:`failover.core.http`)."""

    def __init__(self, *, api_url: str, api_key: str, server_id: str = "localhost",
                 timeout: float = http.DEFAULT_TIMEOUT, attempts: int = 3) -> None:
        secrets.register(api_key)
        self._headers = {"X-API-Key": api_key}
        self._lock = _write_lock(api_url)
        self._base = f"/api/v1/servers/{server_id}"
        # plain-HTTP API (loopback or behind a TLS proxy) needs no CA bundle: loading one costs ~0.2 s
        self._client = http.ApiClient(base_url=api_url, service="powerdns", timeout=timeout,
                                      attempts=attempts, max_delay=2.0, verify=not api_url.startswith("http://"))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def zone(self, zone: str) -> dict[str, Any] | None:
        """The zone document with its rrsets, or None when the zone does not exist."""
        try:
            data = await self._client.json("GET", f"{self._base}/zones/{dotted(zone)}", headers=self._headers)
        except http.NotFoundError:
            return None
        return data if isinstance(data, dict) else None

    async def ensure_zone(self, zone: str, *, nameservers: tuple[str, ...] = ()) -> None:
        """Create a Native zone unless it exists. Idempotent."""
        if await self.zone(zone) is not None:
            return
        body = {"name": dotted(zone), "kind": "Native",
                "nameservers": list(nameservers) or [f"ns1.{dotted(zone)}"]}
        try:
            async with self._lock:
                await self._client.request("POST", f"{self._base}/zones", json=body, headers=self._headers)
        except http.ApiError as exc:
            if exc.status != 409:  # created concurrently: fine
                raise

    async def get(self, zone: str, name: str, rtype: str) -> base.DnsRecordSet | None:
        doc = await self.zone(zone)
        if doc is None:
            return None
        for rrset in doc.get("rrsets", []):
            if rrset.get("name") == dotted(name) and rrset.get("type") == rtype.upper():
                values = tuple(sorted(str(r["content"]) for r in rrset.get("records", [])
                                      if not r.get("disabled")))
                if not values:
                    return None
                return base.DnsRecordSet(zone=dotted(zone), name=dotted(name), type=rtype.upper(),
                                         values=values, ttl=int(rrset.get("ttl", 0)))
        return None

    async def replace(self, zone: str, name: str, rtype: str, values: tuple[str, ...], ttl: int) -> None:
        rrset = {"name": dotted(name), "type": rtype.upper(), "ttl": ttl, "changetype": "REPLACE",
                 "records": [{"content": v, "disabled": False} for v in values]}
        async with self._lock:
            await self._client.request("PATCH", f"{self._base}/zones/{dotted(zone)}",
                                       json={"rrsets": [rrset]}, headers=self._headers)

    async def delete(self, zone: str, name: str, rtype: str) -> None:
        rrset = {"name": dotted(name), "type": rtype.upper(), "changetype": "DELETE"}
        async with self._lock:
            await self._client.request("PATCH", f"{self._base}/zones/{dotted(zone)}",
                                       json={"rrsets": [rrset]}, headers=self._headers)


class PowerDnsBackend:
    """A :class:`~providers.emulator.DnsBackend` that writes to a real PowerDNS.

    Zones are created on first write, so an emulator's ``add_zone`` needs no DNS round trip.
    """

    def __init__(self, *, api_url: str, api_key: str, server_id: str = "localhost") -> None:
        self.api = PowerDnsApi(api_url=api_url, api_key=api_key, server_id=server_id, timeout=5.0)

    async def get(self, zone: str, name: str, rtype: str) -> base.DnsRecordSet | None:
        return await self.api.get(zone, name, rtype)

    async def set(self, zone: str, name: str, rtype: str, values: tuple[str, ...], ttl: int) -> None:
        await self.api.ensure_zone(zone)
        await self.api.replace(zone, name, rtype, values, ttl)

    async def delete(self, zone: str, name: str, rtype: str) -> None:
        if await self.api.zone(zone) is not None:
            await self.api.delete(zone, name, rtype)

    async def close(self) -> None:
        await self.api.aclose()

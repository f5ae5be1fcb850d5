"""PowerDNS as a failover provider: DNS only.

Endpoints: ``api`` (the webserver base URL, e.g. ``http://127.0.0.1:8081``). Credentials:
``api_key`` (sent as ``X-API-Key``). Options: ``server_id`` (default ``localhost``). PowerDNS
applies a record change synchronously (``PATCH`` → 204), so :meth:`dns_set` returns once the
change is live; it reads first and skips the write when the record set already matches.
"""

from __future__ import annotations

from failover.core import errors
from providers import base
from providers.powerdns.backend import PowerDnsApi, dotted

_NOT_A_CLOUD = "PowerDNS is a DNS service, not a cloud"


class PowerDnsProvider(base.Provider):
    kind = "powerdns"

    def __init__(self, settings: base.ProviderSettings) -> None:
        self.settings = settings
        self._api: PowerDnsApi | None = None

    def _client(self) -> PowerDnsApi:
        if self._api is None:
            self._api = PowerDnsApi(
                api_url=self.settings.endpoint("api"), api_key=self.settings.secret("api_key"),
                server_id=self.settings.options.get("server_id", "localhost"), timeout=self.settings.timeout)
        return self._api

    async def dns_get(self, zone: str, name: str, rtype: str) -> base.DnsRecordSet | None:
        """The record set, or None (also when the zone is missing). Read-only."""
        return await self._client().get(zone, name, rtype)

    async def dns_set(
        self, zone: str, name: str, rtype: str, values: tuple[str, ...], ttl: int
    ) -> base.DnsRecordSet:
        """Replace the record set (idempotent). A missing zone is a PermanentError (404)."""
        wanted = base.DnsRecordSet(zone=dotted(zone), name=dotted(name), type=rtype.upper(),
                                   values=tuple(sorted(values)), ttl=ttl)
        current = await self.dns_get(zone, name, rtype)
        if current == wanted:
            return current
        await self._client().replace(zone, name, rtype, wanted.values, ttl)
        return wanted

    async def cluster_status(self, ref: base.ClusterRef) -> base.ClusterStatus:
        raise errors.PermanentError(_NOT_A_CLOUD)

    async def kubeconfig(self, ref: base.ClusterRef) -> str:
        raise errors.PermanentError(_NOT_A_CLOUD)

    async def s3_endpoint(self, region: str) -> str:
        raise errors.PermanentError(_NOT_A_CLOUD)

    async def status(self, region: str) -> tuple[base.Incident, ...]:
        raise errors.PermanentError(_NOT_A_CLOUD)

    async def close(self) -> None:
        if self._api is not None:
            await self._api.aclose()
            self._api = None

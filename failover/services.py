"""The daemon's service bundle: every client the watcher and the actions talk through.

One place opens (and closes) the per-site Kubernetes clients, the probe HTTP client, the DNS
resolver used for verification and the provider adapters, so actions receive them ready-made
and tests can point the whole bundle at the lab.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import dns.asyncresolver
import httpx

from failover import kubeaccess
from failover.config.runtime import Runtime, SiteEndpoints
from failover.core import errors
from failover.health import probes
from failover.kube import KubeClient
from providers import registry
from providers.base import Provider

logger = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


def probe_pool_size(runtime: Runtime) -> int:
    """Connections the shared probe client may open: the watcher's concurrency bound, never more."""
    return max(1, min(1024, runtime.config.health.concurrency * max(1, len(runtime.sites))))


@dataclass
class Services:
    runtime: Runtime
    store: Any  #: failover.store.Store (SQLite journal and state)
    http: httpx.AsyncClient
    kube: dict[str, KubeClient]
    resolver: dns.asyncresolver.Resolver | None
    clock: Callable[[], datetime] = utcnow
    _providers: dict[str, Provider | None] = field(default_factory=dict)
    _probe_session: aiohttp.ClientSession | None = None

    def probe_session(self) -> aiohttp.ClientSession:
        """The HTTP session of the component probes (created in the running loop on first use)."""
        if self._probe_session is None or self._probe_session.closed:
            health = self.runtime.config.health
            connector = aiohttp.TCPConnector(limit=probe_pool_size(self.runtime), limit_per_host=0,
                                             ssl=health.verify_tls)
            self._probe_session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=health.timeout), auto_decompress=True)
        return self._probe_session

    @classmethod
    def open(cls, runtime: Runtime, store: Any, *, clock: Callable[[], datetime] = utcnow) -> Services:
        health = runtime.config.health
        # the pool is sized to what the watcher lets run at once (per-site limit x sites), so a probe
        # never waits for a connection inside its own timeout
        pool = probe_pool_size(runtime)
        http = httpx.AsyncClient(timeout=health.timeout, verify=health.verify_tls, follow_redirects=False,
                                 limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool))
        resolver = None
        if runtime.resolver is not None:
            resolver = probes.make_resolver(*runtime.resolver, timeout=health.timeout)
        services = cls(runtime=runtime, store=store, http=http, kube={}, resolver=resolver, clock=clock)
        for name, ep in runtime.sites.items():  # a kubeconfig, the API + token, or the provider's kubeconfig
            services.kube[name] = kubeaccess.client_for(ep, timeout=kubeaccess.request_timeout(health),
                                                        provider=services.provider)
        return services

    def site(self, name: str) -> SiteEndpoints:
        try:
            return self.runtime.sites[name]
        except KeyError:
            raise errors.PermanentError(f"unknown site {name!r} (sites: {', '.join(self.runtime.sites)})") \
                from None

    def kube_for(self, name: str) -> KubeClient:
        try:
            return self.kube[name]
        except KeyError:
            raise errors.PermanentError(f"site {name!r} has no Kubernetes API configured") from None

    def provider(self, name: str) -> Provider | None:
        """The adapter for provider ``name`` (a key of ``providers``), or None if unusable."""
        if name not in self._providers:
            settings = self.runtime.providers.get(name)
            adapter: Provider | None = None
            if settings is not None:
                try:
                    adapter = registry.create(settings)
                except errors.FailoverError as exc:
                    logger.warning("provider %s unavailable: %s", name, exc)
            self._providers[name] = adapter
        return self._providers[name]

    def dns_provider(self) -> Provider:
        name = self.runtime.config.dns.provider
        adapter = self.provider(name)
        if adapter is None:
            raise errors.PermanentError(f"the DNS provider {name!r} is not usable; check `providers.{name}`")
        return adapter

    async def aclose(self) -> None:
        await self.http.aclose()
        if self._probe_session is not None:
            await self._probe_session.close()
        for client in self.kube.values():
            await client.aclose()
        for adapter in self._providers.values():
            if adapter is not None:
                await adapter.close()

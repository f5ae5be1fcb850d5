"""``failover config validate --online``: a preflight against every configured provider and site.

One line per check, all of them run (a failure does not hide the next one):

* ``provider <name> auth`` — the provider's API accepts the configured credentials;
* ``site <name> cluster`` — the site's cluster is found at its provider, with its state
  (a ``down`` cluster fails the check);
* ``site <name> kubeconfig`` — the site's Kubernetes API answers ``/readyz`` with the kubeconfig the
  daemon would use (its own, or the one the provider hands out);
* ``site <name> velero`` — Velero's BackupStorageLocation exists on the site (and its phase);
* ``site <name> bucket`` — the site's bucket is reachable with the site's storage credentials;
  for a standby, also writable (the replicator writes there): a marker object under
  ``.failover-preflight/`` is written and deleted again, the preflight's only write;
* ``dns <provider> zone`` — the zone is found at the DNS provider.

Everything else is read-only: nothing is created, scaled, switched or fenced.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

from failover import kubeaccess, s3
from failover.config import models
from failover.config.runtime import Runtime, SiteEndpoints
from failover.core import errors, secrets
from failover.core import kubetypes as kt
from failover.kube import KubeClient
from providers import registry
from providers.base import ClusterState, Provider

MARKER_PREFIX = ".failover-preflight/"


@dataclass(frozen=True)
class Check:
    scope: str  #: "provider ionos", "site stackit-eu01", "dns stackit"
    name: str  #: auth, cluster, kubeconfig, velero, bucket, zone
    ok: bool
    detail: str
    auth_failed: bool = False  #: the answer was "credentials rejected"

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.scope:<26} {self.name:<11} {self.detail}"

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class Preflight:
    def __init__(self, runtime: Runtime, *, timeout: float) -> None:
        self.runtime, self.timeout = runtime, timeout
        self._adapters: dict[str, Provider | errors.FailoverError] = {}

    async def _run(self, scope: str, name: str, fn: Callable[[], Awaitable[str]]) -> Check:
        try:
            async with asyncio.timeout(self.timeout):
                return Check(scope, name, True, await fn())
        except TimeoutError:
            return Check(scope, name, False, f"no answer within {self.timeout:g}s")
        except errors.FailoverError as exc:
            return Check(scope, name, False, secrets.redact(str(exc)), auth_failed=isinstance(exc, errors.AuthError))

    def adapter(self, name: str) -> Provider:
        if name not in self._adapters:
            settings = self.runtime.providers.get(name)
            try:
                if settings is None:
                    raise errors.PermanentError(f"provider {name!r} is not configured")
                self._adapters[name] = registry.create(settings)
            except errors.FailoverError as exc:
                self._adapters[name] = exc
        found = self._adapters[name]
        if isinstance(found, errors.FailoverError):
            raise found
        return found

    async def close(self) -> None:
        for adapter in self._adapters.values():
            if isinstance(adapter, Provider):
                await adapter.close()

    async def site(self, ep: SiteEndpoints) -> list[Check]:
        scope = f"site {ep.name}"
        checks = [await self._run(scope, "cluster", lambda: self._cluster(ep))]
        kube = kubeaccess.client_for(ep, timeout=self.timeout, provider=lambda name: self.adapter(name))
        try:
            checks.append(await self._run(scope, "kubeconfig", lambda: self._readyz(kube)))
            checks.append(await self._run(scope, "velero", lambda: self._velero(kube, ep.site)))
        finally:
            await kube.aclose()
        checks.append(await self._run(scope, "bucket", lambda: self._bucket(ep)))
        return checks

    async def _cluster(self, ep: SiteEndpoints) -> str:
        status = await self.adapter(ep.site.provider).cluster_status(ep.cluster)
        text = f"{status.cluster} found, state {status.state.value} ({status.raw_state})"
        if status.state is ClusterState.DOWN:
            raise errors.PermanentError(f"{text}: {status.reason or 'not serving'}")
        return text

    @staticmethod
    async def _readyz(kube: KubeClient) -> str:
        await kube.readyz()
        return "API ready (/readyz)"

    @staticmethod
    async def _velero(kube: KubeClient, site: models.Site) -> str:
        bsl = await kube.get(kt.VELERO_BSLS, site.velero_namespace, site.bsl)
        if bsl is None:
            raise errors.PermanentError(
                f"no BackupStorageLocation {site.velero_namespace}/{site.bsl}: is Velero installed?")
        phase = (bsl.get("status") or {}).get("phase") or "no phase yet"
        return f"BackupStorageLocation {site.bsl}: {phase}"

    @staticmethod
    async def _bucket(ep: SiteEndpoints) -> str:
        loc = ep.storage
        if loc is None:
            raise errors.PermanentError("no storage configured (endpoint, access_key, secret_key)")
        async with s3.open_client(loc) as client:
            with s3.translating(f"bucket {loc.bucket}"):
                await client.head_bucket(Bucket=loc.bucket)
            if ep.site.role is not models.Role.STANDBY:
                return f"{loc.bucket} reachable"
            key = f"{MARKER_PREFIX}{uuid.uuid4()}"
            await s3.put_bytes(client, loc, key, b"failover preflight\n")
            with s3.translating(f"DELETE {loc.bucket}/{key}"):
                await client.delete_object(Bucket=loc.bucket, Key=key)
        return f"{loc.bucket} reachable and writable"

    async def dns(self) -> Check:
        cfg = self.runtime.config
        name = cfg.dns.provider

        async def zone() -> str:
            hostname = next(iter(sorted(self.runtime.hostnames.values())), "")
            fqdn = f"{hostname}." if hostname else cfg.workplace.zone
            found = await self.adapter(name).dns_get(cfg.workplace.zone, fqdn, "A")
            answer = ", ".join(found.values) if found is not None and found.values else "no A record yet"
            return f"{cfg.workplace.zone} found ({fqdn} -> {answer})"

        return await self._run(f"dns {name}", "zone", zone)


def _auth_checks(runtime: Runtime, checks: list[Check]) -> list[Check]:
    """One ``auth`` line per provider, from the calls that used its API (cluster, DNS zone)."""
    out = []
    for name in sorted(runtime.providers):
        scopes = {f"site {s.name}" for s in runtime.config.sites if s.provider == name}
        used = [c for c in checks if (c.scope in scopes and c.name == "cluster") or c.scope == f"dns {name}"]
        if not used:
            continue
        failed = [c for c in used if c.auth_failed]
        detail = failed[0].detail if failed else f"credentials accepted ({len(used)} calls)"
        out.append(Check(f"provider {name}", "auth", not failed, detail))
    return out


async def run(runtime: Runtime, *, timeout: float = 15.0) -> list[Check]:
    preflight = Preflight(runtime, timeout=timeout)
    try:
        per_site = await asyncio.gather(*(preflight.site(ep) for ep in runtime.sites.values()))
        checks = [c for site in per_site for c in site]
        checks.append(await preflight.dns())
    finally:
        await preflight.close()
    return [*_auth_checks(runtime, checks), *checks]

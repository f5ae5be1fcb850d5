"""The Provider contract: what the failover engine may ask of a cloud, and what each answer means.

Methods are grouped by how critical their timing is (after Patroni's ``AbstractDCS``):

* **read, critical for detection** — :meth:`Provider.cluster_status`, :meth:`Provider.status`:
  called every watch cycle; must return within their timeout or raise; never mutate.
* **mutating, critical for failover** — :meth:`Provider.dns_set`: must be idempotent and must
  return only once the provider reports the change applied.
* **read, needed to act** — :meth:`Provider.kubeconfig`, :meth:`Provider.dns_get`,
  :meth:`Provider.s3_endpoint`.

Every method raises only :mod:`failover.core.errors` types: :class:`~failover.core.errors.TemporaryError`
(timeouts, connection errors, 429 with ``delay`` from ``Retry-After``, 5xx; already retried with
backoff inside the adapter, so the caller sees it only once retries are exhausted) or
:class:`~failover.core.errors.PermanentError` (400/403/404/validation; :class:`~failover.core.errors.AuthError`
when credentials are rejected after one re-authentication; :class:`~failover.core.errors.ProtocolError`
for a malformed answer). An unknown new enum value from a provider is not an error: it maps to
``unknown`` with the raw value kept. Tokens are cached until expiry and never logged or printed.
"""

from __future__ import annotations

import abc
import os
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from failover.core import errors, secrets

ProviderKind = Literal["ionos", "stackit", "otc", "scs", "powerdns"]


class ClusterState(StrEnum):
    """A provider's view of a managed cluster, normalised."""

    READY = "ready"  #: serving, control plane and node pools healthy
    DEGRADED = "degraded"  #: serving but impaired (updating, scaling, maintenance, a pool failing)
    DOWN = "down"  #: not serving (failed, unavailable, hibernated, deleting)
    UNKNOWN = "unknown"  #: the provider said something we do not recognise, or nothing at all


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NodePoolStatus(_Model):
    name: str
    state: ClusterState
    raw_state: str
    nodes: int | None = None


class ClusterStatus(_Model):
    """``state`` is normalised; ``raw_state`` and ``reason`` are the provider's own words."""

    provider: str
    cluster: str
    state: ClusterState
    raw_state: str
    reason: str = ""
    node_pools: tuple[NodePoolStatus, ...] = ()


class DnsRecordSet(_Model):
    zone: str  #: zone name with trailing dot, e.g. ``ckki.example.``
    name: str  #: FQDN with trailing dot
    type: str
    values: tuple[str, ...]
    ttl: int


class Incident(_Model):
    """An open incident or maintenance on the provider's status page."""

    id: str
    title: str
    status: str
    impact: str = ""
    components: tuple[str, ...] = ()
    started_at: datetime | None = None


class ClusterRef(_Model):
    """Provider-side identifiers of one site's cluster.

    ``cluster`` is the IONOS k8s cluster id, the STACKIT cluster name, the OTC CCE cluster id or
    the Cluster API ``Cluster`` name (SCS); ``project`` is the STACKIT project id, the OTC
    project id or the SCS management-cluster namespace.
    """

    region: str
    cluster: str
    project: str | None = None


class Credential(_Model):
    """Where a secret comes from. Secrets are never written inline in a config file."""

    env: str | None = None
    file: Path | None = None

    def read(self, what: str) -> str:
        """Return the secret, registered for redaction; :class:`PermanentError` if missing."""
        value: str | None = None
        if self.env:
            value = os.environ.get(self.env)
            if value is None and not self.file:
                raise errors.PermanentError(f"{what}: environment variable {self.env} is not set")
        if value is None and self.file:
            try:
                value = self.file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise errors.PermanentError(f"{what}: cannot read {self.file}: {exc.strerror}") from exc
        if value is None:
            raise errors.PermanentError(f"{what}: neither env nor file is given")
        secrets.register(value)
        return value


class ProviderSettings(_Model):
    """One provider's connection settings, as written in the config file.

    ``endpoints`` maps a service name to its base URL (each adapter documents the names it
    needs, e.g. IONOS: ``cloudapi``, ``auth``, ``dns``, ``status``); ``credentials`` maps a
    credential name to where it comes from; ``options`` holds provider-specific switches.
    """

    kind: ProviderKind
    endpoints: dict[str, str] = Field(default_factory=dict)
    credentials: dict[str, Credential] = Field(default_factory=dict)
    options: dict[str, str] = Field(default_factory=dict)
    timeout: float = Field(default=10.0, gt=0, le=120)

    def endpoint(self, service: str) -> str:
        try:
            return self.endpoints[service].rstrip("/")
        except KeyError:
            raise errors.PermanentError(
                f"provider {self.kind}: endpoints.{service} is not configured"
            ) from None

    def secret(self, name: str) -> str:
        try:
            credential = self.credentials[name]
        except KeyError:
            raise errors.PermanentError(
                f"provider {self.kind}: credentials.{name} is not configured"
            ) from None
        return credential.read(f"provider {self.kind} credential {name}")


class Provider(abc.ABC):
    """One cloud provider's API, as the failover engine needs it. See the module docstring."""

    kind: str

    @abc.abstractmethod
    async def cluster_status(self, ref: ClusterRef) -> ClusterStatus:
        """The provider's view of the site's managed cluster. Read-only, idempotent.

        Default timeout: the settings' ``timeout`` per request. Unknown provider states map to
        :attr:`ClusterState.UNKNOWN` with ``raw_state`` kept. Raises Temporary/PermanentError.
        """

    @abc.abstractmethod
    async def kubeconfig(self, ref: ClusterRef) -> str:
        """An admin kubeconfig (YAML text) for the site's cluster. Idempotent (may mint a new
        short-lived credential each call). The result is a secret: never log it."""

    @abc.abstractmethod
    async def dns_get(self, zone: str, name: str, rtype: str) -> DnsRecordSet | None:
        """The record set ``name``/``rtype`` in ``zone`` (names with trailing dot), or None."""

    @abc.abstractmethod
    async def dns_set(
        self, zone: str, name: str, rtype: str, values: tuple[str, ...], ttl: int
    ) -> DnsRecordSet:
        """Make the record set exactly ``values`` with ``ttl``. Idempotent (a no-op when it
        already is). Returns only once the provider reports the change applied (polling where
        the API is asynchronous, bounded by a default of 60 s → TemporaryError)."""

    @abc.abstractmethod
    async def s3_endpoint(self, region: str) -> str:
        """The S3 endpoint URL of the provider's object storage in ``region``."""

    @abc.abstractmethod
    async def status(self, region: str) -> tuple[Incident, ...]:
        """Open incidents/maintenances on the provider's status page affecting ``region``."""

    async def close(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Release connections. Idempotent."""

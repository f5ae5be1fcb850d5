"""Which kubeconfig a site's Kubernetes client is built from.

In order: the site's ``kube.kubeconfig`` (a file or an ``{env|file}`` credential; in the lab, the
kubeconfig file ``lab status --json`` names), else ``kube.api`` with an optional ``kube.token``, else
the kubeconfig the site's provider hands out (:meth:`providers.base.Provider.kubeconfig`: IONOS,
STACKIT SKE, OTC CCE, the SCS Cluster API secret), fetched on first use and again before its
credentials expire.
"""

from __future__ import annotations

from collections.abc import Callable

from failover.config import models
from failover.config.runtime import SiteEndpoints
from failover.core import errors
from failover.kube import KubeClient
from providers.base import Provider


def request_timeout(health: models.HealthConfig) -> float:
    """The bound of one Kubernetes request. Probes are bounded by ``health.timeout`` on top of it
    (:func:`failover.health.probes.sample`); the actions' requests get the slack the old
    per-request retries gave them, since every call is one attempt now."""
    return max(3 * health.timeout, health.storage_timeout)


def client_for(ep: SiteEndpoints, *, timeout: float, provider: Callable[[str], Provider | None]) -> KubeClient:
    access = ep.site.kube
    if ep.kubeconfig:
        return KubeClient(site=ep.name, kubeconfig=ep.kubeconfig, base_path=ep.kubeconfig_dir,
                          context=access.context, timeout=timeout, refresh_before=access.refresh_before)
    if ep.kube_api:
        return KubeClient(site=ep.name, base_url=ep.kube_api, token=ep.kube_token, timeout=timeout,
                          verify=access.verify_tls)

    async def fetch() -> str:
        adapter = provider(ep.site.provider)
        if adapter is None:
            raise errors.PermanentError(
                f"site {ep.name}: no kube.api or kube.kubeconfig, and provider {ep.site.provider!r} "
                f"is not usable to fetch one")
        return await adapter.kubeconfig(ep.cluster)

    return KubeClient(site=ep.name, fetch=fetch, context=access.context, timeout=timeout,
                      refresh_before=access.refresh_before)
